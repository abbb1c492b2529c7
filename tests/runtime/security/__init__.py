"""Tests of the runtime security envelope."""
