"""Tests that run a real Prometheus (Debian's 2.42): skipped when it is not installed, except
where the `CI` variable is set, where its absence fails them."""

from __future__ import annotations

import os

import pytest

from console.errors import FleetdeckError
from console.plugin import Registry, load_registry
from console.sim.prometheus import find_prometheus


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    try:
        find_prometheus()
    except FleetdeckError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set, so the Prometheus tests must run)")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return load_registry(tmp_path_factory.mktemp("no-user-plugins"))
