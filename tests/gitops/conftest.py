"""Fixtures of the GitOps tests: kstatus built from its Go module once per session (cached per machine)."""

from __future__ import annotations

import pytest

from tests.support.gotools import GoToolBuildError, build

from .kstatus import KSTATUS, Kstatus


@pytest.fixture(scope="session")
def kstatus() -> Kstatus:
    """The kstatus helper, built once; a build failure fails the tests that need it (nothing is skipped)."""
    try:
        return Kstatus(build(KSTATUS))
    except GoToolBuildError as error:
        pytest.fail(str(error), pytrace=False)
