"""values.yaml is valid against values.schema.json, fully documented, and the schema is closed everywhere."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import jsonschema
import yaml

from tests.helm.chart import CHART, ROOT

VALUES_TEXT = (CHART / "values.yaml").read_text()
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())


def _keys(node: yaml.Node, path: str = "") -> Iterator[tuple[str, yaml.Node]]:
    """Every mapping key of the values file with its dotted path (lists of defaults are walked too)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            dotted = f"{path}.{key.value}" if path else str(key.value)
            yield dotted, key
            yield from _keys(value, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _keys(item, f"{path}[]")


def _schemas(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema of the values schema with a readable path."""
    yield path or "(root)", node
    for name, child in node.get("properties", {}).items():
        yield from _schemas(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from _schemas(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _schemas(node["additionalProperties"], f"{path}.*")


def test_values_yaml_matches_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(yaml.safe_load(VALUES_TEXT))


def test_every_value_has_a_comment() -> None:
    lines = VALUES_TEXT.splitlines()
    undocumented = []
    root = yaml.compose(VALUES_TEXT)
    assert root is not None
    for dotted, key in _keys(root):
        line = key.start_mark.line
        above = lines[line - 1].strip() if line > 0 else ""
        if not above.startswith("#") and "#" not in lines[line]:
            undocumented.append(dotted)
    assert undocumented == [], f"values without a comment right above them: {undocumented}"


def test_every_object_in_the_schema_is_closed() -> None:
    """Named properties: additionalProperties false. A free-form map (labels, annotations): string values only."""
    open_objects = []
    for path, node in _schemas(SCHEMA):
        if node.get("type") != "object" or path == "global":  # the parent chart's, passed to every subchart
            continue
        extra = node.get("additionalProperties")
        closed = extra is False if "properties" in node else extra == {"type": "string"}
        if not closed:
            open_objects.append(path)
    assert open_objects == []


def test_every_schema_property_has_a_description() -> None:
    missing = [
        path
        for path, node in _schemas(SCHEMA)
        if path.count("[]") == 0 and "*" not in path and path != "(root)" and not node.get("description")
    ]
    assert missing == []


def test_every_top_level_value_is_in_values_yaml() -> None:
    """The schema documents no value that values.yaml lacks (so `helm show values` shows all of them)."""
    assert set(SCHEMA["properties"]) == set(yaml.safe_load(VALUES_TEXT))


def test_chart_versions_follow_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["appVersion"], chart["version"]) == ("v2", project, project)
    assert chart["kubeVersion"] == ">=1.28.0-0"
