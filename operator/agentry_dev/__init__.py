"""Local development: the pod runner that makes KWOK pods serve, and `agentry dev up/down`."""
