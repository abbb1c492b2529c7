"""Every bad manifest in the table is refused offline, by the CRD rules and by the models, naming its field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentry_api.base import error_lines
from agentry_api.v1alpha1 import AgentDeployment
from agentry_api.validate import validate_manifest

from .bad_manifests import BAD_MANIFESTS, BASE, BadManifest


def test_table_is_large_enough() -> None:
    assert len(BAD_MANIFESTS) >= 15
    assert len({case.id for case in BAD_MANIFESTS}) == len(BAD_MANIFESTS)


def test_base_manifest_is_valid() -> None:
    assert validate_manifest(BASE) == []
    AgentDeployment.model_validate(BASE)


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=lambda case: case.id)
def test_crd_rules_refuse_with_field_and_message(case: BadManifest) -> None:
    errors = validate_manifest(case.manifest())
    assert errors, f"{case.id} was accepted"
    matching = [line for line in errors if line.startswith(case.field) or f" {case.field}" in line]
    assert matching, f"no error names {case.field}: {errors}"
    assert any(case.message in line for line in matching), f"expected {case.message!r} in {matching}"


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=lambda case: case.id)
def test_models_refuse_naming_the_field(case: BadManifest) -> None:
    with pytest.raises(ValidationError) as caught:
        AgentDeployment.model_validate(case.manifest())
    text = "\n".join(error_lines(caught.value))
    assert case.field in text, text
