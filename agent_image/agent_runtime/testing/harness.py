"""The harness: a user's agent run through the real request envelope, in process, with recording services."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml
from pydantic_ai.models import Model, override_allow_model_requests

from .. import sdk, usercode
from ..app import build_app
from ..config import RuntimeConfig, parse_document
from ..runtime import Runtime
from ..security.chain import verify_chain
from ..security.tokens import mint_token
from ..services.container import Services
from ..services.views import agent_services
from ..settings import RuntimeSettings
from .services import MemoryDatabase, RecordingCache, ScriptedExternalApi

__all__ = ["AgentHarness", "HarnessError"]

#: The Secret the harness's generated JWT key stands in; only its name shows (in the spec it builds).
JWT_REF = {"name": "agentry-testing-jwt", "key": "key"}
#: Where the entrypoint is said to be when the test hands over the object itself (the runtime imports nothing).
OBJECT_ENTRYPOINT = "agentry_testing.given:entrypoint"
#: The image a code-mode spec must name, when the manifest names none: the harness runs in the test's process.
TEST_IMAGE = "localhost/agentry-testing/agent:test"
#: Roles of the tokens `run` and `ask` send unless told otherwise: the role that may run agents.
DEFAULT_ROLES = ("agent_operator",)


class HarnessError(AssertionError):
    """A run did not answer 200, or the audit chain does not verify; the message has the status and the body."""


class AgentHarness:
    """The runtime of one AgentDeployment around the user's agent, served in process by httpx's ASGI transport.

        async with AgentHarness(manifest="agent.yaml", model=TestModel()) as kit:
            answer = await kit.run("My printer is on fire")
            assert answer.status_code == 200
            assert kit.database.collection("tickets")

    Everything a pod does for a request happens: JWT authentication (with a key generated for the test),
    authorisation, rate limits, admission, the run with the spec's usage limits, redaction, the stored result and
    the hash-chained audit record. The services are in memory and record their calls (`database`, `cache`,
    `external_api`); `services` is what the agent's tools get of them. Model requests to a real provider are
    refused while the harness is open (pass `model=`, or `allow_model_requests=True` to call one on purpose).
    """

    def __init__(
        self,
        entrypoint: object | str | None = None,
        *,
        manifest: str | Path | Mapping[str, Any] | None = None,
        spec: Mapping[str, Any] | None = None,
        model: Model | None = None,
        external_api: ScriptedExternalApi | None = None,
        secrets_by_path: Mapping[str, str] | None = None,
        settings: RuntimeSettings | None = None,
        allow_model_requests: bool = False,
    ) -> None:
        """Describe the runtime; nothing starts before `async with`.

        Args:
            entrypoint: the Agent, AgentApp or factory, or its `package.module:attribute`; None takes the one the
                manifest names (so the test imports exactly what the pod will).
            manifest: the AgentDeployment (a path to its YAML, or the parsed document; a bare spec works too).
            spec: wire-format spec fields merged over the manifest and the harness's defaults, last.
            model: replaces the agent's model (`TestModel()`, `FunctionModel(...)`).
            external_api: the scripted API the tools reach as `deps.external_api`; None leaves it None.
            secrets_by_path: values of the Secrets the spec references, by field path
                (`spec.agent.endpoint.apiKeySecretRef`); absent ones get a random value (the JWT key `jwt_key`).
            settings: the HTTP layer's limits.
            allow_model_requests: let the agent call a real model provider.
        """
        document = _read_manifest(manifest)
        self.name, self.namespace, wire = _split(document)
        self.entrypoint = _entrypoint(entrypoint, wire)
        self.jwt_key = secrets.token_urlsafe(32)
        """The HMAC key the runtime verifies tokens with; `token()` signs with it."""
        self._spec = _merge(_with_test_defaults(wire), spec or {})
        self._secrets = dict(secrets_by_path or {})
        self.config = self._config()
        """The validated config the runtime is built from (a bad spec raised ConfigError naming the field)."""
        self._model = model
        self._settings = settings
        self._allow_model_requests = allow_model_requests
        self.database = MemoryDatabase()
        """The runtime's database: results, audit rows, the user's records; `calls` lists what it was asked."""
        self.cache = RecordingCache()
        """The runtime's cache; `app_calls()` shows the user's tools' calls without the `app:` prefix."""
        self.external_api = external_api
        self.services: sdk.Services = agent_services(
            Services(database=self.database, cache=self.cache, external_api=external_api)
        )
        """The services as the agent's tools get them: read what a tool stored through them."""
        self.audit_stream = io.StringIO()
        """The audit records as JSON lines, as the pod writes them to stdout."""
        self._runtime: Runtime | None = None
        self._client: httpx.AsyncClient | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def runtime(self) -> Runtime:
        """The running runtime (its config, metrics, admission), for what the HTTP API does not show."""
        if self._runtime is None:
            raise RuntimeError("the harness is not started: use `async with AgentHarness(...) as kit`")
        return self._runtime

    @property
    def client(self) -> httpx.AsyncClient:
        """An httpx client of the runtime's HTTP API (base URL http://agent.test); send `headers()` with it."""
        if self._client is None:
            raise RuntimeError("the harness is not started: use `async with AgentHarness(...) as kit`")
        return self._client

    async def __aenter__(self) -> AgentHarness:
        runtime = Runtime(
            config=self.config,
            services=Services(database=self.database, cache=self.cache, external_api=self.external_api),
            settings=self._settings,
            model=self._model,
            audit_stream=self.audit_stream,
            entrypoint=self.entrypoint,
        )
        app = build_app(runtime)
        try:
            self._stack.enter_context(override_allow_model_requests(self._allow_model_requests))
            await self._stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            self._client = await self._stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://agent.test")
            )
        except BaseException:
            await self._stack.aclose()
            raise
        self._runtime = runtime
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            await self._stack.aclose()
        finally:
            self._client = None
            self._runtime = None

    def _config(self) -> RuntimeConfig:
        metadata = {"name": self.name, "namespace": self.namespace}
        name, namespace, spec = parse_document(
            {"apiVersion": "agentry.dev/v1alpha1", "kind": "AgentDeployment", "metadata": metadata, "spec": self._spec}
        )
        values = {path: self._secret(path) for path, _ in spec.secret_refs()}
        return RuntimeConfig(name=name, namespace=namespace, spec=spec, secrets=values)

    def token(self, *roles: str, subject: str = "tester", ttl_seconds: int = 600, **claims: Any) -> str:
        """A bearer token the runtime accepts: signed with the test key, the spec's issuer, audience, roles claim."""
        auth = self.config.spec.security.auth
        return mint_token(
            key=self.jwt_key,
            subject=subject,
            roles=roles or DEFAULT_ROLES,
            ttl_seconds=ttl_seconds,
            issuer=auth.issuer,
            audience=auth.audience,
            roles_claim=auth.roles_claim,
            extra_claims=claims or None,
        )

    def headers(self, *roles: str, subject: str = "tester") -> dict[str, str]:
        """The Authorization header of `token(*roles, subject=subject)`."""
        return {"Authorization": f"Bearer {self.token(*roles, subject=subject)}"}

    async def run(
        self, prompt: str, *, subject: str = "tester", roles: tuple[str, ...] = DEFAULT_ROLES, **body: Any
    ) -> httpx.Response:
        """POST /v1/run as `subject` with `roles`; `body` adds fields of the run request (camelCase)."""
        return await self.client.post(
            "/v1/run", json={"prompt": prompt, **body}, headers=self.headers(*roles, subject=subject)
        )

    async def ask(self, prompt: str, *, subject: str = "tester", **body: Any) -> Any:
        """The run's `output`, or HarnessError with the status and the error body when it did not answer 200."""
        answer = await self.run(prompt, subject=subject, **body)
        if answer.status_code != 200:
            raise HarnessError(f"POST /v1/run answered {answer.status_code}: {answer.text}")
        return answer.json()["output"]

    async def audit(self) -> list[dict[str, Any]]:
        """The stored audit records, after storing the queued ones; HarnessError if the chain does not verify."""
        await self.runtime.audit.flush()
        report = verify_chain(self.database.audit_rows)
        if not report.ok:
            raise HarnessError(f"the audit chain does not verify: {report.message}")
        return [dict(record) for record in self.database.audit_records]

    def audit_log(self) -> list[dict[str, Any]]:
        """The JSON lines the audit trail wrote to its stream (the pod's stdout): records and chain checkpoints."""
        return [json.loads(line) for line in self.audit_stream.getvalue().splitlines() if line.startswith("{")]

    def _secret(self, path: str) -> str:
        if path in self._secrets:
            return self._secrets[path]
        if path == "spec.security.auth.secretRef":
            return self.jwt_key
        return secrets.token_urlsafe(32)


