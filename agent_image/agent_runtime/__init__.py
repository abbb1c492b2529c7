"""Agentry agent runtime: the HTTP service that runs one PydanticAI agent in a pod."""
