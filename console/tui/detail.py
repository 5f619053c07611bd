"""Detail screens: one node (its GPUs, sparklines of its history, model, revision, where its
data comes from, events) and one pool (its nodes, roll-up sparklines, route and standby,
revisions), each under a fleet source's banner while it is down or behind. They follow the
app's snapshots while open; esc goes back to the fleet."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static

from console.history import History
from console.model import NodeStatus, PoolStatus, Snapshot
from console.render import SEVERITY_MARK, fmt
from console.tui.events import EventLog
from console.tui.fleet import banner_lines

# (figure in History, label, how to show the last value)
FIGURES: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("gpu_util", "GPU util", lambda v: fmt(v, ".0f", suffix="%")),
    ("waiting", "queue", lambda v: fmt(v)),
    ("error_rate", "errors", lambda v: fmt(v, ".1f", 100, "%")),
    ("ttft_p95_s", "TTFT p95", lambda v: fmt(v, ".2f", suffix="s")),
    ("tokens_per_s", "tokens/s", lambda v: fmt(v)),
)
HISTORY_S = 900.0
# History slots are a second each, but a fleet refreshes every few seconds (a fleet source every
# 15 s): the value read holds until the next reading, so a gap up to this long is the last
# value, not a drop to zero. A longer one (the node down) shows as zero.
CARRY_SLOTS = 30
EVENTS_SHOWN = 12
GIB = 1 / 2**30


def _when(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


class DetailScreen(Screen[None]):
    """What the node and pool screens share: the sparklines, the events, following snapshots."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    scope = ""

    def __init__(
        self, name: str, history: History | None, events: EventLog, palette: Mapping[str, str]
    ) -> None:
        super().__init__()
        self.target = name
        self.history = history
        self.events = events
        self.palette = palette

    def compose(self) -> ComposeResult:
        banner = Static(id="detail-banner")
        banner.display = False  # until a fleet source has something to say
        yield banner
        with VerticalScroll():
            yield Static(id="detail-title")
            yield Static(id="detail-table")
            for figure, label, _ in FIGURES:
                with Horizontal(classes="spark-row"):
                    yield Static(label, classes="spark-label", id=f"label-{figure}")
                    yield Sparkline([], id=f"spark-{figure}", classes="spark")
            yield Static(id="detail-events")
        yield Footer()

    def apply(self, snapshot: Snapshot) -> None:
        if not self.is_mounted:
            return
        try:
            self._draw(snapshot)
        except NoMatches:  # torn down between the check and now (the app is exiting)
            return

    def _draw(self, snapshot: Snapshot) -> None:
        banner = self.query_one("#detail-banner", Static)
        banners = banner_lines(snapshot, self.palette)
        banner.update(banners)
        banner.display = bool(banners.plain)
        self.fill(snapshot)
        for figure, label, show in FIGURES:
            values = (
                []
                if self.history is None
                else self.history.values(self.scope, self.target, figure, HISTORY_S)
            )
            # from the first reading on: a new console's short history fills the line
            first = next((i for i, v in enumerate(values) if not math.isnan(v)), len(values))
            values = values[first:]
            known = [v for v in values if not math.isnan(v)]
            last = known[-1] if known else None
            self.query_one(f"#label-{figure}", Static).update(f"{label:9} {show(last):>7}")
            self.query_one(f"#spark-{figure}", Sparkline).data = carried(values, CARRY_SLOTS)
        lines = [f"{_when(e.time)}  {e.target}: {e.text}" for e in self.events.of(self.targets())]
        self.query_one("#detail-events", Static).update(
            "events (newest first)\n" + ("\n".join(lines[:EVENTS_SHOWN]) or "  none yet")
        )

    def targets(self) -> list[str]:
        return [self.target]

    def fill(self, snapshot: Snapshot) -> None:
        raise NotImplementedError


