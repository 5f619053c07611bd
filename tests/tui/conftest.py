"""The TUI against a real simulated fleet (with its two-replica gateway) on loopback: pilots
drive the app as a user would, through the real collector and action engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.actions import Actions
from console.audit import AuditLog
from console.collector import Collector
from console.config import load_config
from console.headless import with_interval
from console.history import History
from console.overlay import AuditOverlay
from console.plugin import load_registry
from console.sim import SimFleet
from console.tui.app import FleetdeckApp
from console.tui.feed import CollectorFeed
from console.tui.themes import DEFAULT_THEME, choose_theme, load_themes, theme_folders

WAIT_S = 10.0


@dataclass
class Console:
    fleet: SimFleet
    config_path: Path
    audit: Path

    def app(self, read_only: bool = False) -> FleetdeckApp:
        config = with_interval(load_config(self.config_path), 0.5)
        collector = Collector(
            config, load_registry(), overlay=AuditOverlay(self.audit, config), history=History()
        )
        actions = Actions(config, collector, AuditLog(self.audit), read_only=read_only)
        themes = load_themes(theme_folders())
        return FleetdeckApp(
            CollectorFeed(collector),
            actions,
            read_only=read_only,
            commands=config.commands,
            themes=themes,
            theme=choose_theme(themes, DEFAULT_THEME),  # whatever TERM the tests run under
        )


async def until(pilot: Any, ready: Callable[[], bool], what: str, limit: float = WAIT_S) -> None:
    """Let the app run until `ready()` holds; fail naming `what` after `limit` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not ready():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {limit:g} s waiting for {what}")
        await pilot.pause(0.05)


@pytest.fixture
async def sim_console(tmp_path: Path) -> AsyncIterator[Console]:
    async with SimFleet(
        nodes=6, seed=4, gpus=2, pools=2, gateway=True, gateway_replicas=2
    ) as fleet:
        path = tmp_path / "fleet.yaml"
        path.write_text(fleet.config_yaml(), encoding="utf-8")
        yield Console(fleet, path, tmp_path / "audit.jsonl")
