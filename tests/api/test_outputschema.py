"""One table of output schemas, judged alike by the operator's check, the runtime's start-up and `agentry validate`."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_operator.checks import INVALID_OUTPUT_SCHEMA, check_output_schema
from agent_runtime.config import ConfigError
from agentry_api.outputschema import MAX_DEPTH, MAX_INLINED, output_schema_problem
from agentry_cli.main import main as agentry
from tests.support.agents import agent, manifest

from ..runtime.harness import Backend

DRAFT4 = "http://json-schema.org/draft-04/schema#"
DRAFT6 = "http://json-schema.org/draft-06/schema#"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2019 = "https://json-schema.org/draft/2019-09/schema"
DRAFT2020 = "https://json-schema.org/draft/2020-12/schema"
TUPLE = {"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False}


def nested(levels: int) -> dict[str, Any]:
    """An object schema with `levels` objects inside each other (2 JSON levels per object)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def exponential(levels: int) -> dict[str, Any]:
    """Definitions that each use the next twice: 2**levels subschemas once inlined."""
    defs = {f"d{i}": obj(a={"$ref": f"#/$defs/d{i + 1}"}, b={"$ref": f"#/$defs/d{i + 1}"}) for i in range(levels)}
    return {**obj(root={"$ref": "#/$defs/d0"}), "$defs": {**defs, f"d{levels}": {"type": "string"}}}