class NodeScreen(DetailScreen):
    scope = "node"

    def fill(self, snapshot: Snapshot) -> None:
        node = next((n for n in snapshot.nodes if n.name == self.target), None)
        if node is None:
            self.query_one("#detail-title", Static).update(f"{self.target}: no longer in the fleet")
            return
        self.query_one("#detail-title", Static).update(self._title(node))
        self.query_one("#detail-table", Static).update(_gpu_table(node, self.palette))

    def _title(self, node: NodeStatus) -> Text:
        title = Text(f"{node.name}", style="bold")
        title.append(f"  pool {node.pool}  {node.engine_kind}  ")
        title.append(SEVERITY_MARK[node.severity], self.palette[node.severity.label])
        title.append(f"\nmodel {node.engine.model or '-'}  revision {node.revision or '-'}")
        title.append(f"  gateway {node.state or '-'}  data {fmt(node.age_s, '.1f')}s old")
        title.append(f"\nfrom {', '.join(t.url for t in node.targets) or '-'}")
        if node.ack is not None:
            title.append(
                f"\nACK by {node.ack.user} until {_when(node.ack.until)}", self.palette["ack"]
            )
        for reason in node.reasons:
            title.append(f"\n  {reason}", self.palette[node.severity.label])
        return title


def _gpu_table(node: NodeStatus, palette: Mapping[str, str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("GPU", "UTIL", "MEM GiB", "TEMP", "POWER W", "THROTTLE", "ECC", "XID"):
        table.add_column(column, justify="left" if column == "THROTTLE" else "right")
    for gpu in node.gpus:
        throttle = ", ".join(t for t in gpu.throttle or () if t != "idle") or "-"
        table.add_row(
            str(gpu.index),
            Text("✗ lost", palette["crit"]) if gpu.lost else fmt(gpu.util, suffix="%"),
            f"{fmt(gpu.mem_used, '.1f', GIB)}/{fmt(gpu.mem_total, '.0f', GIB)}",
            fmt(gpu.temp, suffix="°"),
            f"{fmt(gpu.power)}/{fmt(gpu.power_limit)}",
            throttle,
            fmt(gpu.ecc_uncorrected),
            "-" if gpu.last_xid is None else Text(str(gpu.last_xid), palette["warn"]),
        )
    if not node.gpus:
        table.add_row("-", "no GPU figures", *[""] * 6)
    return table


class PoolScreen(DetailScreen):
    scope = "pool"

    def __init__(
        self,
        name: str,
        history: History | None,
        events: EventLog,
        palette: Mapping[str, str],
        standby: str | None,
    ) -> None:
        super().__init__(name, history, events, palette)
        self.standby = standby
        self.members: list[str] = []

    def targets(self) -> list[str]:
        return [self.target, *self.members]

    def fill(self, snapshot: Snapshot) -> None:
        pool = next((p for p in snapshot.pools if p.name == self.target), None)
        if pool is None:
            return
        nodes = [n for n in snapshot.nodes if n.pool == pool.name]
        self.members = [n.name for n in nodes]
        self.query_one("#detail-title", Static).update(self._title(pool))
        self.query_one("#detail-table", Static).update(_node_table(nodes, self.palette))

    def _title(self, pool: PoolStatus) -> Text:
        title = Text(pool.name, style="bold")
        title.append(f"  {pool.model or '-'}  ")
        title.append(SEVERITY_MARK[pool.severity], self.palette[pool.severity.label])
        title.append(f"  {pool.healthy}/{pool.nodes} healthy")
        route = "-" if pool.route is None else pool.route
        state = "failed over" if pool.failed_over else "own backend"
        title.append(f"\nroute → {route} ({state})  standby {self.standby or '-'}")
        for reason in pool.reasons:
            title.append(f"\n  {reason}", self.palette[pool.severity.label])
        return title


def _node_table(nodes: list[NodeStatus], palette: Mapping[str, str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NODE", "SEV", "GATEWAY", "REVISION", "RUN", "WAIT", "ERR"):
        table.add_column(column, justify="right" if column in ("RUN", "WAIT", "ERR") else "left")
    for node in nodes:
        table.add_row(
            node.name,
            Text(SEVERITY_MARK[node.severity], palette[node.severity.label]),
            node.state or "-",
            node.revision or "-",
            fmt(node.engine.running),
            fmt(node.engine.waiting),
            fmt(node.engine.error_rate, ".1f", 100, "%"),
        )
    return table


def carried(values: list[float], limit: int) -> list[float]:
    """`values` with each unknown (NaN) slot taking the last known value up to `limit` slots
    after it, and 0 beyond (a sparkline has no gaps)."""
    shown, last, since = [], 0.0, limit + 1
    for value in values:
        if math.isnan(value):
            since += 1
            shown.append(last if since <= limit else 0.0)
        else:
            shown.append(value)
            last, since = value, 0
    return shown
