"""What an agent run can reach: the services, handed to tools through `RunContext.deps`."""

from __future__ import annotations

from dataclasses import dataclass

from .services.container import Services
from .services.http import ExternalApi
from .services.protocols import Cache, Database


@dataclass(frozen=True)
class Deps:
    """The dependencies of one run; tools never reach services through globals."""

    database: Database
    cache: Cache
    external_api: ExternalApi | None = None

    @classmethod
    def from_services(cls, services: Services) -> Deps:
        """The deps of every run served by this process."""
        return cls(database=services.database, cache=services.cache, external_api=services.external_api)
