"""Tests of the development tooling (agentry_dev)."""
