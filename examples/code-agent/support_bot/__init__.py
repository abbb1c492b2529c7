"""A support bot: a PydanticAI agent that files and looks up tickets, run by Agentry."""
