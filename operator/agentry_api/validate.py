"""Check a manifest offline the way the API server would: schema, defaults, then CEL rules.

Used by `agentry validate` (a pre-commit or CI check for GitOps repositories) and by the tests that
hold the table of bad manifests; `agentry validate` adds the operator's output-schema check. Needs
`cel-python` (the `operator` extra).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

from .crdgen import openapi_schema
from .outputschema import output_schema_problem


def validate_manifest(obj: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Return the problems the API server would report for `obj`, each naming its field; [] if none."""
    schema = schema if schema is not None else _crd_schema()
    errors = _schema_errors(obj, schema)
    if errors:
        return errors  # the API server, too, runs CEL only on objects that pass the schema
    defaulted = apply_defaults(copy.deepcopy(obj), schema)
    return list(_cel_errors(defaulted, schema, path=""))


def check_manifest(obj: dict[str, Any]) -> list[str]:
    """What `agentry validate` reports: the API server's problems, else the operator's verdict on the output schema.

    The output schema is judged by the same function as the operator and the runtime use, so a manifest that
    passes here is never refused by a pod at start-up for its schema.
    """
    errors = validate_manifest(obj)
    if errors:
        return errors
    schema = ((obj.get("spec") or {}).get("agent") or {}).get("outputSchema")
    problem = output_schema_problem(schema) if isinstance(schema, dict) else None
    return [] if problem is None else [problem]


@functools.cache
def _crd_schema() -> dict[str, Any]:
    return openapi_schema()


# --- defaults ----------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill in defaults as the API server does: missing fields with a default, then recurse."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(value[name], sub)
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key in value:
            value[key] = apply_defaults(value[key], schema["additionalProperties"])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


# --- OpenAPI schema ----------------------------------------------------------------------------


def _schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(_json_schema(schema))
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe(error) for error in errors]


def _json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI v3.0 structural schema as JSON Schema draft 7, refusing unknown fields like kubectl."""
    if node.get("x-kubernetes-int-or-string"):
        return {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    out = {key: value for key, value in node.items() if not key.startswith("x-kubernetes") and key != "default"}
    if node.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if node.get("exclusiveMaximum") is True:
        out["exclusiveMaximum"] = out.pop("maximum")
    if "properties" in node:
        out["properties"] = {name: _json_schema(sub) for name, sub in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = _json_schema(node["items"])
    return out


def _field_path(parts: Iterator[Any] | Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _describe(error: Any) -> str:
    """An API-server-like line: `spec.replicas: Invalid value: -1: should be greater than or equal to 0`."""
    path = _field_path(error.absolute_path)
    kind, detail = error.validator, error.validator_value
    if kind == "required":
        missing = error.message.split("'")[1]
        return f"{_join(path, missing)}: Required value"
    if kind == "additionalProperties":
        extra = error.message.split("'")[1]
        return f"{_join(path, extra)}: unknown field"
    if kind == "enum":
        choices = ", ".join(f'"{choice}"' for choice in detail)
        return f'{path}: Unsupported value: "{error.instance}": supported values: {choices}'
    messages = {
        "minimum": f"should be greater than or equal to {detail}",
        "exclusiveMinimum": f"should be greater than {detail}",
        "maximum": f"should be less than or equal to {detail}",
        "exclusiveMaximum": f"should be less than {detail}",
        "pattern": f"should match '{detail}'",
        "minLength": f"should be at least {detail} chars long",
        "maxLength": f"may not be more than {detail} chars long",
        "minItems": f"should have at least {detail} items",
        "maxItems": f"must have at most {detail} items",
        "type": f"must be of type {detail}",
    }
    reason = messages.get(kind, error.message)
    return f"{path}: Invalid value: {error.instance!r}: {path} in body {reason}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --- CEL ---------------------------------------------------------------------------------------


def _cel_errors(value: Any, schema: dict[str, Any], *, path: str) -> Iterator[str]:
    for rule in schema.get("x-kubernetes-validations", ()):
        if not _evaluate(rule["rule"], value):
            yield f"{path + rule.get('fieldPath', '') or '(root)'}: Invalid value: {rule['message']}"
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name in value:
                yield from _cel_errors(value[name], sub, path=_join(path, name))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _cel_errors(item, schema["items"], path=f"{path}[{index}]")


@functools.cache
def _program(rule: str) -> Any:
    import celpy
    from celpy import celtypes

    environment = celpy.Environment()
    # The functions of Kubernetes' CEL libraries the rules use (cel-python has the standard ones only).
    functions: dict[str, Any] = {"lowerAscii": lambda text: celtypes.StringType(str(text).lower())}
    return environment.program(environment.compile(rule), functions=functions)


def _evaluate(rule: str, value: Any) -> bool:
    from celpy.adapter import json_to_cel
    from celpy.evaluation import CELEvalError

    result = _program(rule).evaluate({"self": json_to_cel(value)})
    if isinstance(result, CELEvalError):
        raise ValueError(f"CEL rule {rule!r} failed to evaluate: {result}")
    return bool(result)
