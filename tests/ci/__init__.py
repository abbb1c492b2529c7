"""Tests of the scripts under .ci/ that CI and the release workflow run."""
