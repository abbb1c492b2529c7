"""The committed CRD is the generated one, and it has what `kubectl` users rely on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentry_api import crdgen
from agentry_api.validate import validate_manifest
from agentry_cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / crdgen.CRD_FILENAME
#: The sample manifests, and the AgentDeployment of each example project (examples/code-agent/agent.yaml).
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "examples").glob("*/agent.yaml"))


def _version() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_PATH.read_text())
    versions: list[dict[str, Any]] = crd["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def test_committed_crd_is_generated_byte_for_byte() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == crdgen.render_crd(), "run `agentry crd -o crds/...`"


def test_cli_check_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text(crdgen.render_crd().replace("Pods that exist", "Pods"))
    assert main(["crd", "--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["crd", "--check", str(CRD_PATH)]) == 0


def test_subresources_and_names() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    assert crd["spec"]["names"]["shortNames"][0] == "agents"
    assert crd["spec"]["names"]["categories"] == ["agentry"]
    version = _version()
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert {"Model", "Ready", "Replicas", "Healthy", "URL", "Age"} <= set(columns)


def test_the_wide_columns_show_protocols_streams_and_conversations() -> None:
    wide = {column["name"]: column for column in _version()["additionalPrinterColumns"] if column.get("priority")}
    assert (wide["Protocols"]["jsonPath"], wide["Protocols"]["type"]) == (".status.protocols", "string")
    assert (wide["Streams"]["jsonPath"], wide["Streams"]["type"]) == (".status.openStreams", "integer")
    assert (wide["Conversations"]["jsonPath"], wide["Conversations"]["type"]) == (
        ".status.activeConversations",
        "integer",
    )


@pytest.mark.parametrize("column", crdgen.PRINTER_COLUMNS, ids=lambda column: column["name"])
def test_every_printer_column_reads_a_field_of_the_schema(column: dict[str, Any]) -> None:
    node = crdgen.openapi_schema()
    for step in re.sub(r"\[[^]]*\]", "[]", column["jsonPath"]).lstrip(".").split("."):
        name = step.removesuffix("[]")
        if name == "metadata":
            return  # left to the API server
        node = node["properties"][name]
        if step.endswith("[]"):
            node = node["items"]
    assert node["type"] == column["type"] or (column["type"] == "date" and node["type"] == "string")


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")


def test_schema_is_structural() -> None:
    schema = _version()["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"


def test_only_open_nodes_preserve_unknown_fields() -> None:
    schema = _version()["schema"]["openAPIV3Schema"]
    open_nodes = {path for path, node in _nodes(schema) if node.get("x-kubernetes-preserve-unknown-fields")}
    assert open_nodes == {".spec.agent.outputSchema", ".spec.pod.affinity", ".spec.pod.topologySpreadConstraints[]"}


def test_every_spec_field_has_a_one_line_description() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _nodes(spec, ".spec"):
        if path.endswith(("[]", ".*")):
            continue
        assert node.get("description"), f"{path} has no description (kubectl explain shows nothing)"
        assert "\n" not in node["description"], path


def test_every_rule_names_its_field() -> None:
    schema = _version()["schema"]["openAPIV3Schema"]
    rules = [rule for _, node in _nodes(schema) for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["message"].startswith(("spec.", "metadata.")), rule


def test_defaults_fill_nested_objects() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    concurrency = spec["properties"]["concurrency"]
    assert concurrency["default"] == {"maxConcurrentRequests": 10, "maxQueuedRequests": 50, "requestTimeoutSeconds": 60}
    assert concurrency["properties"]["maxConcurrentRequests"]["default"] == 10
    assert spec["required"] == ["agent", "security"]
    assert "default" not in spec["properties"]["services"]["properties"]["database"]


def agent_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every AgentDeployment document under examples/ (other kinds live there too: Argo CD, Flux)."""
    return [
        (f"{path.name}#{index}", doc)
        for path in EXAMPLES
        for index, doc in enumerate(yaml.safe_load_all(path.read_text()))
        if doc and doc.get("kind") == "AgentDeployment"
    ]


def test_examples_cover_minimal_production_and_ollama() -> None:
    names = {label.split("#")[0] for label, _ in agent_examples()}
    assert {"minimal.yaml", "production.yaml", "ollama.yaml"} <= names


@pytest.mark.parametrize(("label", "doc"), agent_examples(), ids=[label for label, _ in agent_examples()])
def test_examples_are_accepted(label: str, doc: dict[str, Any]) -> None:
    assert validate_manifest(doc) == []


def test_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: agentry.dev/v1alpha1\nkind: AgentDeployment\nmetadata: {name: x}\n"
        "spec: {agent: {model: test}, replicas: -2, security: {auth: {mode: none}}}\n"
    )
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "spec.replicas: Invalid value: -2" in out
    assert main(["validate", *map(str, EXAMPLES)]) == 0, capsys.readouterr().out
