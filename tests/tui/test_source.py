"""A fleet read through a fleet source, in the TUI: the source's banner under the header while
it is down, behind or answering in part (cut, never wrapped), its severity in the header, the
footer kept on screen, keys still answered, and what a sourced node's detail screen says.
Driven by pilots on the frozen sourced fleet of `frozen_source.py`."""

from __future__ import annotations

import pytest
from rich.color import Color
from rich.style import Style
from textual.widgets import Footer

from console.model import Severity
from console.render import SEVERITY_MARK
from console.tui.app import FleetdeckApp
from console.tui.detail import NodeScreen, PoolScreen
from console.tui.fleet import FleetScreen
from console.tui.table import LiveTable
from console.tui.themes import DEFAULT_THEME
from tests.tui.conftest import until
from tests.tui.frozen_source import NO_ANSWER, URL, sourced
from tests.tui.test_snapshots import console

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
DOWN_BANNER = f"▲ prometheus {URL}: {NO_ANSWER}; data 40s old"
PARTIAL = (
    "gpu temp: HTTP 503: unavailable: query queue full",
    "tokens_per_s: HTTP 422: timeout: query timed out in expression evaluation",
)


@pytest.fixture(autouse=True)
def theme_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colours as the theme says, whatever the terminal running the tests."""
    monkeypatch.delenv("NO_COLOR", raising=False)


def screen_lines(app: FleetdeckApp) -> list[str]:
    """What the terminal shows, line by line, as the app's last frame composed it."""
    return [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]


def colour_of(app: FleetdeckApp, row: int, text: str) -> Color | None:
    """The foreground colour of `text` on screen row `row`."""
    strip = app.screen._compositor.render_strips()[row]
    style = next(segment.style for segment in strip if text in segment.text)
    return None if style is None else style.color


def palette_colour(app: FleetdeckApp, key: str) -> Color | None:
    """The colour the theme gives a status word."""
    return Style.parse(app.palette[key]).color


async def showing(pilot: object, app: FleetdeckApp) -> None:
    """Until the fleet screen shows the snapshot's four nodes."""
    await until(
        pilot,
        lambda: (
            isinstance(app.screen, FleetScreen)
            and app.screen.query_one("#nodes", LiveTable).row_count == 4
        ),
        "the four sourced nodes on the fleet screen",
    )


@SIZES
async def test_a_healthy_source_shows_no_banner(size: tuple[int, int]) -> None:
    app = console(DEFAULT_THEME, fleet=sourced())
    async with app.run_test(size=size) as pilot:
        await showing(pilot, app)
        lines = screen_lines(app)
        assert lines[0].startswith(f" {SEVERITY_MARK[Severity.OK]}")
        assert lines[1].lstrip().startswith("POOL")  # the pools right under the header
        assert not any("▲" in line for line in lines)
        assert not app.screen.query_one("#banners").display


@SIZES
async def test_a_down_source_is_a_banner_under_the_header_and_keys_still_work(
    size: tuple[int, int],
) -> None:
    fleet = sourced(since_s=40, error=NO_ANSWER)
    app = console(DEFAULT_THEME, fleet=fleet)
    height = size[1]
    async with app.run_test(size=size) as pilot:
        await showing(pilot, app)
        lines = screen_lines(app)
        assert lines[1].strip() == DOWN_BANNER
        assert colour_of(app, 1, "▲ prometheus") == palette_colour(app, "unknown")
        # the data is 40 s old: every node and pool unknown, as the source is, none critical
        assert fleet.severity is fleet.sources[0].severity is Severity.UNKNOWN
        assert lines[0].startswith(f" {SEVERITY_MARK[Severity.UNKNOWN]}")
        assert colour_of(app, 0, SEVERITY_MARK[Severity.UNKNOWN]) == palette_colour(app, "unknown")
        footer = app.screen.query_one(Footer)
        assert (footer.region.y, footer.region.height) == (height - 1, 1)
        assert "Sort" in lines[height - 1]

        await pilot.press("s")
        nodes = app.screen.query_one("#nodes", LiveTable)
        assert nodes.border_title == "sort: name"
        await pilot.press("enter")
        assert isinstance(app.screen, NodeScreen) and app.screen.target == "node-001"
        await until(pilot, lambda: DOWN_BANNER in screen_lines(app)[0], "the detail's banner")
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("tab", "enter")
        assert isinstance(app.screen, PoolScreen) and app.screen.target == "chat"
        await until(pilot, lambda: DOWN_BANNER in screen_lines(app)[0], "the pool's banner")
        await pilot.press("escape")
        await pilot.pause()
        assert screen_lines(app)[1].strip() == DOWN_BANNER


