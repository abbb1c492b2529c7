"""Agentry's own container images (base, pause, runtime, operator), built here without a daemon or a registry."""
