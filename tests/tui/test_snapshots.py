"""SVG snapshots of the fleet, node detail, confirm and help screens at 80x24 and 160x48, in the
default and the monochrome theme, rendered from the frozen fleet in `frozen.py` with an injected
clock, so nothing in them depends on when or where they run.

A render that changed fails with a side-by-side report (snapshot_report.html). When the change
is intended, look at it there, then accept it with
`pytest tests/tui/test_snapshots.py --snapshot-update` and review the new SVGs in
`__snapshots__/`. The Textual and Rich versions they were made with are pinned in the `test`
extra of pyproject.toml.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot

from console.model import Snapshot
from console.plans import Request
from console.tui.app import FleetdeckApp
from console.tui.confirm import ConfirmModal
from console.tui.feed import StaticFeed
from console.tui.themes import DEFAULT_THEME, MONO_THEME, choose_theme, load_themes, theme_folders
from tests.tui import frozen, frozen_source

Compare = Callable[..., bool]
SIZES = ((80, 24), (160, 48))
THEMES = (DEFAULT_THEME, MONO_THEME)
terminals = pytest.mark.parametrize(
    ("size", "theme"),
    [pytest.param(s, t, id=f"{s[0]}x{s[1]}-{t}") for s, t in itertools.product(SIZES, THEMES)],
)


@pytest.fixture(autouse=True)
def same_everywhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Colours as the theme says whatever the terminal running the tests, clock times in UTC."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def console(theme: str, recorded: bool = False, fleet: Snapshot | None = None) -> FleetdeckApp:
    """The app on the frozen fleet (or on `fleet`); `recorded` gives it the fifteen minutes
    that led up to the frozen fleet (the detail screens' sparklines and events)."""
    themes = load_themes(theme_folders()[:1])  # the shipped ones: a user's file changes nothing
    history, events = frozen.recorded() if recorded else (None, None)
    return FleetdeckApp(
        StaticFeed(frozen.snapshot() if fleet is None else fleet),
        themes=themes,
        theme=choose_theme(themes, theme),
        clock=lambda: frozen.CLOCK,
        history=history,
        events=events,
    )


@terminals
def test_fleet(snap_compare: Compare, size: tuple[int, int], theme: str) -> None:
    """Pools, nodes worst first (every state: crit, ack, down, stale, drain, maint, warn, ok),
    the gateways with a replica down, and the drift of chat-06."""
    assert snap_compare(console(theme), terminal_size=size)


@terminals
def test_node_detail(snap_compare: Compare, size: tuple[int, int], theme: str) -> None:
    """code-02, the second row: a lost GPU, an XID, an acknowledgement, sparklines, events."""
    app = console(theme, recorded=True)
    assert snap_compare(app, press=["down", "enter"], terminal_size=size)


@terminals
def test_confirm_drain(snap_compare: Compare, size: tuple[int, int], theme: str) -> None:
    """The planned drain of chat-03: both gateway replicas, requests in flight, a capacity
    warning, the reason field and the answer keys."""
    plan = frozen.plan(Request("drain", "chat-03"))
    assert plan.refusal is None and plan.warnings  # what the render is meant to show

    async def open_modal(pilot: Pilot[None]) -> None:
        await pilot.app.push_screen(ConfirmModal(plan))

    assert snap_compare(console(theme), run_before=open_modal, terminal_size=size)


@terminals
def test_help(snap_compare: Compare, size: tuple[int, int], theme: str) -> None:
    """The keys of the fleet screen, generated from its bindings."""
    assert snap_compare(console(theme), press=["question_mark"], terminal_size=size)


def test_fleet_with_its_source_down(snap_compare: Compare) -> None:
    """A fleet read through a Prometheus that has not answered for 40 s: its banner under the
    header, every node stale, every pool and the header unknown."""
    fleet = frozen_source.sourced(since_s=40, error=frozen_source.NO_ANSWER)
    assert snap_compare(console(DEFAULT_THEME, fleet=fleet), terminal_size=(80, 24))
