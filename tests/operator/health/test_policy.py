"""The health policies, driven by a fake clock: hysteresis, grace, rollouts, budgets, windows."""

from __future__ import annotations

from typing import Any

import pytest

from agent_operator.health.policy import (
    LoadSample,
    PodState,
    PodView,
    Poll,
    activity,
    agent_spend,
    budget_level,
    classify,
    failing_pods,
    plan_restarts,
    plan_scale,
    sample_load,
)
from agent_operator.rollout import DeploymentView
from agentry_api.health import Spend
from agentry_api.v1alpha1 import AutoscalingSpec, HealthSpec
from tests.operator.health.reports import dependency, report_body

HEALTH = HealthSpec(
    failure_threshold=3, startup_grace_seconds=30, restart_cooldown_seconds=120, max_restarts_per_hour=3
)
STEADY = DeploymentView(desired=3, replicas=3, updated=3, ready=3)
U, H, D, X = PodState.UNHEALTHY, PodState.HEALTHY, PodState.DEGRADED, PodState.UNREACHABLE


def _history(*states: PodState, start: float = 100.0, step: float = 10.0) -> list[Poll]:
    return [Poll(at=start + i * step, state=state) for i, state in enumerate(states)]


def _pods(*names: str, started_at: float = 0.0) -> dict[str, PodView]:
    return {name: PodView(name=name, started_at=started_at) for name in names}


def _body(**overrides: Any) -> dict[str, Any]:
    busy = {"inFlight": 2, "queued": 1, "latencyMs": {"p50": 10, "p95": 40, "p99": 80}}
    return report_body(**(busy | overrides))


# --- classify ----------------------------------------------------------------------------------


def test_classify_healthy_keeps_load_figures() -> None:
    poll = classify(_body(), at=5.0, health=HEALTH)
    assert (poll.state, poll.in_flight, poll.queued, poll.max_concurrent, poll.p95_ms) == (H, 2, 1, 10, 40.0)


def test_classify_keeps_streams_and_conversations_an_older_runtime_reports_as_none() -> None:
    poll = classify(_body(openStreams=3, activeConversations=12), at=0, health=HEALTH)
    assert (poll.open_streams, poll.active_conversations) == (3, 12)
    older = {key: value for key, value in _body().items() if key not in ("openStreams", "activeConversations")}
    poll = classify(older, at=0, health=HEALTH)
    assert (poll.state, poll.open_streams, poll.active_conversations) == (H, 0, 0)


def test_classify_takes_a_negative_count_as_zero_not_as_a_broken_pod() -> None:
    poll = classify(_body(openStreams=-1), at=0, health=HEALTH)
    assert (poll.state, poll.open_streams) == (H, 0)


def test_classify_unreachable() -> None:
    poll = classify(None, at=5.0, health=HEALTH, error="connection refused")
    assert poll.state == X and poll.reason == "connection refused"


def test_classify_runtime_degraded_names_the_dependency() -> None:
    body = _body(status="degraded", dependencies=[dependency("cache", "down")])
    poll = classify(body, at=0, health=HEALTH)
    assert poll.state == D and poll.reason == "cache: down"


@pytest.mark.parametrize("status", ["unhealthy", "starting", None])
def test_classify_anything_else_is_unhealthy(status: str | None) -> None:
    assert classify(_body(status=status), at=0, health=HEALTH).state == U


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"status": "starting"}, "status: Input should be 'healthy', 'degraded' or 'unhealthy'"),
        ({"inFlight": None}, "inFlight: Input should be a valid integer"),
        ({"latencyMs": {"p50": 1, "p99": 3}}, "latencyMs.p95: Field required"),
        ({"dependencies": [{"name": "cache", "state": "broken"}]}, "dependencies[0].state: Input should be"),
    ],
    ids=["status", "type", "nested", "list-item"],
)
def test_classify_an_answer_that_is_not_the_report_is_unhealthy_naming_the_field(
    change: dict[str, Any], problem: str
) -> None:
    poll = classify(_body(**change), at=0, health=HEALTH)
    assert poll.state == U
    assert poll.reason.startswith(f"health answer does not match the runtime's report: {problem}"), poll.reason
    assert (poll.in_flight, poll.p95_ms) == (0, None)


