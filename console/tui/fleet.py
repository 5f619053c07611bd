"""The fleet screen: a header line with the fleet's health at a glance, a fleet source's banner
while it is down or behind, the pools, the nodes (worst first), and the gateways with any drift.
Everything comes from the last snapshot; the screen only reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from console.model import NodeStatus, PoolStatus, Severity, Snapshot
from console.render import SEVERITY_MARK, fmt
from console.rules import total
from console.tui.rows import NODE_COLUMNS, POOL_COLUMNS, Column, fitting
from console.tui.table import LiveTable

# `s` cycles through these: (label, sort key of a node; lower first)
SORTS: tuple[tuple[str, Callable[[NodeStatus], Any]], ...] = (
    ("severity", lambda n: (-n.severity, n.name)),
    ("name", lambda n: n.name),
    ("waiting", lambda n: (-(n.engine.waiting or 0), n.name)),
    ("errors", lambda n: (-(n.engine.error_rate or 0), n.name)),
    ("gpu", lambda n: (-_gpu_avg(n), n.name)),
    ("pool", lambda n: (n.pool, n.name)),
)
MAX_POOL_ROWS = 6


def _gpu_avg(node: NodeStatus) -> float:
    utils = [g.util for g in node.gpus if g.util is not None and not g.lost]
    return sum(utils) / len(utils) if utils else -1.0


def matches(node: NodeStatus, text: str) -> bool:
    """The `/` filter: a case-insensitive substring of name, pool, engine, state or severity."""
    if not text:
        return True
    words = (node.name, node.pool, node.engine_kind, node.state or "", node.severity.label)
    needle = text.lower()
    return any(needle in word.lower() for word in words) or (needle == "down" and not node.up)


def header_line(snapshot: Snapshot, now: float, paused: bool, palette: Mapping[str, str]) -> Text:
    nodes, pools = snapshot.nodes, snapshot.pools
    up = sum(1 for n in nodes if n.up)
    requests = total(p.requests_per_s for p in pools)
    errors = total(
        (p.error_rate or 0) * (p.requests_per_s or 0) for p in pools if p.error_rate is not None
    )
    error_rate = None if not requests or errors is None else errors / requests
    age = max(0.0, now - snapshot.time)
    line = Text()
    line.append(SEVERITY_MARK[snapshot.severity], palette[snapshot.severity.label])
    # the live/paused marker first: a narrow terminal cuts the end of the line, never this
    line.append("  ⏸ paused" if paused else "  ● live", palette["warn"] if paused else "")
    line.append(f" │ up {up}/{len(nodes)} │ pools")
    for severity in Severity:
        count = sum(1 for p in pools if p.severity is severity)
        if count:
            line.append(f" {SEVERITY_MARK[severity][0]}{count}", palette[severity.label])
    line.append(f" │ err {fmt(error_rate, '.1f', 100, '%')}")
    line.append(f" │ queue {fmt(total(p.waiting for p in pools))}")
    line.append(f" │ {fmt(total(p.tokens_per_s for p in pools))} tok/s")
    line.append(f" │ {age:.0f}s old")
    return line


def banner_lines(snapshot: Snapshot, palette: Mapping[str, str]) -> Text:
    """One line per fleet source that is down, behind or answering in part: under the header,
    since every figure below it may be old."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for source in snapshot.sources:
        if source.banner:
            text.append(f"▲ {source.banner}\n", palette[source.severity.label])
    text.rstrip()
    return text


