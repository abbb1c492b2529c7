"""The security steps of the request envelope: who calls, may they, are they within their limits and budgets.

Glue over this package for `envelope.py`, its only caller: it turns the verdicts into ApiErrors and
counts refusals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import ApiError
from ..metrics import RuntimeMetrics
from .auth import Authenticator, AuthError, Principal
from .budgets import BudgetDecision, Budgets, Crossing
from .permissions import Permission, authorize
from .ratelimit import RateDecision, RateLimiter
from .token_cache import VerifiedTokens

log = logging.getLogger(__name__)
_KINDS = {401: "unauthenticated", 403: "forbidden"}


@dataclass(frozen=True)
class Guard:
    """Authentication, authorisation, rate limits and budgets for the /v1 endpoints."""

    authenticator: Authenticator
    allowed_roles: tuple[str, ...]
    limiter: RateLimiter
    budgets: Budgets
    metrics: RuntimeMetrics
    verified: VerifiedTokens = field(default_factory=VerifiedTokens)

    def admit(self, *, authorization: str | None, permission: Permission) -> Principal:
        """The caller, when it proves who it is and holds the permission; 401 or 403 otherwise.

        Authorisation is checked on every request, also for a remembered token.
        """
        try:
            principal = self._authenticate(authorization)
            authorize(principal, permission, allowed_roles=self.allowed_roles)
        except AuthError as exc:
            challenge = exc.www_authenticate(token_sent=_sent_bearer(authorization))
            raise ApiError(
                exc.status_code,
                _KINDS.get(exc.status_code, "forbidden"),
                exc.message,
                headers={"WWW-Authenticate": challenge},
            ) from None
        return principal

    def _authenticate(self, authorization: str | None) -> Principal:
        """A remembered principal, or a full verification.

        Only a success is remembered, so every check (signature, lifetime, maxTokenLifetimeSeconds)
        has passed for whatever the cache returns.
        """
        remembered = self.verified.get(authorization) if authorization else None
        if remembered is not None:
            return remembered
        principal = self.authenticator.authenticate(authorization)
        if authorization:
            self.verified.put(authorization, principal)
        return principal

    async def hit_request(self, principal: Principal) -> None:
        """Count one request against the caller's requests-per-minute; 429 when over."""
        self._enforce(await self.limiter.hit_request(principal.subject))

    async def check_run(self, principal: Principal) -> None:
        """Refuse with 429 before a run when the caller spent its tokens for this minute, or a budget is spent."""
        self._enforce(await self.limiter.check_tokens(principal.subject))
        self._enforce_budget(await self.budgets.check(principal.subject))

    async def charge(self, principal: Principal, *, tokens: int, cost: Decimal) -> list[Crossing]:
        """Charge one model response to the caller's token rate and to the budgets; the budget levels it crossed.

        Each crossing is counted and logged once, by the replica whose charge crossed it (no caller identity in
        either: the request's audit record names who it was).
        """
        await self.limiter.add_tokens(principal.subject, tokens)
        crossings = await self.budgets.charge(principal.subject, tokens=tokens, cost=cost)
        policy = self.budgets.policy
        for crossing in crossings:
            limit = crossing.limit
            self.metrics.budget_crossings.labels(scope=limit.scope, kind=limit.kind, level=crossing.level).inc()
            share = "is spent" if crossing.level == "exhausted" else f"reached {policy.warn_at_percent}%"
            log.warning(
                "budget %s: the %s %s",
                crossing.level,
                limit.describe(policy.period, policy.currency),
                share,
                extra={"fields": {"scope": limit.scope, "kind": limit.kind, "level": crossing.level}},
            )
        return crossings

    def _enforce(self, decision: RateDecision) -> None:
        if decision.allowed:
            return
        self.metrics.rate_limited.labels(limit=decision.limit).inc()
        message = f"rate limit exceeded ({decision.limit}); retry in {decision.retry_after:.0f}s"
        raise ApiError(429, "rate_limited", message, retry_after=decision.retry_after)

    def _enforce_budget(self, decision: BudgetDecision) -> None:
        if decision.allowed or decision.limit is None or decision.period is None:
            return
        limit, period, policy = decision.limit, decision.period, self.budgets.policy
        self.metrics.budget_refused.labels(scope=limit.scope, kind=limit.kind).inc()
        message = (
            f"budget exceeded: the {limit.describe(policy.period, policy.currency)} is spent; "
            f"it resets at {period.resets_iso()}"
        )
        raise ApiError(429, "budget_exceeded", message, retry_after=decision.retry_after)


def _sent_bearer(authorization: str | None) -> bool:
    """Whether the request presented a bearer token at all (RFC 6750 has no error code otherwise)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())
