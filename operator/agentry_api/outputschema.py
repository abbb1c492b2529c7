"""The one check of `spec.agent.outputSchema`, shared by the operator, the runtime and `agentry validate`.

The CRD can only say that the schema is an object; whether it is a JSON Schema the runtime can use is decided
here, once, so the operator never calls an agent Ready whose pods would refuse to start. The draft is the one
`$schema` names (2020-12 when absent); a `$ref` must resolve inside the schema: nothing is ever fetched, so a
schema cannot make an operator or a pod call out to a URL. The model is given the schema with its references
inlined (pydantic-ai's StructuredDict takes only `#/$defs/...`), so a recursive reference is refused here rather
than by the pod. Needs `jsonschema` (a base dependency).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
import jsonschema.protocols
import referencing
import referencing.exceptions
import referencing.jsonschema

if TYPE_CHECKING:
    from referencing._core import Resolver

FIELD = "spec.agent.outputSchema"
#: Deepest nesting of objects and lists accepted; far beyond a real output schema, well within the stack
#: depth the validator needs to walk it (a schema nested thousands deep would crash it instead).
MAX_DEPTH = 64
#: Most subschemas the model's copy may have once references are inlined (a few definitions that each use
#: the next twice would otherwise grow it exponentially).
MAX_INLINED = 10_000
#: The drafts an output schema may name in `$schema`, by name; 2020-12 is the default.
DRAFTS: Mapping[str, type[jsonschema.protocols.Validator]] = {
    "draft-04": jsonschema.Draft4Validator,
    "draft-06": jsonschema.Draft6Validator,
    "draft-07": jsonschema.Draft7Validator,
    "2019-09": jsonschema.Draft201909Validator,
    "2020-12": jsonschema.Draft202012Validator,
}
DEFAULT_DRAFT = jsonschema.Draft202012Validator
_REF_KEYWORDS = ("$ref", "$dynamicRef")
#: Keywords whose value maps names to subschemas (the names are not keywords) or holds plain data.
_NAME_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "dependencies"})
_DATA = frozenset({"enum", "const", "default", "examples", "required", "$comment", "description", "title"})
#: What the inlined copy for the model leaves out: definitions are inlined where used, scopes are resolved.
_DROPPED = frozenset({"$defs", "definitions", "$id", "$anchor", "$dynamicAnchor", "$schema"})


class OutputSchemaError(ValueError):
    """The output schema cannot be used; the message names the field and the place in the schema."""


def output_schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a usable output schema (one line naming the place), or None when it is."""
    try:
        output_validator(schema)
        model_schema(schema)
    except OutputSchemaError as exc:
        return str(exc)
    return None


