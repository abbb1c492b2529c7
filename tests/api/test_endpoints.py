"""status.endpoints and status.protocols from the served protocols: a URL for each, none for what is not served."""

from __future__ import annotations

from agentry_api.endpoints import endpoints, protocols_column
from agentry_api.v1alpha1 import DEFAULT_PROTOCOLS, Protocol

URL = "http://triage.team-a.svc:8080"


def test_every_protocol_has_its_url_under_the_service() -> None:
    assert endpoints(URL, DEFAULT_PROTOCOLS).model_dump(by_alias=True) == {
        "run": f"{URL}/v1/run",
        "stream": f"{URL}/v1/run/stream",
        "openai": f"{URL}/v1",
        "a2a": f"{URL}/.well-known/agent.json",
        "agUI": f"{URL}/v1/ag-ui",
    }
    assert protocols_column(DEFAULT_PROTOCOLS) == "openai,a2a,ag-ui"


def test_without_protocols_only_agentrys_own_api_is_listed() -> None:
    served = endpoints(URL, [])
    assert (served.run, served.stream) == (f"{URL}/v1/run", f"{URL}/v1/run/stream")
    assert (served.openai, served.a2a, served.ag_ui) == (None, None, None)
    assert protocols_column([]) == ""


def test_the_column_keeps_the_spec_order_and_a_url_only_for_what_is_served() -> None:
    chosen = [Protocol.AG_UI, Protocol.OPENAI]
    served = endpoints(URL, chosen)
    assert protocols_column(chosen) == "ag-ui,openai"
    assert (served.openai, served.a2a, served.ag_ui) == (f"{URL}/v1", None, f"{URL}/v1/ag-ui")
