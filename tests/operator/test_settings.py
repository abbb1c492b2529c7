"""kopf settings from the operator's config: what keeps one operator cheap with many agents."""

from __future__ import annotations

import logging

import kopf

from agent_operator.config import OperatorConfig
from agent_operator.handlers import CHILD_RESOURCES, configure_settings


def _settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure_settings(settings, config=config)
    return settings


def test_every_child_watch_is_filtered_by_the_server() -> None:
    selectors = _settings(OperatorConfig()).watching.label_selectors
    for group, version, plural in CHILD_RESOURCES:
        resource = kopf.Resource(group=group, version=version, plural=plural)
        assert list(selectors.collect(resource)) == ["app.kubernetes.io/managed-by=agentry"], plural
    agents = kopf.Resource(group="agentry.dev", version="v1alpha1", plural="agentdeployments")
    assert list(selectors.collect(agents)) == []  # every AgentDeployment is the operator's


def test_timeouts_and_event_level_come_from_the_config() -> None:
    settings = _settings(OperatorConfig(request_timeout_seconds=7, watch_timeout_seconds=120, event_level="error"))
    assert settings.networking.request_timeout == 7
    assert settings.watching.server_timeout == 120
    assert settings.watching.client_timeout is not None and settings.watching.client_timeout > 120
    assert settings.posting.level == logging.ERROR


def test_kopf_keeps_its_progress_in_annotations_not_in_the_pruned_status() -> None:
    persistence = _settings(OperatorConfig()).persistence
    assert isinstance(persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