def test_classify_names_a_missing_field() -> None:
    body = _body()
    del body["maxConcurrent"]
    poll = classify(body, at=0, health=HEALTH)
    assert poll.state == U
    assert poll.reason == "health answer does not match the runtime's report: maxConcurrent: Field required"


def test_classify_ignores_fields_a_newer_runtime_adds() -> None:
    body = _body(tokensPerSecond=12.5, latencyMs={"p50": 10, "p95": 40, "p99": 80, "p999": 120})
    poll = classify(body, at=0, health=HEALTH)
    assert (poll.state, poll.in_flight, poll.p95_ms) == (H, 2, 40.0)


def test_classify_operator_thresholds_only_make_it_worse() -> None:
    strict = HEALTH.model_copy(update={"max_p95_latency_ms": 30, "max_error_rate_percent": 1.0})
    assert classify(_body(), at=0, health=strict).state == D
    assert "p95 latency 40 ms above 30 ms" in classify(_body(), at=0, health=strict).reason
    assert "error rate 8.0% above 5.0%" in classify(_body(errorRate=0.08), at=0, health=HEALTH).reason
    assert classify(_body(errorRate=0.02), at=0, health=HEALTH).state == H
    assert classify(_body(status="unhealthy"), at=0, health=strict).state == U


# --- restarts ----------------------------------------------------------------------------------


def test_failing_needs_threshold_in_a_row() -> None:
    histories = {"a": _history(U, U, U), "b": _history(U, H, U, U), "c": _history(X, U), "d": _history(H, X, U, X)}
    assert failing_pods(histories, threshold=3) == ["a", "d"]


def _plan(histories: dict[str, list[Poll]], **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "histories": histories,
        "pods": _pods(*histories),
        "deployment": STEADY,
        "restart_times": [],
        "health": HEALTH,
        "max_unavailable": 1,
        "now": 1000.0,
    }
    arguments.update(overrides)
    return plan_restarts(**arguments)


def test_restart_a_pod_failing_threshold_times() -> None:
    plan = _plan({"a": _history(U, U, U), "b": _history(H, H, H)})
    assert plan.restart == ("a",) and not plan.held_back


def test_flapping_pod_is_never_restarted() -> None:
    plan = _plan({"a": _history(U, H, U, H, U, H, U, U)})
    assert plan.restart == ()


def test_degraded_pod_is_not_restarted() -> None:
    assert _plan({"a": _history(D, D, D, D)}).restart == ()


def test_no_restart_during_rollout() -> None:
    rolling = DeploymentView(desired=3, replicas=4, updated=1, ready=3)
    plan = _plan({"a": _history(U, U, U)}, deployment=rolling)
    assert plan.restart == () and plan.held_back == ("a",) and "rollout" in plan.reason


def test_no_restart_during_scale_up() -> None:
    scaling = DeploymentView(desired=5, replicas=5, updated=5, ready=3)
    assert "scaling" in _plan({"a": _history(U, U, U)}, deployment=scaling).reason


def test_no_restart_within_startup_grace() -> None:
    plan = _plan({"a": _history(X, X, X)}, pods=_pods("a", started_at=990.0))
    assert plan == plan.__class__()


def test_cooldown_then_restart() -> None:
    histories = {"a": _history(U, U, U)}
    assert "cooldown: 60s left" in _plan(histories, restart_times=[940.0]).reason
    assert _plan(histories, restart_times=[870.0]).restart == ("a",)


def test_budget_exhausted_stops_restarting_and_says_so() -> None:
    plan = _plan({"a": _history(U, U, U)}, restart_times=[100.0, 400.0, 700.0])
    assert plan.budget_exhausted and plan.restart == ()
    assert "maxRestartsPerHour=3" in plan.reason
    # An hour later the budget is back.
    assert _plan({"a": _history(U, U, U)}, restart_times=[100.0, 400.0, 700.0], now=4000.0).restart == ("a",)


def test_disruption_budget_limits_restarts_at_once() -> None:
    histories = {name: _history(U, U, U) for name in ("a", "b", "c")}
    plan = _plan(histories, max_unavailable=1)
    assert plan.restart == ("a",) and plan.held_back == ("b", "c")
    pods = _pods("a", "b", "c") | {"c": PodView(name="c", started_at=0, ready=False)}
    blocked = _plan(histories, pods=pods)
    assert blocked.restart == () and "disruption budget" in blocked.reason


