"""Tests that run a real Prometheus (Debian's 2.42): skipped when it is not installed, except
where the `CI` variable is set, where its absence fails them."""

from __future__ import annotations

import pytest

from console.plugin import Registry, load_registry
from console.sim.prometheus import find_prometheus
from tests.installed import require


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    require(find_prometheus, "Prometheus")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return load_registry(tmp_path_factory.mktemp("no-user-plugins"))
