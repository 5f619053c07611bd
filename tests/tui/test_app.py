"""Every binding of the fleet screen, driven by a pilot against the simulated fleet."""

from __future__ import annotations

import io
import json
import sys
import threading

import yaml
from rich.console import Console as RichConsole
from textual.command import CommandList
from textual.widgets import Input, Sparkline

from console.tui.confirm import ConfirmModal
from console.tui.detail import NodeScreen, PoolScreen
from console.tui.fleet import FleetScreen
from console.tui.help import HelpScreen
from console.tui.log import LogScreen
from console.tui.table import LiveTable
from tests.tui.conftest import Console, until

SIZE = (80, 24)


def text_of(widget: object) -> str:
    """What a Static shows, as plain text (tables rendered 80 columns wide)."""
    console = RichConsole(width=80, record=True, file=io.StringIO())
    console.print(widget.content)  # type: ignore[attr-defined]
    return console.export_text()


def offered(app: object) -> int:
    """How many hits the open command palette lists (0 when none is open yet)."""
    lists = app.screen.query(CommandList)  # type: ignore[attr-defined]
    return lists.first().option_count if lists else 0


def node_keys(app: object) -> list[str]:
    table = app.screen.query_one("#nodes", LiveTable)  # type: ignore[attr-defined]
    return [str(row.value) for row in table.rows]


