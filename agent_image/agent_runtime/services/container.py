"""The service container: owns the lifecycles of the database, cache and external API client."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from .http import ExternalApi
from .protocols import Cache, Database, Service, ServiceHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """The services the runtime and the agent's tools use, typed by role."""

    database: Database
    cache: Cache
    external_api: ExternalApi | None = None

    def in_start_order(self) -> list[Service]:
        """Database first (results and audit need it), then the cache, then the optional API client."""
        ordered: list[Service] = [self.database, self.cache]
        if self.external_api is not None:
            ordered.append(self.external_api)
        return ordered


class ServiceContainer:
    """Starts services in order and closes them in reverse; a failed start closes what already started."""

    def __init__(self, services: Services, *, check_timeout: float = 2.0) -> None:
        self.services = services
        self.check_timeout = check_timeout
        self._started: list[Service] = []

    @property
    def started(self) -> bool:
        """True once every service started and until close()."""
        return len(self._started) == len(self.services.in_start_order())

    async def start(self) -> None:
        """Start each service; on failure close the started ones and raise with the service's name."""
        for service in self.services.in_start_order():
            try:
                await service.start()
            except Exception as exc:
                await self.close()
                raise RuntimeError(f"service {service.name} failed to start: {exc}") from exc
            self._started.append(service)

    async def close(self) -> None:
        """Close the started services in reverse order; one failing close does not skip the others."""
        while self._started:
            service = self._started.pop()
            try:
                await service.close()
            except Exception:
                log.exception("closing service %s failed", service.name)

    async def check(self) -> list[ServiceHealth]:
        """Every service's health, checked concurrently; a check that hangs is reported down."""
        return list(await asyncio.gather(*(self._check_one(s) for s in self.services.in_start_order())))

    async def _check_one(self, service: Service) -> ServiceHealth:
        if service not in self._started:
            return ServiceHealth(name=service.name, state="down", detail="not started")
        try:
            return await asyncio.wait_for(service.check(), timeout=self.check_timeout)
        except TimeoutError:
            return ServiceHealth(name=service.name, state="down", detail=f"check timed out after {self.check_timeout}s")
