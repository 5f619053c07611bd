"""Tests of real programs from Debian's packages (HAProxy, Prometheus): skipped where the
program is missing, except where the `CI` variable is set, where its absence fails them."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from console.errors import FleetdeckError


def require(find: Callable[[], str], tests: str) -> None:
    """Skip (or, under CI, fail) the calling test unless `find` finds the program."""
    try:
        find()
    except FleetdeckError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set, so the {tests} tests must run)")
        pytest.skip(str(exc))
