"""Agentry operator: reconciles AgentDeployments into running PydanticAI agents."""
