"""The TUI's table columns: what each cell shows, how wide it is, and which columns give way
first on a narrow terminal (status never colour-only: every state has a symbol and a word).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich.text import Text

from console.model import NodeStatus, PoolStatus, Severity
from console.render import SEVERITY_MARK, fmt

Row = TypeVar("Row", NodeStatus, PoolStatus)
Cell = str | Text
BAR = " ▁▂▃▄▅▆▇█"
CELL_PADDING = 2  # DataTable pads each cell by one column on either side


@dataclass(frozen=True, slots=True)
class Column(Generic[Row]):
    key: str
    label: str
    width: int
    priority: int  # 0 is never dropped; higher numbers give way first
    cell: Callable[[Row, Mapping[str, str]], Cell]
    right: bool = False  # numbers align right


def severity_cell(severity: Severity, acked: bool, palette: Mapping[str, str]) -> Text:
    if acked:
        return Text(f"◌ ack {severity.label}", palette["ack"])
    return Text(SEVERITY_MARK[severity], palette[severity.label])


def node_state(node: NodeStatus, palette: Mapping[str, str]) -> Text:
    """What the node is doing, worst first: down, stale, then the gateway's word."""
    if not node.up:
        return Text("✗ down", palette["down"])
    if node.stale:
        return Text("◷ stale", palette["stale"])
    if node.state in ("DRAIN", "MAINT"):
        return Text(f"⏸ {node.state.lower()}", palette["drain"])
    if node.state == "DOWN":
        return Text("✗ lb-down", palette["down"])
    return Text("● up")


def gpu_bar(node: NodeStatus, palette: Mapping[str, str]) -> Cell:
    """Average GPU utilisation as a bar and a number; lost GPUs counted beside it."""
    utils = [g.util for g in node.gpus if g.util is not None and not g.lost]
    lost = sum(1 for g in node.gpus if g.lost)
    if not utils:
        return Text(f"✗{lost} lost", palette["crit"]) if lost else "-"
    value = sum(utils) / len(utils)
    bar = BAR[min(len(BAR) - 1, round(value / 100 * (len(BAR) - 1)))]
    text = Text(f"{bar} {value:3.0f}%")
    if lost:
        text.append(f" ✗{lost}", palette["crit"])
    return text


def _gpu_mem(node: NodeStatus, palette: Mapping[str, str]) -> Cell:
    used = sum(g.mem_used or 0 for g in node.gpus if not g.lost)
    total = sum(g.mem_total or 0 for g in node.gpus if not g.lost)
    return fmt(used / total, ".0f", 100, "%") if total else "-"


def _hottest(node: NodeStatus, palette: Mapping[str, str]) -> Cell:
    temps = [g.temp for g in node.gpus if g.temp is not None and not g.lost]
    return f"{max(temps):.0f}°" if temps else "-"


NODE_COLUMNS: tuple[Column[NodeStatus], ...] = (
    Column("name", "NODE", 10, 0, lambda n, p: n.name),
    Column("pool", "POOL", 8, 2, lambda n, p: n.pool),
    Column("engine", "ENGINE", 6, 4, lambda n, p: n.engine_kind),
    Column("state", "STATE", 9, 0, node_state),
    Column("severity", "SEV", 10, 0, lambda n, p: severity_cell(n.severity, n.ack is not None, p)),
    Column("gpu", "GPU", 9, 1, gpu_bar),
    Column("mem", "GMEM", 4, 4, _gpu_mem, right=True),
    Column("temp", "TEMP", 4, 3, _hottest, right=True),
    Column("running", "RUN", 4, 1, lambda n, p: fmt(n.engine.running), right=True),
    Column("waiting", "WAIT", 4, 0, lambda n, p: fmt(n.engine.waiting), right=True),
    Column("errors", "ERR", 5, 1, lambda n, p: fmt(n.engine.error_rate, ".1f", 100, "%"), True),
    Column("tokens", "TOK/S", 6, 3, lambda n, p: fmt(n.engine.tokens_per_s), right=True),
    Column("age", "AGE", 4, 2, lambda n, p: fmt(n.age_s, ".0f", suffix="s"), right=True),
)


def _route(pool: PoolStatus, palette: Mapping[str, str]) -> Cell:
    if pool.route is None:
        return "-"
    if pool.failed_over:
        return Text(f"⇄ {pool.route}", palette["warn"])
    return f"→ {pool.route}"


POOL_COLUMNS: tuple[Column[PoolStatus], ...] = (
    Column("name", "POOL", 10, 0, lambda p, c: p.name),
    Column("model", "MODEL", 28, 5, lambda p, c: p.model or "-"),
    Column("severity", "SEV", 10, 0, lambda p, c: severity_cell(p.severity, p.ack is not None, c)),
    Column("healthy", "OK", 5, 0, lambda p, c: f"{p.healthy}/{p.nodes}", right=True),
    Column("running", "RUN", 5, 1, lambda p, c: fmt(p.running), right=True),
    Column("waiting", "WAIT", 5, 0, lambda p, c: fmt(p.waiting), right=True),
    Column("errors", "ERR", 5, 1, lambda p, c: fmt(p.error_rate, ".1f", 100, "%"), right=True),
    Column("ttft", "TTFT95", 6, 2, lambda p, c: fmt(p.ttft_p95_s, ".2f", suffix="s"), True),
    Column("gpu", "GPU", 4, 3, lambda p, c: fmt(p.gpu_util_avg, ".0f", suffix="%"), True),
    Column("route", "ROUTE", 10, 1, _route),
)


def fitting(columns: Sequence[Column[Row]], width: int) -> tuple[Column[Row], ...]:
    """The columns that fit in `width`, in their order: the lowest priorities give way first."""
    chosen = set()
    used = 0
    for column in sorted(columns, key=lambda c: c.priority):
        need = column.width + CELL_PADDING
        if column.priority > 0 and used + need > width:
            continue
        chosen.add(column.key)
        used += need
    return tuple(c for c in columns if c.key in chosen)


def cells(row: Row, columns: Sequence[Column[Row]], palette: Mapping[str, str]) -> tuple[Cell, ...]:
    return tuple(column.cell(row, palette) for column in columns)