def test_pod_that_never_answered_is_left_to_the_startup_probe() -> None:
    histories = {"a": _history(X, X, X), "b": _history(H, X, X, X)}
    assert _plan(histories, answered={"b"}).restart == ("b",)
    assert _plan({"a": _history(X, X, X)}, answered=set()).restart == ()


def test_terminating_pod_is_left_alone() -> None:
    pods = {"a": PodView(name="a", started_at=0, terminating=True)}
    assert _plan({"a": _history(U, U, U)}, pods=pods).restart == ()


# --- scaling -----------------------------------------------------------------------------------

SCALING = AutoscalingSpec(
    enabled=True, min_replicas=1, max_replicas=6, target_in_flight_per_replica=4, scale_down_stabilization_seconds=60
)


def _samples(loads: list[int], *, pods: int, start: float = 0.0, step: float = 10.0) -> list[LoadSample]:
    return [LoadSample(at=start + i * step, pods=pods, in_flight=load, queued=0) for i, load in enumerate(loads)]


def _scale(samples: list[LoadSample], current: int, now: float, scaling: AutoscalingSpec = SCALING) -> Any:
    return plan_scale(samples=samples, scaling=scaling, current=current, poll_interval=10.0, now=now)


def test_sustained_load_scales_out() -> None:
    plan = _scale(_samples([4, 15, 16, 14], pods=2), current=2, now=30.0)
    assert plan is not None and plan.replicas == 4 and "scale out" in plan.reason


def test_short_spike_does_not_scale() -> None:
    assert _scale(_samples([4, 30, 4], pods=2), current=2, now=20.0) is None


def test_scale_out_capped_at_max() -> None:
    plan = _scale(_samples([100, 100, 100], pods=2), current=2, now=20.0)
    assert plan is not None and plan.replicas == 6


def test_queue_counts_as_load() -> None:
    samples = [LoadSample(at=i * 10.0, pods=1, in_flight=4, queued=8) for i in range(3)]
    plan = _scale(samples, current=1, now=20.0)
    assert plan is not None and plan.replicas == 3


def test_latency_above_target_adds_one() -> None:
    scaling = SCALING.model_copy(update={"target_p95_latency_ms": 500})
    samples = [LoadSample(at=i * 10.0, pods=2, in_flight=2, queued=0, p95_ms=900.0) for i in range(3)]
    plan = _scale(samples, current=2, now=20.0, scaling=scaling)
    assert plan is not None and plan.replicas == 3 and "p95 latency" in plan.reason


def test_scale_in_only_after_the_window() -> None:
    quiet = _samples([1, 1, 1, 1], pods=4, start=0.0)
    assert _scale(quiet, current=4, now=30.0) is None  # window (60 s) not yet covered
    quiet = _samples([1, 1, 1, 1, 1, 1, 1], pods=4, start=0.0)
    plan = _scale(quiet, current=4, now=60.0)
    assert plan is not None and plan.replicas == 1 and "scale in" in plan.reason


def test_scale_in_goes_to_the_highest_recent_need() -> None:
    samples = _samples([1, 9, 1, 1, 1, 1, 1], pods=4)
    plan = _scale(samples, current=4, now=60.0)
    assert plan is not None and plan.replicas == 3


def test_samples_before_the_last_scale_are_ignored() -> None:
    samples = _samples([20, 20, 20], pods=2) + _samples([20], pods=5, start=30.0)
    assert _scale(samples, current=5, now=30.0) is None


def test_hpa_owns_replicas() -> None:
    hpa = SCALING.model_copy(update={"provider": "HPA", "target_cpu_utilization_percent": 70})
    assert _scale(_samples([100, 100, 100], pods=1), current=1, now=20.0, scaling=hpa) is None


def test_disabled_autoscaling_never_scales() -> None:
    assert _scale(_samples([100, 100, 100], pods=1), current=1, now=20.0, scaling=AutoscalingSpec()) is None


