"""The Argo CD health check of `examples/argocd-application.yaml`, run in a real Lua runtime (lupa)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "argocd-application.yaml"
KEY = "resource.customizations.health.agentry.dev_AgentDeployment"


def health_script() -> str:
    """The Lua body as the example's argocd-cm carries it."""
    documents = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    script: str = config_map["data"][KEY]
    return script


@functools.cache
def _health_function() -> Any:
    import lupa  # the dev extra brings it; a missing Lua runtime must fail, not skip

    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    return lua, lua.execute("return function(obj)\n" + health_script() + "\nend")


def argocd_health(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) the way Argo CD runs the check: `obj` is the live object as a Lua table."""
    lua, function = _health_function()
    result = function(lua.table_from(dict(obj), recursive=True))
    return str(result["status"]), str(result["message"])