def gateway_lines(snapshot: Snapshot, palette: Mapping[str, str]) -> Text:
    """The fleet-wide strip: gateways, drift."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for gateway in snapshot.gateways:
        up = "?" if gateway.replicas_up is None else str(gateway.replicas_up)
        text.append(f"gw {gateway.name} {up}/{gateway.replicas_total} ")
        text.append(SEVERITY_MARK[gateway.severity], palette[gateway.severity.label])
        text.append("  5xx/s")
        for backend in gateway.backends:
            down = "" if backend.status in ("UP", None) else f" {backend.status}"
            text.append(f" {backend.name}{down} {fmt(backend.errors_5xx_per_s, '.1f')}")
        if gateway.reasons:
            text.append(f"  {gateway.reasons[0]}", palette["warn"])
        text.append("\n")
    for drift in snapshot.drift:
        text.append("▲ drift ", palette["warn"])
        text.append(f"{drift.target}: expected {drift.expected}, shows {drift.observed}\n")
    text.rstrip()
    return text


class Lines(Static):
    """Whole lines of text that lay the screen out again only when their number changes: a
    layout pass costs a frame of its own at 1,000 rows."""

    _count: int | None = None  # lines shown

    def show(self, text: Text) -> None:
        count = text.plain.count("\n")
        self.update(text, layout=count != self._count)
        self._count = count


class FleetScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "cycle_sort", "Sort"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("tab", "switch_table", "Pools/Nodes", show=False),
    ]

    def __init__(self, palette: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.palette = palette
        self.clock = clock
        self.snapshot: Snapshot | None = None
        self.sort_index = 0
        self.filter_text = ""
        self.paused = False

    def compose(self) -> ComposeResult:
        yield Lines("waiting for the first reading…", id="fleet-header")
        yield Lines("", id="banners")
        with Vertical(id="fleet-body"):
            yield LiveTable(id="pools")
            yield LiveTable(id="nodes")
        yield Input(placeholder="filter: name, pool, engine, state", id="filter")
        yield Lines("", id="gateways")
        yield Footer()

    def on_mount(self) -> None:
        for hidden in ("#filter", "#banners", "#gateways"):  # until there is something to show
            self.query_one(hidden).display = False
        self.query_one("#nodes", LiveTable).focus()
        self.redraw()  # a snapshot may have come before the widgets were there

    # --- applying snapshots -------------------------------------------------------------

    def apply(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.redraw()

    def redraw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None or not self.is_mounted:
            return
        try:
            self._draw(snapshot)
        except NoMatches:  # torn down between the check and now (the app is exiting)
            return

    def _draw(self, snapshot: Snapshot) -> None:
        width = self.size.width or 80
        header = self.query_one("#fleet-header", Lines)
        header.show(header_line(snapshot, self.clock(), self.paused, self.palette))
        self._strip("#banners", banner_lines(snapshot, self.palette))
        pools = self.query_one("#pools", LiveTable)
        self._fill(pools, POOL_COLUMNS, snapshot.pools, width)
        height = min(len(snapshot.pools), MAX_POOL_ROWS) + 1
        if pools.styles.height is None or pools.styles.height.value != height:
            pools.styles.height = height
        label, key = SORTS[self.sort_index]
        shown = sorted((n for n in snapshot.nodes if matches(n, self.filter_text)), key=key)
        nodes = self.query_one("#nodes", LiveTable)
        self._fill(nodes, NODE_COLUMNS, shown, width)
        nodes.border_title = f"sort: {label}" + (
            f"  filter: {self.filter_text}" if self.filter_text else ""
        )
        self._strip("#gateways", gateway_lines(snapshot, self.palette))

    def _strip(self, selector: str, text: Text) -> None:
        """A strip of whole lines, hidden while it has none."""
        lines = self.query_one(selector, Lines)
        lines.show(text)
        lines.display = bool(text.plain)

    def _fill(
        self,
        table: LiveTable,
        columns: tuple[Column[Any], ...],
        rows: Any,
        width: int,
    ) -> None:
        table.set_columns(fitting(columns, width - 2))
        table.show(rows, self.palette)

    def on_resize(self) -> None:
        self.redraw()

    # --- keys -------------------------------------------------------------------------

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.redraw()
        self.notify(f"sorted by {SORTS[self.sort_index][0]}", timeout=1.5)

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.value = self.filter_text
        field.focus()

    def go_to(self, name: str) -> None:
        """Focus the table holding `name` and put its cursor there (clearing a filter that
        hides it)."""
        if self.snapshot is None:
            return
        is_pool = any(p.name == name for p in self.snapshot.pools)
        table = self.query_one("#pools" if is_pool else "#nodes", LiveTable)
        if not is_pool and self.filter_text and name not in table.rows:
            self.action_clear_filter()
        table.focus()
        if name in table.rows:
            table.move_cursor(row=table.get_row_index(name))

    def action_switch_table(self) -> None:
        pools = self.query_one("#pools", LiveTable)
        (self.query_one("#nodes", LiveTable) if pools.has_focus else pools).focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = ""
        field.display = False
        self.filter_text = ""
        self.redraw()
        self.query_one("#nodes", LiveTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(self.filter_text)
            self.query_one("#nodes", LiveTable).focus()

    async def on_data_table_row_selected(self) -> None:
        await self.run_action("app.details")  # enter on a row

    def selected(self) -> NodeStatus | PoolStatus | None:
        """The row under the cursor of the focused table (nodes when neither is focused)."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        pools = self.query_one("#pools", LiveTable)
        if pools.has_focus:
            key = pools.cursor_key
            return next((p for p in snapshot.pools if p.name == key), None)
        key = self.query_one("#nodes", LiveTable).cursor_key
        return next((n for n in snapshot.nodes if n.name == key), None)

    def selected_pool(self) -> PoolStatus | None:
        """The focused pool, or the pool of the node under the cursor."""
        chosen = self.selected()
        if isinstance(chosen, NodeStatus) and self.snapshot is not None:
            return next((p for p in self.snapshot.pools if p.name == chosen.pool), None)
        return chosen if isinstance(chosen, PoolStatus) else None