def test_out_of_bounds_is_corrected() -> None:
    plan = _scale([], current=9, now=0.0)
    assert plan is not None and plan.replicas == 6


def test_sample_load_skips_unreachable() -> None:
    polls = [
        Poll(at=0, state=H, in_flight=3, queued=1, p95_ms=50.0),
        Poll(at=0, state=D, in_flight=2, p95_ms=90.0),
        Poll(at=0, state=X),
    ]
    assert sample_load(polls, at=1.0) == LoadSample(at=1.0, pods=2, in_flight=5, queued=1, p95_ms=90.0)


# --- activity ----------------------------------------------------------------------------------

ROUND = [
    Poll(at=0, state=H, open_streams=2, active_conversations=40),
    Poll(at=0, state=D, open_streams=1, active_conversations=40),
    Poll(at=0, state=X),
]


@pytest.mark.parametrize(("shared", "conversations"), [(True, 40), (False, 80)], ids=["postgresql", "sqlite"])
def test_streams_add_up_and_conversations_are_counted_once_in_a_shared_database(
    shared: bool, conversations: int
) -> None:
    assert activity(ROUND, shared_database=shared) == {"openStreams": 3, "activeConversations": conversations}


def test_no_answer_is_no_activity() -> None:
    assert activity([], shared_database=True) == {"openStreams": 0, "activeConversations": 0}


# --- spend -------------------------------------------------------------------------------------


def spend(
    period: str = "2026-12-02", *, tokens: int, cost: float | None = None, shared: bool, percent: float | None = None
) -> Spend:
    return Spend(
        period=period,
        resets_at="2026-12-03T00:00:00Z" if period == "2026-12-02" else "2026-12-04T00:00:00Z",
        tokens=tokens,
        cost=cost,
        currency=None if cost is None else "EUR",
        shared=shared,
        budget_percent=percent,
    )


def test_a_shared_ledger_is_counted_once_and_pods_ledgers_add_up() -> None:
    shared = [
        Poll(at=0, state=H, spend=spend(tokens=100, cost=0.5, shared=True, percent=50)),
        Poll(at=0, state=H, spend=spend(tokens=90, cost=0.45, shared=True, percent=45)),
        Poll(at=0, state=X),
    ]
    assert agent_spend(shared) == {
        "period": "2026-12-02",
        "resetsAt": "2026-12-03T00:00:00Z",
        "tokens": 100,
        "cost": 0.5,
        "currency": "EUR",
        "budgetPercent": 50,
    }
    own = [
        Poll(at=0, state=H, spend=spend(tokens=100, cost=0.1, shared=False, percent=60)),
        Poll(at=0, state=D, spend=spend(tokens=30, cost=0.2, shared=False, percent=70)),
    ]
    assert agent_spend(own) == {
        "period": "2026-12-02",
        "resetsAt": "2026-12-03T00:00:00Z",
        "tokens": 130,
        "cost": 0.3,
        "currency": "EUR",
        "budgetPercent": 70,
    }


def test_only_the_newest_period_counts_and_no_report_is_no_spend() -> None:
    polls = [
        Poll(at=0, state=H, spend=spend(tokens=900, shared=False)),
        Poll(at=0, state=H, spend=spend("2026-12-03", tokens=5, shared=False)),
    ]
    assert agent_spend(polls) == {"period": "2026-12-03", "resetsAt": "2026-12-04T00:00:00Z", "tokens": 5}
    assert agent_spend([Poll(at=0, state=H), Poll(at=0, state=X)]) is None


@pytest.mark.parametrize(
    ("percent", "level"),
    [(None, None), (79.9, None), (80, "warn"), (99, "warn"), (100, "exhausted"), (250, "exhausted")],
)
def test_budget_levels(percent: float | None, level: str | None) -> None:
    assert budget_level({"budgetPercent": percent}, warn_at_percent=80) == level
    assert budget_level(None, warn_at_percent=80) is None


def test_classify_keeps_the_spend_and_an_older_runtime_has_none() -> None:
    body = _body(spend=spend(tokens=7, shared=True).model_dump(mode="json", by_alias=True))
    assert classify(body, at=0, health=HEALTH).spend == spend(tokens=7, shared=True)
    assert classify(_body(), at=0, health=HEALTH).spend is None
