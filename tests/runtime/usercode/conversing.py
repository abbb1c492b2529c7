"""A user agent with its own scripted model, for runtime processes (which take no model from a test)."""

from __future__ import annotations

from pydantic_ai import Agent

from tests.runtime.models import conversing_model

#: Tells in each answer which earlier prompts of its conversation it was shown.
agent = Agent(conversing_model(), output_type=str)
