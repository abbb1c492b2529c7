"""Calls to the database and the cache as CLIENT spans of the request they serve (OpenTelemetry's db conventions).

The runtime gives each service its tracer (a no-op one when nothing is traced); a call outside a recorded
span, such as the audit trail's background flush or the conversation sweep, makes no span of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer

__all__ = ["Traceable", "traced"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="Traceable")


class Traceable:
    """A service whose `@traced` calls are spans; `system` is its `db.system.name` (postgresql, sqlite, redis)."""

    system: ClassVar[str]
    tracer: Tracer = NoOpTracer()


def traced(
    operation: str,
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, R]]], Callable[Concatenate[S, P], Coroutine[Any, Any, R]]
]:
    """Make each call of the method a span `<operation> <system>`, inside the current one when it is recorded."""

    def decorate(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if not trace.get_current_span().is_recording():
                return await method(self, *args, **kwargs)
            attributes = {"db.system.name": self.system, "db.operation.name": operation}
            with self.tracer.start_as_current_span(
                f"{operation} {self.system}", kind=SpanKind.CLIENT, attributes=attributes
            ):
                return await method(self, *args, **kwargs)

        functools.update_wrapper(call, method)
        return call

    return decorate
