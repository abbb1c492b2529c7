"""The Argo CD and Flux examples point at what exists, pass valid chart values, and the Lua health check works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.gitops.argocd import argocd_health
from tests.helm.chart import CHART, ROOT

EXAMPLES = ROOT / "examples"
ARGOCD = [d for d in yaml.safe_load_all((EXAMPLES / "argocd-application.yaml").read_text()) if d]
FLUX = [d for d in yaml.safe_load_all((EXAMPLES / "flux-kustomization.yaml").read_text()) if d]
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_kustomization_lists_the_agent_examples() -> None:
    kustomization = yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == ["minimal.yaml", "ollama.yaml", "production.yaml"]
    for name in kustomization["resources"]:
        kinds = {d["kind"] for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d}
        assert kinds == {"AgentDeployment"}


def test_argocd_applications_point_at_the_chart_and_the_examples() -> None:
    apps = _by_kind(ARGOCD, "Application")
    assert [a["spec"]["source"]["path"] for a in apps] == ["helm/agentry", "examples"]
    for app in apps:
        assert (ROOT / app["spec"]["source"]["path"]).is_dir()
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    jsonschema.validate(apps[0]["spec"]["source"]["helm"]["valuesObject"], SCHEMA)


def test_flux_points_at_the_chart_and_the_examples() -> None:
    release = _by_kind(FLUX, "HelmRelease")[0]
    assert (ROOT / release["spec"]["chart"]["spec"]["chart"]).is_dir()
    jsonschema.validate(release["spec"]["values"], SCHEMA)
    kustomization = _by_kind(FLUX, "Kustomization")[0]
    assert (ROOT / kustomization["spec"]["path"]).is_dir()
    assert kustomization["spec"]["wait"] is True


def _agent(generation: int, observed: int | None, **conditions: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "a", "generation": generation}}
    if observed is not None:
        obj["status"] = {
            "observedGeneration": observed,
            "conditions": [
                {"type": kind, "status": status, "reason": f"{kind}Reason", "message": "m"}
                for kind, status in conditions.items()
            ],
        }
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_agent(1, None), "Progressing"),
        (_agent(1, 0), "Progressing"),
        (_agent(2, 1, Ready="True", Progressing="False", Degraded="False"), "Progressing"),
        (_agent(2, 2, Ready="True", Progressing="False", Degraded="False"), "Healthy"),
        (_agent(2, 2, Ready="False", Progressing="True", Degraded="False"), "Progressing"),
        (_agent(2, 2, Ready="False", Progressing="False", Degraded="False"), "Progressing"),
        (_agent(2, 2, Ready="True", Progressing="False", Degraded="True"), "Healthy"),
        (_agent(2, 2, Ready="False", Progressing="False", Degraded="True", Stalled="True"), "Degraded"),
        (_agent(2, 2, Ready="False", Reconciling="True"), "Progressing"),
        (_agent(2, 2, Progressing="False"), "Progressing"),
    ],
    ids=[
        "no-status",
        "crd-default-status",
        "stale-generation",
        "ready",
        "rolling-out",
        "not-ready",
        "pods-unwell",
        "stalled",
        "reconciling",
        "no-ready-condition",
    ],
)
def test_argocd_lua_health_check(obj: dict[str, Any], expected: str) -> None:
    status, message = argocd_health(obj)
    assert status == expected
    assert message


def test_readme_names_every_gitops_file() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for path in sorted(Path(EXAMPLES).glob("*.yaml")):
        assert f"`{path.name}`" in readme
