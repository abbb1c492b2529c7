"""User agents the code-mode tests import by entrypoint, as a pod imports one from its image."""
