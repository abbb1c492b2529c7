"""Base classes of the API models: camelCase on the wire, unknown fields refused, cross-field rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, written once in CEL for the API server and once in Python for everyone else.

    The CRD carries `cel` as an `x-kubernetes-validations` entry, so `kubectl apply` refuses a bad
    manifest; `check` gives the operator and the runtime the same verdict when they read a spec that
    never went through an API server (a ConfigMap, a file). A test runs both over the same cases.
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str = ""


class ApiModel(BaseModel):
    """A part of the AgentDeployment API."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
        protected_namespaces=(),
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Attach the class's rules to its schema as `x-kubernetes-validations`."""
        json_schema = handler(schema)
        if cls.rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [_cel_entry(rule) for rule in cls.rules]
        return json_schema

    def wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _cel_entry(rule: Rule) -> dict[str, str]:
    entry = {"rule": rule.cel, "message": rule.message}
    if rule.field_path:
        entry["fieldPath"] = rule.field_path
    return entry


def error_lines(exc: ValidationError, *, prefix: str = "") -> list[str]:
    """One line per problem, each naming the field on the wire (`spec.agent.model: ...`).

    pydantic reports locations by alias already; this joins them with dots and list indexes in brackets,
    the way `kubectl` reports field paths.
    """
    lines = []
    for error in exc.errors(include_url=False):
        path = prefix
        for part in error["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{path or '(root)'}: {message}")
    return lines
