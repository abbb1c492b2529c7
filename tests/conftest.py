"""Shared test setup: no real model requests, and the fixture plugins of each tier."""

from __future__ import annotations

import pydantic_ai.models

# Agents run on TestModel/FunctionModel; a test that would reach a real provider fails loudly.
pydantic_ai.models.ALLOW_MODEL_REQUESTS = False

# Each plugin module holds the fixtures of one kind of real dependency (add yours here).
pytest_plugins: list[str] = ["tests.kube", "tests.services"]