async def test_the_header_takes_the_severity_of_a_source_that_stopped_answering() -> None:
    """Down for 12 s: its last figures are still fresh and every pool is fine, so the header's
    mark is the source's own."""
    fleet = sourced(since_s=12, error=NO_ANSWER)
    assert all(pool.severity is Severity.OK for pool in fleet.pools)
    app = console(DEFAULT_THEME, fleet=fleet)
    async with app.run_test(size=(80, 24)) as pilot:
        await showing(pilot, app)
        lines = screen_lines(app)
        assert lines[0].startswith(f" {SEVERITY_MARK[Severity.UNKNOWN]}")
        mark = colour_of(app, 0, SEVERITY_MARK[Severity.UNKNOWN])
        assert mark == palette_colour(app, "unknown")
        assert lines[1].strip() == f"▲ prometheus {URL}: {NO_ANSWER}; data 12s old"


async def test_partial_data_is_a_warning_banner() -> None:
    app = console(DEFAULT_THEME, fleet=sourced(warnings=PARTIAL))
    async with app.run_test(size=(160, 48)) as pilot:
        await showing(pilot, app)
        lines = screen_lines(app)
        assert lines[1].strip() == f"▲ prometheus: partial data: {PARTIAL[0]} (+1 more)"
        assert colour_of(app, 1, "▲ prometheus") == palette_colour(app, "warn")
        assert lines[0].startswith(f" {SEVERITY_MARK[Severity.WARN]}")


async def test_a_banner_wider_than_the_terminal_is_cut_not_wrapped() -> None:
    url = "http://prometheus-k8s.monitoring.svc.cluster.local:9090"
    app = console(DEFAULT_THEME, fleet=sourced(since_s=40, error=NO_ANSWER, url=url))
    async with app.run_test(size=(80, 24)) as pilot:
        await showing(pilot, app)
        lines = screen_lines(app)
        assert len(f" ▲ prometheus {url}: {NO_ANSWER}; data 40s old") > 80
        assert lines[1].startswith(f" ▲ prometheus {url}") and lines[1].endswith("…")
        assert len(lines[1]) <= 80
        assert app.screen.query_one("#banners").region.height == 1
        assert lines[2].lstrip().startswith("POOL")  # no second line of the banner


async def test_a_sourced_node_s_detail_names_the_source_and_its_figures() -> None:
    app = console(DEFAULT_THEME, fleet=sourced())
    async with app.run_test(size=(80, 24)) as pilot:
        await showing(pilot, app)
        await pilot.press("s", "down", "down", "enter")
        assert isinstance(app.screen, NodeScreen) and app.screen.target == "node-003"
        await until(pilot, lambda: "node-003" in screen_lines(app)[0], "the node's title")
        lines = screen_lines(app)
        assert lines[0].split() == ["node-003", "pool", "code", "vllm", "✓", "ok"]
        assert lines[1].split() == [
            "model", "qwen2.5-coder-7b", "revision", "-", "gateway", "-", "data", "1.4s", "old",
        ]  # fmt: skip
        assert lines[2].strip() == f'from {URL} node="node-003"'
        gpus = [line.split() for line in lines if line.lstrip()[:1].isdigit()]
        assert gpus == [
            ["0", "66%", "32.0/48", "60°", "210/350", "-", "0", "-"],
            ["1", "69%", "32.0/48", "61°", "210/350", "-", "0", "-"],
        ]
        assert not app.screen.query_one("#detail-banner").display