def _read_manifest(manifest: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    if manifest is None:
        return {}
    if isinstance(manifest, Mapping):
        return dict(manifest)
    document = yaml.safe_load(Path(manifest).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{manifest}: expected an AgentDeployment manifest (a mapping)")
    return document


def _split(document: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Name, namespace and wire spec of a manifest, or of a bare spec (then `agent` in `test`)."""
    if "spec" not in document and "kind" not in document:
        return "agent", "test", dict(document)
    metadata = document.get("metadata") or {}
    return str(metadata.get("name", "agent")), str(metadata.get("namespace", "test")), dict(document.get("spec") or {})


def _entrypoint(given: object | str | None, wire: Mapping[str, Any]) -> object:
    """The object to run: the one given, or imported from the given string or the manifest's entrypoint."""
    named = ((wire.get("agent") or {}).get("code") or {}).get("entrypoint")
    target = given if given is not None else named
    if target is None:
        raise ValueError("no agent: pass the entrypoint, or a manifest whose spec.agent.code.entrypoint names it")
    return usercode.import_entrypoint(target) if isinstance(target, str) else target


def _with_test_defaults(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The spec in code mode, with JWT auth by the generated key (its issuer and audience kept) and audit on.

    An image is named when the manifest names none, as code mode requires (the harness runs none).
    """
    agent = dict(wire.get("agent") or {})
    agent["code"] = {"entrypoint": (agent.get("code") or {}).get("entrypoint") or OBJECT_ENTRYPOINT}
    security = dict(wire.get("security") or {})
    auth = {key: value for key, value in (security.get("auth") or {}).items() if key != "publicKeySecretRef"}
    security["auth"] = auth | {"mode": "jwt", "secretRef": JWT_REF, "algorithms": ["HS256"]}
    security["audit"] = {**(security.get("audit") or {}), "enabled": True}
    pod = {"image": TEST_IMAGE, **(wire.get("pod") or {})}
    return {**wire, "agent": agent, "security": security, "pod": pod}


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base` (mappings merge, other values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        merged[key] = _merge(current, value) if isinstance(value, Mapping) and isinstance(current, Mapping) else value
    return merged