def obj(draft: str | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    return schema if draft is None else {"$schema": draft, **schema}


# (id, schema, None when valid or a part of the one-line refusal)
TABLE: list[tuple[str, dict[str, Any], str | None]] = [
    ("draft-04", obj(DRAFT4, n={"type": "number", "minimum": 0, "exclusiveMinimum": True}), None),
    ("draft-04-numeric-exclusive", obj(DRAFT4, n={"exclusiveMinimum": 0}), "at properties/n/exclusiveMinimum: 0"),
    ("draft-06", {**obj(DRAFT6, n={"exclusiveMinimum": 0}), "propertyNames": {"maxLength": 8}}, None),
    ("draft-07-tuple-items", obj(DRAFT7, pair=TUPLE), None),
    ("draft-07-no-hash", obj(DRAFT7.removesuffix("#"), pair=TUPLE), None),
    (
        "2019-09-defs",
        {**obj(DRAFT2019, p={"$ref": "#/$defs/p"}), "$defs": {"p": {"type": "string"}}, "unevaluatedProperties": False},
        None,
    ),
    ("2020-12-prefix-items", obj(DRAFT2020, pair={"prefixItems": [{"type": "string"}], "items": False}), None),
    ("default-2020-12-refuses-tuple-items", obj(pair=TUPLE), "at properties/pair/items:"),
    ("draft-07-definitions-ref", {**obj(DRAFT7, p={"$ref": "#/definitions/p"}), "definitions": {"p": {}}}, None),
    (
        "embedded-id",
        {
            **obj(p={"$ref": "p.json"}),
            "$id": "https://example.com/root.json",
            "$defs": {"p": {"$id": "https://example.com/p.json"}},
        },
        None,
    ),
    ("remote-ref", obj(p={"$ref": "https://schemas.example.com/p.json"}), "remote references are never fetched"),
    ("relative-ref", obj(p={"$ref": "p.json#/x"}), "remote references are never fetched"),
    ("meta-schema-ref", obj(p={"$ref": DRAFT2020}), "remote references are never fetched"),
    ("dangling-pointer", obj(p={"$ref": "#/$defs/missing"}), "'#/$defs/missing' points to nothing"),
    ("ref-like-data-is-data", obj(p={"enum": [{"$ref": "https://example.com"}]}), None),
    (
        "draft-07-definitions-used-twice",
        {
            **obj(DRAFT7, a={"$ref": "#/definitions/p"}, b={"$ref": "#/definitions/p"}),
            "definitions": {"p": {"type": "string"}},
        },
        None,
    ),
    ("pointer-into-properties", obj(a={"type": "string"}, b={"$ref": "#/properties/a"}), None),
    ("anchor", {**obj(p={"$ref": "#name"}), "$defs": {"p": {"$anchor": "name", "type": "string"}}}, None),
    ("property-named-definitions", obj(definitions={"type": "string"}, ref={"$ref": "#/properties/definitions"}), None),
    (
        "recursive-defs",
        {**obj(n={"$ref": "#/$defs/node"}), "$defs": {"node": obj(next={"$ref": "#/$defs/node"})}},
        "'#/$defs/node' is recursive",
    ),
    ("recursive-root", obj(child={"$ref": "#"}), "'#' is recursive"),
    ("exponential-inlining", exponential(20), f"more than {MAX_INLINED} subschemas"),
    ("nested-ok", nested(MAX_DEPTH // 2 - 1), None),
    ("nested-too-deep", nested(MAX_DEPTH), f"nested deeper than {MAX_DEPTH} levels"),
    ("nested-far-too-deep", nested(200), f"nested deeper than {MAX_DEPTH} levels"),
    ("unknown-schema", {**obj(), "$schema": "https://example.com/my-draft"}, "not a supported JSON Schema draft"),
    ("draft-03", {**obj(), "$schema": "http://json-schema.org/draft-03/schema#"}, "not a supported JSON Schema draft"),
    ("schema-not-a-string", {**obj(), "$schema": 7}, "not a supported JSON Schema draft: 7"),
    ("invalid-type", obj(p={"type": "strnig"}), "at properties/p/type:"),
    ("required-not-a-list", {**obj(), "required": "p"}, "at required: 'p' is not of type 'array'"),
]


def by_operator(schema: dict[str, Any], _: Path) -> str | None:
    problem = check_output_schema(agent(agent={"model": "test", "outputSchema": schema}))
    assert problem is None or problem.reason == INVALID_OUTPUT_SCHEMA
    return None if problem is None else problem.message


def by_runtime(schema: dict[str, Any], tmp_path: Path) -> str | None:
    """What the runtime's start-up says (the Runtime the server is built around)."""
    try:
        Backend(data_dir=tmp_path).runtime({"agent": {"outputSchema": schema}})
    except ConfigError as exc:
        assert len(exc.lines) == 1
        return exc.lines[0]
    return None


def by_validate(schema: dict[str, Any], tmp_path: Path) -> str | None:
    """`agentry validate FILE`: exit 0 with `ok`, or 1 with the problem on the next line."""
    path = tmp_path / "agent.yaml"
    document = manifest("triage", "team-a")
    document["spec"]["agent"]["outputSchema"] = schema  # as written, not through the model
    path.write_text(yaml.safe_dump(document))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = agentry(["validate", str(path)])
    lines = out.getvalue().splitlines()
    if code == 0:
        assert lines == [f"{path}#0 (triage): ok"]
        return None
    assert code == 1 and lines[0] == f"{path}#0 (triage): invalid" and len(lines) == 2
    return lines[1].strip()


CALLERS: dict[str, Callable[[dict[str, Any], Path], str | None]] = {
    "operator": by_operator,
    "runtime": by_runtime,
    "validate": by_validate,
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("schema", "refusal"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_every_caller_judges_the_schema_alike(
    caller: str, schema: dict[str, Any], refusal: str | None, tmp_path: Path
) -> None:
    said = CALLERS[caller](schema, tmp_path)
    assert said == output_schema_problem(schema)
    if refusal is None:
        assert said is None
    else:
        assert said is not None and refusal in said and said.startswith("spec.agent.outputSchema")
        assert "\n" not in said


@contextlib.contextmanager
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that would serve a schema, and the paths it was asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("caller", CALLERS)
def test_a_remote_ref_is_refused_and_never_fetched(caller: str, tmp_path: Path) -> None:
    with schema_server() as (url, asked):
        schema = obj(DRAFT7, p={"$ref": f"{url}/p.json"})
        said = CALLERS[caller](schema, tmp_path)
    assert said == f"spec.agent.outputSchema: $ref '{url}/p.json' is not in the schema; " + (
        "remote references are never fetched (put the definition under $defs or definitions)"
    )
    assert asked == []
