"""What the headless commands share: finding the fleet, loading plugins, measuring a snapshot.

`status` and `check` need rates, and a rate needs two readings: `measure()` scrapes every
target, waits out the window and scrapes again. A target that failed the first round keeps that
error rather than being tried again, so a dead fleet costs one timeout, not two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time

from console.collector import Collector
from console.errors import ConfigError
from console.fleet import FleetConfig, Refresh
from console.model import Snapshot
from console.plugin import Registry, load_registry

log = logging.getLogger("fleetdeck")


def load_fleet(explicit: str | None) -> FleetConfig:
    from console.config import find_config, load_config

    path = find_config(explicit)
    if path is None:
        raise ConfigError(
            "no fleet config found: pass -c FILE, set FLEETDECK_CONFIG, or create ./fleet.yaml"
        )
    return load_config(path)


def plugins() -> Registry:
    """Every plugin; a broken one is named on stderr and skipped."""
    registry = load_registry()
    for error in registry.errors:
        print(f"fleetdeck: warning: {error}", file=sys.stderr)
    return registry


def with_interval(config: FleetConfig, interval: float) -> FleetConfig:
    """The fleet with every target polled every `interval` seconds (timeouts kept within it)."""

    def refresh(old: Refresh) -> Refresh:
        return Refresh(interval=interval, timeout=min(old.timeout, interval))

    return dataclasses.replace(
        config,
        refresh=refresh(config.refresh),
        nodes=tuple(dataclasses.replace(n, refresh=refresh(n.refresh)) for n in config.nodes),
    )


async def measure(config: FleetConfig, registry: Registry, window: float) -> Snapshot:
    collector = Collector(config, registry)  # two readings: the rate spans them whatever the window
    try:
        started = time.monotonic()
        await collector.scrape_all()
        await asyncio.sleep(max(0.0, started + window - time.monotonic()))
        await collector.scrape_again()
        return collector.build()
    finally:
        await collector.aclose()
