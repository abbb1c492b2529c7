"""OperatorConfig from the environment: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import pytest

from agent_operator.config import ConfigError, OperatorConfig, package_version


def test_defaults_watch_everything_log_json_and_use_the_matching_runtime() -> None:
    config = OperatorConfig.from_env({})
    assert config.namespaces == ()
    assert config.log_format == "json"
    assert config.runtime_image == f"ghcr.io/agentry/agent-runtime:{package_version()}"
    assert config.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert config.network_policy is False


def test_every_field_is_read_from_its_variable() -> None:
    config = OperatorConfig.from_env(
        {
            "AGENTRY_NAMESPACES": "team-a, team-b",
            "AGENTRY_RUNTIME_IMAGE": "registry.local/runtime:dev",
            "AGENTRY_LOG_FORMAT": "TEXT",
            "AGENTRY_LOG_LEVEL": "debug",
            "AGENTRY_LIVENESS_ENDPOINT": "",
            "AGENTRY_REQUEST_TIMEOUT_SECONDS": "12.5",
            "AGENTRY_WATCH_TIMEOUT_SECONDS": "120",
            "AGENTRY_EVENT_LEVEL": "info",
            "AGENTRY_HEALTH_POLL_CONCURRENCY": "16",
            "AGENTRY_RETRY_BASE_SECONDS": "0.5",
            "AGENTRY_RETRY_MAX_SECONDS": "3",
            "AGENTRY_RESYNC_SECONDS": "30",
            "AGENTRY_NETWORK_POLICY": "true",
            "AGENTRY_OTLP_ENDPOINT": "http://otel-collector.observability:4318/",
            "AGENTRY_OPERATOR_NAMESPACE": "agentry-system",
        }
    )
    assert config == OperatorConfig(
        namespaces=("team-a", "team-b"),
        runtime_image="registry.local/runtime:dev",
        log_format="text",
        log_level="debug",
        liveness_endpoint="",
        request_timeout_seconds=12.5,
        watch_timeout_seconds=120,
        event_level="info",
        health_poll_concurrency=16,
        retry_base_seconds=0.5,
        retry_max_seconds=3.0,
        resync_seconds=30.0,
        network_policy=True,
        otlp_endpoint="http://otel-collector.observability:4318",
        operator_namespace="agentry-system",
    )


def test_pod_namespace_is_the_fallback_for_the_operator_namespace() -> None:
    assert OperatorConfig.from_env({"POD_NAMESPACE": "ops"}).operator_namespace == "ops"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENTRY_LOG_FORMAT", "xml"),
        ("AGENTRY_NAMESPACES", "Team_A"),
        ("AGENTRY_REQUEST_TIMEOUT_SECONDS", "soon"),
        ("AGENTRY_WATCH_TIMEOUT_SECONDS", "300.5"),
        ("AGENTRY_RETRY_MAX_SECONDS", "0"),
        ("AGENTRY_HEALTH_POLL_CONCURRENCY", "-1"),
        ("AGENTRY_NETWORK_POLICY", "maybe"),
        ("AGENTRY_LIVENESS_ENDPOINT", "0.0.0.0:8080"),
        ("AGENTRY_RUNTIME_IMAGE", "an image"),
        ("AGENTRY_EVENT_LEVEL", "loud"),
        ("AGENTRY_OTLP_ENDPOINT", "otel-collector:4318"),
    ],
)
def test_an_invalid_value_fails_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        OperatorConfig.from_env({variable: value})


def test_the_config_is_frozen() -> None:
    config = OperatorConfig()
    with pytest.raises(AttributeError):
        config.log_format = "text"  # type: ignore[misc]


@pytest.mark.parametrize(("attempt", "delay"), [(0, 2.0), (1, 4.0), (3, 16.0), (5, 60.0), (500, 60.0)])
def test_retry_delay_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    assert OperatorConfig(retry_base_seconds=2, retry_max_seconds=60).retry_delay(attempt) == delay


def test_main_refuses_to_start_on_a_bad_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_operator.main import main

    monkeypatch.setenv("AGENTRY_LOG_FORMAT", "xml")
    assert main() == 2
    assert "AGENTRY_LOG_FORMAT='xml'" in capsys.readouterr().err