async def test_the_fleet_screen_fills_in_and_stays_on_the_cursor_row(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        nodes = app.screen.query_one("#nodes", LiveTable)
        await pilot.press("down", "down")
        chosen = nodes.cursor_key
        first = app.latest
        await until(pilot, lambda: app.latest is not first, "a newer snapshot")
        assert nodes.cursor_key == chosen  # refreshes do not move the cursor
        pools = app.screen.query_one("#pools", LiveTable)
        assert [str(r.value) for r in pools.rows] == ["pool-a", "pool-b"]
        header = str(app.screen.query_one("#fleet-header").render())
        assert "up 6/6" in header and "● live" in header


async def test_sort_filter_pause_and_refresh(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        nodes = app.screen.query_one("#nodes", LiveTable)
        assert nodes.border_title == "sort: severity"
        await pilot.press("s")
        assert nodes.border_title == "sort: name"
        assert node_keys(app) == sorted(node_keys(app))

        await pilot.press("slash")
        assert app.screen.query_one("#filter", Input).has_focus
        await pilot.press(*"pool-b", "enter")
        assert set(node_keys(app)) == {"node-004", "node-005", "node-006"}
        assert "filter: pool-b" in str(nodes.border_title)
        await pilot.press("slash", "escape")  # clears it
        await until(pilot, lambda: len(node_keys(app)) == 6, "the filter cleared")

        await pilot.press("p")
        assert app.paused and "paused" in str(app.screen.query_one("#fleet-header").render())
        shown = app.screen.snapshot
        await until(pilot, lambda: app.latest is not shown, "data while paused")
        assert app.screen.snapshot is shown  # frozen view, fresh data underneath
        await pilot.press("p")
        assert app.screen.snapshot is app.latest

        before = app.latest
        await pilot.press("r")
        await until(pilot, lambda: app.latest is not before, "a refresh", limit=2.0)


async def test_drain_declined_then_confirmed_then_undrained(sim_console: Console) -> None:
    app = sim_console.app()
    gateway = sim_console.fleet.gateway
    assert gateway is not None
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("s")  # by name: node-001 first
        target = app.screen.query_one("#nodes", LiveTable).cursor_key
        assert target == "node-001"

        await pilot.press("d")
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.plan.summary == "drain node node-001 (pool pool-a)"
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmModal)
        assert not sim_console.audit.exists()

        await pilot.press("d", "tab", *"INC-42", "enter")
        await until(pilot, lambda: not app.running and sim_console.audit.exists(), "the drain")
        states = {v.servers[("pool-a", "node-001")].state for v in gateway.views()}
        assert states == {"DRAIN"}
        records = [json.loads(line) for line in sim_console.audit.read_text().splitlines()]
        assert [(r["kind"], r["outcome"], r["reason"]) for r in records] == [
            ("intent", None, "INC-42"),
            ("result", "verified", "INC-42"),
        ]
        await until(
            pilot,
            lambda: any(n.name == "node-001" and n.state == "DRAIN" for n in app.latest.nodes),
            "the drain to show",
        )
        await pilot.press("u", "y")
        await until(pilot, lambda: not app.running, "the undrain")
        await until(
            pilot,
            lambda: {v.servers[("pool-a", "node-001")].state for v in gateway.views()} == {"UP"},
            "node-001 UP again",
        )


async def test_failover_of_the_focused_pool(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("s", "f")  # the pool of the node under the cursor (node-001: pool-a)
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.plan.summary.startswith("failover pool pool-a: route → pool-b")
        await pilot.press("y")
        await until(
            pilot,
            lambda: any(p.name == "pool-a" and p.failed_over for p in app.latest.pools),
            "pool-a failed over",
        )
        await pilot.press("F", "y")
        await until(
            pilot,
            lambda: any(p.name == "pool-a" and p.failed_over is False for p in app.latest.pools),
            "pool-a failed back",
        )


async def test_a_refused_plan_can_only_be_closed(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("s", "down", "down", "down", "f")  # node-004: pool-b has no standby
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.plan.refusal == "pool pool-b has no standby: name one with --to"
        await pilot.press("y")  # does nothing
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("escape")
        assert not isinstance(app.screen, ConfirmModal)


async def test_read_only_keys_say_why_they_do_nothing(sim_console: Console) -> None:
    app = sim_console.app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("d")
        assert not isinstance(app.screen, ConfirmModal)
        assert any("read-only mode: drain is disabled" in n.message for n in app._notifications)
        assert not sim_console.audit.exists()


async def test_help_is_generated_from_the_bindings(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        described = dict(app.screen.bindings)
        assert described["d"] == "Drain" and described["/"] == "Filter"
        assert described["F"] == "Failback" and described["q"] == "Quit"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_quit_asks_while_an_action_runs(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("s", "b", "y")  # a rollback takes a second in the sim
        await until(pilot, lambda: bool(app.running), "the rollback to start")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.plan.summary.startswith("quit while running: rollback node node-001")
        await pilot.press("n")
        assert app.is_running
        await until(pilot, lambda: not app.running, "the rollback to end")
        await pilot.press("q")
    assert app.return_code == 0 or app.return_code is None
    # the collector's thread closed its connections and stopped with the app
    assert not [t for t in threading.enumerate() if t.name == "collector"]


async def test_enter_opens_node_and_pool_details_that_follow_the_fleet(
    sim_console: Console,
) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("s", "enter")
        assert isinstance(app.screen, NodeScreen) and app.screen.target == "node-001"
        title = str(app.screen.query_one("#detail-title").render())
        assert "node-001" in title and "revision rev-2" in title
        gpus = text_of(app.screen.query_one("#detail-table"))
        assert "GPU" in gpus and "THROTTLE" in gpus
        spark = app.screen.query_one("#spark-waiting", Sparkline)
        await until(pilot, lambda: len(spark.data or []) > 0, "history in the sparkline")
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)

        await pilot.press("tab", "enter")  # the pools table
        assert isinstance(app.screen, PoolScreen) and app.screen.target == "pool-a"
        title = str(app.screen.query_one("#detail-title").render())
        assert "standby pool-b" in title and "route → pool-a (own backend)" in title
        await pilot.press("escape")


async def test_the_action_log_lists_actions_newest_first(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("s", "a", "y")
        await until(pilot, lambda: not app.running and sim_console.audit.exists(), "the ack")
        await pilot.press("d", "y")
        await until(pilot, lambda: not app.running, "the drain")
        await pilot.press("e")
        assert isinstance(app.screen, LogScreen)
        lines = str(app.screen.query_one("#log-lines").render()).splitlines()
        assert lines[0].startswith("TIME") and " drain " in lines[1] and " ack " in lines[2]
        await pilot.press("escape")
        # the node's events name the action
        await pilot.press("enter")
        events = str(app.screen.query_one("#detail-events").render())
        assert "verified: drain node node-001" in events


async def test_the_command_palette_jumps_and_acts(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("colon", *"go to node-005")
        await until(pilot, lambda: offered(app) > 0, "the palette's hits")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FleetScreen), "the palette to close")
        assert app.screen.query_one("#nodes", LiveTable).cursor_key == "node-005"

        await pilot.press("colon", *"failover pool-a")
        await until(pilot, lambda: offered(app) > 0, "the palette's hits")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the failover's plan")
        assert app.screen.plan.summary.startswith("failover pool pool-a")
        await pilot.press("n")


async def test_switching_theme_restyles_the_status_words(sim_console: Console) -> None:
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        assert app.theme == "fleetdeck-dark"
        before = app.palette["ok"]
        app.theme = "fleetdeck-colorblind"
        await pilot.pause()
        assert app.palette["ok"] != before
        assert app.screen.palette is app.palette
        nodes = app.screen.query_one("#nodes", LiveTable)
        cell = nodes.get_cell("node-001", "severity")
        assert cell.style == app.palette[app.latest.nodes[0].severity.label]


async def test_operator_commands_run_on_their_keys(sim_console: Console) -> None:
    document = yaml.safe_load(sim_console.config_path.read_text())
    document["commands"] = [
        {
            "name": "where",
            "key": "W",
            "scope": "node",
            "argv": [sys.executable, "-c", "print('{node}')"],
            "confirm": False,
        },
        {"name": "wipe", "key": "X", "scope": "pool", "argv": ["false"], "dangerous": True},
    ]
    sim_console.config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    app = sim_console.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(node_keys(app)) == 6, "six node rows")
        await pilot.press("s", "W")  # no confirmation asked for this one
        await until(pilot, lambda: sim_console.audit.exists() and not app.running, "the command")
        records = [json.loads(line) for line in sim_console.audit.read_text().splitlines()]
        assert [(r["action"], r["outcome"]) for r in records] == [
            ("command:where", None),
            ("command:where", "verified"),
        ]
        assert records[1]["replicas"][0]["detail"] == "node-001"
        await pilot.press("X")  # dangerous: confirmed first
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
    read_only = sim_console.app(read_only=True)
    async with read_only.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        described = dict(read_only.screen.bindings)
        assert "W" in described and "X" not in described  # dangerous ones are hidden