def model_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as the model is given it: every reference replaced by what it points to, no definitions.

    Raises OutputSchemaError for a recursive reference (a model's structured output cannot express one).
    Call after `output_validator`, which has checked every reference resolves.
    """
    validator_class = draft_of(schema)
    specification = _specification(validator_class)
    root = specification.create_resource(schema)
    resolver = referencing.Registry().resolver_with_root(root)
    budget = [MAX_INLINED]
    inlined: dict[str, Any] = _inline(
        schema, resolver=resolver, specification=specification, path=(id(schema),), budget=budget
    )
    return inlined


def output_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator of outputs under the schema's own draft, that can never retrieve a remote `$ref`.

    Raises OutputSchemaError when the schema is too deep, names an unknown draft, is not valid under its
    draft's meta-schema, or has a `$ref` that does not resolve inside the schema.
    """
    _check_depth(schema)
    validator_class = draft_of(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise OutputSchemaError(f"{_at(exc.absolute_path)}: {exc.message}") from None
    registry: referencing.Registry[Any] = referencing.Registry()  # no `retrieve`: nothing is fetched
    _check_refs(schema, validator_class=validator_class, registry=registry)
    return validator_class(schema, registry=registry)


def draft_of(schema: dict[str, Any]) -> type[jsonschema.protocols.Validator]:
    """The validator class of the draft `$schema` names; 2020-12 when it names none."""
    if "$schema" not in schema:
        return DEFAULT_DRAFT
    uri = schema["$schema"]
    unknown: Any = None
    found = jsonschema.validators.validator_for(schema, default=unknown) if isinstance(uri, str) else None
    if found is None or found not in DRAFTS.values():
        known = ", ".join(DRAFTS)
        raise OutputSchemaError(f"{_at(['$schema'])}: not a supported JSON Schema draft: {uri!r} (supported: {known})")
    return found


def _check_depth(schema: dict[str, Any]) -> None:
    """Iteratively, so a pathologically deep schema fails here and not in a recursive walk."""
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise OutputSchemaError(f"{FIELD}: nested deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _check_refs(
    schema: dict[str, Any],
    *,
    validator_class: type[jsonschema.protocols.Validator],
    registry: referencing.Registry[Any],
) -> None:
    specification = _specification(validator_class)
    root = specification.create_resource(schema)
    for ref, resolver in _refs(root, registry.resolver_with_root(root)):
        try:
            resolver.lookup(ref)
        except (referencing.exceptions.PointerToNowhere, referencing.exceptions.NoSuchAnchor):
            raise OutputSchemaError(f"{FIELD}: $ref {ref!r} points to nothing in the schema") from None
        except referencing.exceptions.Unresolvable:
            raise OutputSchemaError(
                f"{FIELD}: $ref {ref!r} is not in the schema; remote references are never fetched "
                "(put the definition under $defs or definitions)"
            ) from None


def _specification(validator_class: type[jsonschema.protocols.Validator]) -> referencing.Specification[Any]:
    return referencing.jsonschema.specification_with(str(validator_class.META_SCHEMA["$schema"]))


def _inline(
    node: Any,
    *,
    resolver: Resolver[Any],
    specification: referencing.Specification[Any],
    path: tuple[int, ...],
    budget: list[int],
) -> Any:
    """A copy of `node` with references inlined; `path` holds the ids of the targets being inlined (cycles)."""
    if isinstance(node, list):
        return [
            _inline(item, resolver=resolver, specification=specification, path=path, budget=budget) for item in node
        ]
    if not isinstance(node, Mapping):
        return node
    budget[0] -= 1
    if budget[0] < 0:
        raise OutputSchemaError(f"{FIELD}: more than {MAX_INLINED} subschemas once its references are inlined")
    if specification.id_of(node):
        resolver = resolver.in_subresource(specification.create_resource(node))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key in _REF_KEYWORDS and isinstance(value, str):
            continue
        if key in _DATA:
            out[key] = value
        elif key in _NAME_MAPS and isinstance(value, Mapping):
            out[key] = {
                name: _inline(sub, resolver=resolver, specification=specification, path=path, budget=budget)
                for name, sub in value.items()
            }
        else:
            out[key] = _inline(value, resolver=resolver, specification=specification, path=path, budget=budget)
    ref = next((node[key] for key in _REF_KEYWORDS if isinstance(node.get(key), str)), None)
    if ref is None:
        return out
    resolved = resolver.lookup(ref)
    if id(resolved.contents) in path:
        raise OutputSchemaError(
            f"{FIELD}: $ref {ref!r} is recursive; a model's structured output needs a finite schema"
        )
    target = _inline(
        resolved.contents,
        resolver=resolved.resolver,
        specification=specification,
        path=(*path, id(resolved.contents)),
        budget=budget,
    )
    if not out:
        return target
    return {**out, "allOf": [*out.get("allOf", []), target]}


def _refs(resource: referencing.Resource[Any], resolver: Resolver[Any]) -> Iterator[tuple[str, Resolver[Any]]]:
    """Every reference in the schema with the resolver of its scope (subschemas only, never `enum` data)."""
    contents = resource.contents
    if isinstance(contents, Mapping):
        for keyword in _REF_KEYWORDS:
            if isinstance(contents.get(keyword), str):
                yield contents[keyword], resolver
    for sub in resource.subresources():
        yield from _refs(sub, resolver.in_subresource(sub))


def _at(path: Any) -> str:
    where = "/".join(str(part) for part in path)
    return f"{FIELD} at {where}" if where else FIELD
