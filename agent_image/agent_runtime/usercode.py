"""The user's own agent: imported from `spec.agent.code.entrypoint` and checked before the port is bound.

Every way it can be wrong (the module does not import, the attribute is missing, it is neither an Agent, an
AgentApp nor a factory, its deps type is not one Agentry can give) ends the start with one line that names the
entrypoint and the problem: on stderr and in the pod's termination message, exit code 2.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from typing import Any

from pydantic_ai import Agent

from .sdk import AgentApp, AgentryDeps, Services

#: Where the line of an import error is taken from: the frame in the user's code nearest the error.
FIELD = "spec.agent.code.entrypoint"


class EntrypointError(Exception):
    """The entrypoint cannot be served; the message names it and says why."""

    def __init__(self, entrypoint: str, problem: str) -> None:
        super().__init__(f"{FIELD}: {entrypoint}: {problem}")


def import_entrypoint(entrypoint: str) -> object:
    """The attribute `package.module:attribute` names, imported from the image's Python path."""
    module_name, _, attribute = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise EntrypointError(entrypoint, f"no module named {exc.name!r} in the image") from None
        raise EntrypointError(entrypoint, f"importing {module_name} failed: {_where(exc)}") from None
    except Exception as exc:
        raise EntrypointError(entrypoint, f"importing {module_name} failed: {_where(exc)}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise EntrypointError(entrypoint, f"{module_name} has no attribute {attribute!r}") from None
    return target


def resolve(entrypoint: str, target: object, services: Services) -> AgentApp[Any]:
    """The AgentApp the target is or makes: an Agent, an AgentApp, or a factory given the services."""
    app = _as_app(entrypoint, target)
    if app is None:
        if not callable(target):
            raise EntrypointError(
                entrypoint, f"expected a pydantic-ai Agent, an AgentApp or a factory, got {_kind(target)}"
            )
        made = _call_factory(entrypoint, target, services)
        app = _as_app(entrypoint, made)
        if app is None:
            raise EntrypointError(entrypoint, f"the factory returned {_kind(made)}, expected an Agent or an AgentApp")
    _check_deps(entrypoint, app)
    return app


def _as_app(entrypoint: str, target: object) -> AgentApp[Any] | None:
    if isinstance(target, AgentApp):
        if not isinstance(target.agent, Agent):
            raise EntrypointError(entrypoint, f"AgentApp.agent is {_kind(target.agent)}, expected a pydantic-ai Agent")
        return target
    if isinstance(target, Agent):
        return AgentApp(agent=target)
    return None


def _call_factory(entrypoint: str, factory: Any, services: Services) -> object:
    try:
        parameters = list(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        parameters = ["services"]
    if len(parameters) > 1:
        raise EntrypointError(entrypoint, "a factory takes one argument, the agent's Services")
    try:
        made = factory(services) if parameters else factory()
    except Exception as exc:
        raise EntrypointError(entrypoint, f"the factory failed: {_where(exc)}") from None
    if inspect.isawaitable(made):
        close = getattr(made, "close", None)
        if callable(close):
            close()
        raise EntrypointError(entrypoint, "the factory is async; it must return the agent without awaiting")
    return made


def _check_deps(entrypoint: str, app: AgentApp[Any]) -> None:
    """An agent that wants deps Agentry does not make is refused now, not at its first tool call."""
    if app.deps is not None:
        if not callable(app.deps):
            raise EntrypointError(entrypoint, "AgentApp.deps must be a function of AgentryDeps")
        return
    deps_type = app.agent.deps_type
    if deps_type is type(None) or deps_type is Any:
        return
    if isinstance(deps_type, type) and issubclass(AgentryDeps, deps_type):
        return
    name = getattr(deps_type, "__qualname__", repr(deps_type))
    raise EntrypointError(
        entrypoint,
        f"the agent's deps_type is {name}, and Agentry gives agent_runtime.sdk.AgentryDeps: use that, or serve "
        f"AgentApp(agent, deps=<a function of AgentryDeps returning {name}>)",
    )


def _where(exc: BaseException) -> str:
    """`ValueError: bad value (support_bot/agent.py:12)`: the error and the last frame it passed through."""
    frames = traceback.extract_tb(exc.__traceback__)
    place = f" ({_short(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{place}"


def _short(filename: str) -> str:
    for root in sorted(sys.path, key=len, reverse=True):
        if root and filename.startswith(root.rstrip("/") + "/"):
            return filename[len(root.rstrip("/")) + 1 :]
    return filename


def _kind(value: object) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"
