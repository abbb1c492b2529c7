"""The runtime's configuration: one AgentDeployment (or its spec) from a file, with its secrets resolved.

Everything is checked before the server binds its port, so a bad ConfigMap or a missing Secret shows
up as one line naming every bad key, in the pod's log and termination message (and exit code 2), never as a
traceback later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentry_api import wiring
from agentry_api.base import error_lines
from agentry_api.v1alpha1 import AgentDeployment, AgentDeploymentSpec, SecretKeyRef


class ConfigError(Exception):
    """The configuration cannot be used; `lines` names each bad key."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class RuntimeConfig:
    """What one runtime process serves: which agent, with which spec and secret values."""

    name: str
    """Name of the AgentDeployment; labels metrics and audit records, prefixes cache keys."""
    namespace: str
    """Namespace of the AgentDeployment, for the same reasons."""
    spec: AgentDeploymentSpec
    """The validated spec, read with the same model the operator and the CRD use."""
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Secret values by the field path that references them (`spec.security.auth.secretRef`)."""

    def secret(self, path: str) -> str | None:
        """The value of the Secret referenced at `path`, or None when the spec references none there."""
        return self.secrets.get(path)


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> RuntimeConfig:
    """Read, validate and resolve the configuration file; raise ConfigError naming every bad key."""
    env = os.environ if environ is None else environ
    document = _read_yaml(Path(path))
    name, namespace, spec = parse_document(document)
    secrets_dir = env.get(wiring.SECRETS_DIR_ENV, wiring.SECRETS_DIR)
    return RuntimeConfig(
        name=name,
        namespace=namespace,
        spec=spec,
        secrets=resolve_secrets(spec=spec, environ=env, secrets_dir=secrets_dir),
    )


def parse_document(document: object) -> tuple[str, str, AgentDeploymentSpec]:
    """Name, namespace and spec of a whole manifest, or of a bare spec (then named `agent` in `default`)."""
    if not isinstance(document, dict):
        raise ConfigError(["(root): expected a mapping (an AgentDeployment manifest or its spec)"])
    try:
        if _is_manifest(document):
            manifest = AgentDeployment.model_validate(document)
            return manifest.metadata.name, manifest.metadata.namespace, manifest.spec
        return "agent", "default", AgentDeploymentSpec.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(error_lines(exc, prefix="" if _is_manifest(document) else "spec")) from None


def resolve_secrets(*, spec: AgentDeploymentSpec, environ: Mapping[str, str], secrets_dir: str) -> dict[str, str]:
    """Every referenced Secret value: the env var override first, then the projected file.

    All references are tried before failing, so one start-up names every missing Secret at once.
    A single trailing newline is dropped: `kubectl create secret --from-file` keeps the one editors add.
    """
    values: dict[str, str] = {}
    problems: list[str] = []
    for path, ref in spec.secret_refs():
        value = _read_secret(ref=ref, environ=environ, secrets_dir=secrets_dir)
        if value is None:
            problems.append(
                f"{path}: secret file {wiring.secret_file_path(ref, secrets_dir=secrets_dir)} not "
                f"found (nor env {wiring.secret_env_name(ref)})"
            )
        else:
            values[path] = value
    if problems:
        raise ConfigError(problems)
    return values


def _read_secret(*, ref: SecretKeyRef, environ: Mapping[str, str], secrets_dir: str) -> str | None:
    from_env = environ.get(wiring.secret_env_name(ref))
    if from_env is not None:
        return from_env
    file = Path(wiring.secret_file_path(ref, secrets_dir=secrets_dir))
    try:
        text = file.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return text.removesuffix("\n").removesuffix("\r")


def _is_manifest(document: Mapping[str, Any]) -> bool:
    return "spec" in document or "apiVersion" in document or "kind" in document


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"(file): cannot read {path}: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"(file): {path} is not valid YAML: {exc}"]) from None
