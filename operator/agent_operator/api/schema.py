"""Turn pydantic's JSON Schema into a Kubernetes structural schema (OpenAPI v3 subset, no refs)."""

from __future__ import annotations

from typing import Any

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
    resolved["x-agentry-model"] = True
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
    merged.pop("x-agentry-model", None)  # an optional model is absent by default, not {}
    if outer.get("default") is None:
        merged.pop("default", None)
    return _convert(merged, defs)


def _default(node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The default the API server should fill in.

    Empty lists and maps are left out (the API server would write them into every object); a nested
    model that has its own defaults gets `{}`, so that the server fills in its fields.
    """
    if "default" in node:
        value = node["default"]
        if value in ([], {}) or value is None:
            return None
        if isinstance(value, dict) and "properties" in node:
            return {}
        return value
    if node.get("x-agentry-model") and not node.get("required"):
        return {}
    return None
