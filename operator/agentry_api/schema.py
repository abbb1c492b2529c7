"""Turn pydantic's JSON Schema into a Kubernetes structural schema (OpenAPI v3 subset, no refs)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

# Keys that mean the same in JSON Schema and in a CRD's OpenAPI v3 schema.
_COPIED = (
    "type",
    "format",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
)
# Keys of the outer node that win over the referenced definition (a field's text beats its class's).
_OVERRIDING = ("description", "default", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type")


class CrdJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, with the values of default factories written out as defaults.

    The API server checks every `default` against the CEL rules of its node *before* filling in the
    nested defaults, so a nested object's default must be complete (`{}` would fail a rule such as
    `self.minReplicas <= self.maxReplicas`). The factories here build exactly those complete objects.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        """The static default, or the default factory's value when it needs no data."""
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return schema.get("default", NoDefault)


class SchemaError(ValueError):
    """The model uses a construct that has no structural-schema equivalent."""


def structural_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline `$ref`s, drop `null` branches, and keep only what a CRD schema may say."""
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        return _convert_any_of(node, defs)
    out: dict[str, Any] = {key: node[key] for key in _COPIED if key in node}
    if "const" in node:
        out["enum"] = [node["const"]]
    if "exclusiveMinimum" in node:
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if "description" in node:
        out["description"] = node["description"].strip().splitlines()[0]
    default = _default(node, defs)
    if default is not None:
        out["default"] = default
    if "properties" in node:
        out["properties"] = {name: _convert(sub, defs) for name, sub in node["properties"].items()}
        if node.get("required"):
            out["required"] = list(node["required"])
    additional = node.get("additionalProperties")
    if isinstance(additional, dict) and "properties" not in node:
        out["additionalProperties"] = _convert(additional, defs)
    if additional is True and "properties" not in node:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        out["items"] = _convert(node["items"], defs)
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"schema node without a type: {node}")
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Replace a `$ref` by its definition, keeping the outer node's own description and default."""
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    resolved = dict(defs[name])
    resolved.update({key: node[key] for key in _OVERRIDING if key in node})
    return resolved


def _convert_any_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    branches = [_resolve(branch, defs) for branch in node["anyOf"] if branch.get("type") != "null"]
    outer = {key: value for key, value in node.items() if key != "anyOf"}
    if {branch.get("type") for branch in branches} == {"integer", "string"}:
        description = outer.get("description")
        out: dict[str, Any] = {"x-kubernetes-int-or-string": True}
        if description:
            out["description"] = description.strip().splitlines()[0]
        return out
    if len(branches) != 1:
        raise SchemaError(f"anyOf with more than one non-null branch: {node}")
    merged = {**branches[0], **outer}
    if outer.get("default") is None:
        merged.pop("default", None)
    return _convert(merged, defs)


def _default(node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The default the API server should fill in, or None for none.

    Empty lists and maps are left out (the API server would write them into every object); nulls
    inside an object's default are dropped, since absent and null mean the same in the spec.
    """
    value = _without_nulls(node.get("default"))
    if value in ([], {}):
        return None
    return value


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
