"""Where each protocol is served: the paths both sides name, and status.endpoints built from them (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from .v1alpha1 import Endpoints, Protocol

#: Agentry's own API, always served.
RUN_PATH = "/v1/run"
STREAM_PATH = "/v1/run/stream"
#: What an OpenAI client takes as its base URL; it POSTs `/chat/completions` under it.
OPENAI_BASE_PATH = "/v1"
OPENAI_CHAT_PATH = "/v1/chat/completions"
#: The A2A agent card (discovery) and the JSON-RPC endpoint the card names.
A2A_CARD_PATH = "/.well-known/agent.json"
A2A_RPC_PATH = "/a2a"
AG_UI_PATH = "/v1/ag-ui"


def endpoints(url: str, protocols: Sequence[Protocol]) -> Endpoints:
    """The URL of each endpoint served at `url` (status.url, no trailing slash) with these protocols."""
    served = set(protocols)
    return Endpoints(
        run=url + RUN_PATH,
        stream=url + STREAM_PATH,
        openai=url + OPENAI_BASE_PATH if Protocol.OPENAI in served else None,
        a2a=url + A2A_CARD_PATH if Protocol.A2A in served else None,
        ag_ui=url + AG_UI_PATH if Protocol.AG_UI in served else None,
    )


def protocols_column(protocols: Sequence[Protocol]) -> str:
    """status.protocols: the protocols in spec order, comma-separated (what `kubectl get agents -o wide` shows)."""
    return ",".join(protocol.value for protocol in protocols)
