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
from console.commandline import CommandLine
from console.errors import ConfigError
from console.fleet import FleetConfig, Refresh
from console.model import Snapshot
from console.overlay import AuditOverlay
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


def report_unfinished(overlay: AuditOverlay) -> None:
    """Name on stderr every action that wrote its intent and never its result."""
    from console.audit import format_time, unfinished

    for record in unfinished(overlay.records()):
        print(
            f"fleetdeck: warning: unfinished action {record.id}: {record.action} "
            f"{' '.join(record.targets)} by {record.user}@{record.host} at "
            f"{format_time(record.time)} (see fleetdeck audit --unfinished)",
            file=sys.stderr,
        )


def audit_overlay(config: FleetConfig, audit_log: str | None) -> AuditOverlay:
    """Acks and drift from the audit log (`--audit-log`, else the default path)."""
    from console.actions import audit_path

    return AuditOverlay(
        audit_path(audit_log, config), config, CommandLine.for_fleet(config, audit_log)
    )


async def measure(
    config: FleetConfig, registry: Registry, window: float, overlay: AuditOverlay | None = None
) -> Snapshot:
    # two readings: the rate spans them whatever the window
    collector = Collector(config, registry, overlay=overlay)
    try:
        started = time.monotonic()
        await collector.scrape_all()
        await asyncio.sleep(max(0.0, started + window - time.monotonic()))
        await collector.scrape_again()
        return collector.build()
    finally:
        await collector.aclose()
