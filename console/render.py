"""Headless renderers of a Snapshot: JSON (the schema in `console/schemas/status.schema.json`)
and a plain table for people. Status is never colour-only: each severity has a word and a mark.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from console.model import Ack, GatewayStatus, GpuSample, NodeStatus, PoolStatus, Severity, Snapshot

SEVERITY_MARK = {
    Severity.OK: "✓ ok",
    Severity.WARN: "▲ warn",
    Severity.UNKNOWN: "? unknown",
    Severity.CRIT: "✗ crit",
}
SEVERITY_STYLE = {
    Severity.OK: "green",
    Severity.WARN: "yellow",
    Severity.UNKNOWN: "magenta",
    Severity.CRIT: "bold red",
}
ENGINE_FIELDS = (
    "running",
    "waiting",
    "kv_cache_usage",
    "requests_per_s",
    "tokens_per_s",
    "prompt_tokens_per_s",
    "error_rate",
    "ttft_p50_s",
    "ttft_p95_s",
)


def _num(value: float | None) -> float | None:
    """JSON has no NaN or Infinity: an unknown figure is null."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def _gpu_json(gpu: GpuSample) -> dict[str, Any]:
    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "name": gpu.name,
        "util": _num(gpu.util),
        "mem_used": _num(gpu.mem_used),
        "mem_total": _num(gpu.mem_total),
        "temp": _num(gpu.temp),
        "power": _num(gpu.power),
        "power_limit": _num(gpu.power_limit),
        "last_xid": gpu.last_xid,
        "lost": gpu.lost,
    }


def ack_json(ack: Ack | None) -> dict[str, Any] | None:
    if ack is None:
        return None
    return {"until": ack.until, "user": ack.user, "reason": ack.reason}


def node_json(node: NodeStatus) -> dict[str, Any]:
    return {
        "name": node.name,
        "pool": node.pool,
        "engine_kind": node.engine_kind,
        "up": node.up,
        "stale": node.stale,
        "age_s": _num(node.age_s),
        "scrape_ms": _num(node.scrape_ms),
        "state": node.state,
        "severity": node.severity.label,
        "reasons": list(node.reasons),
        "error": node.error,
        "model": node.engine.model,
        "revision": node.revision,
        "engine": {name: _num(getattr(node.engine, name)) for name in ENGINE_FIELDS},
        "gpus": [_gpu_json(gpu) for gpu in node.gpus],
        "ack": ack_json(node.ack),
    }


def pool_json(pool: PoolStatus) -> dict[str, Any]:
    return {
        "name": pool.name,
        "model": pool.model,
        "nodes": pool.nodes,
        "healthy": pool.healthy,
        "running": _num(pool.running),
        "waiting": _num(pool.waiting),
        "requests_per_s": _num(pool.requests_per_s),
        "tokens_per_s": _num(pool.tokens_per_s),
        "error_rate": _num(pool.error_rate),
        "ttft_p95_s": _num(pool.ttft_p95_s),
        "gpu_util_avg": _num(pool.gpu_util_avg),
        "severity": pool.severity.label,
        "reasons": list(pool.reasons),
        "route": pool.route,
        "failed_over": pool.failed_over,
        "ack": ack_json(pool.ack),
    }


def gateway_json(gateway: GatewayStatus) -> dict[str, Any]:
    return {
        "name": gateway.name,
        "replicas_up": gateway.replicas_up,
        "replicas_total": gateway.replicas_total,
        "severity": gateway.severity.label,
        "reasons": list(gateway.reasons),
        "replicas": [
            {"endpoint": r.endpoint, "up": r.up, "age_s": _num(r.age_s), "error": r.error}
            for r in gateway.replicas
        ],
        "backends": [
            {
                "name": b.name,
                "status": b.status,
                "scur": b.scur,
                "qcur": b.qcur,
                "errors_5xx_per_s": _num(b.errors_5xx_per_s),
            }
            for b in gateway.backends
        ],
    }


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "schema_version": snapshot.schema_version,
        "time": snapshot.time,
        "severity": snapshot.severity.label,
        "nodes": [node_json(node) for node in snapshot.nodes],
        "pools": [pool_json(pool) for pool in snapshot.pools],
        "gateways": [gateway_json(g) for g in snapshot.gateways],
        "drift": [
            {
                "target": d.target,
                "expected": d.expected,
                "observed": d.observed,
                "since": d.since,
                "reapply": d.reapply,
                "forget": d.forget,
            }
            for d in snapshot.drift
        ],
        "sources": [
            {
                "name": s.name,
                "url": s.url,
                "up": s.up,
                "stale": s.stale,
                "age_s": _num(s.age_s),
                "refresh_ms": _num(s.refresh_ms),
                "error": s.error,
                "warnings": list(s.warnings),
                "nodes": s.nodes,
                "severity": s.severity.label,
                "banner": s.banner,
            }
            for s in snapshot.sources
        ],
    }


# --- a table for people -------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".0f", scale: float = 1.0, suffix: str = "") -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value * scale:{spec}}{suffix}"


def _gpu_util(node: NodeStatus) -> str:
    utils = [g.util for g in node.gpus if g.util is not None and not g.lost]
    lost = sum(1 for g in node.gpus if g.lost)
    text = fmt(sum(utils) / len(utils), ".0f", suffix="%") if utils else "-"
    return f"{text} ✗{lost}" if lost else text  # the reasons line names the lost GPU


TROUBLE_LINES = 4  # reasons shown under the tables when the height is limited


def snapshot_table(snapshot: Snapshot, height: int | None = None) -> Any:
    """A rich renderable: pools, then nodes worst first, then the reasons for trouble. With a
    `height` (a terminal's rows), the healthiest nodes and reasons give way first."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    stamp = dt.datetime.fromtimestamp(snapshot.time).strftime("%H:%M:%S")
    up = sum(1 for n in snapshot.nodes if n.up)
    header = Text.assemble(
        ("fleet ", "bold"),
        (SEVERITY_MARK[snapshot.severity], SEVERITY_STYLE[snapshot.severity]),
        f"  nodes up {up}/{len(snapshot.nodes)}  at {stamp}",
    )
    pools = Table(box=None, pad_edge=False, header_style="bold")
    pool_columns = ("POOL", "SEVERITY", "HEALTHY", "RUN", "WAIT", "REQ/S", "TOK/S", "ERR", "TTFT95")
    for column in (*pool_columns, "ROUTE"):
        left = column in ("POOL", "SEVERITY", "ROUTE")
        pools.add_column(column, justify="left" if left else "right")
    for pool in snapshot.pools:
        pools.add_row(
            pool.name,
            _severity(pool.severity, pool.ack),
            f"{pool.healthy}/{pool.nodes}",
            fmt(pool.running),
            fmt(pool.waiting),
            fmt(pool.requests_per_s, ".1f"),
            fmt(pool.tokens_per_s),
            fmt(pool.error_rate, ".1f", 100, "%"),
            fmt(pool.ttft_p95_s, ".2f", suffix="s"),
            "-" if pool.route is None else f"→ {pool.route}" + (" ▲" if pool.failed_over else ""),
        )
    nodes = Table(box=None, pad_edge=False, header_style="bold")
    columns = (
        "NODE",
        "ENGINE",
        "SEVERITY",
        "LB",
        "RUN",
        "WAIT",
        "KV",
        "ERR",
        "TOK/S",
        "GPU",
        "AGE",
    )
    for column in columns:
        left = column in ("NODE", "ENGINE", "SEVERITY", "LB")
        nodes.add_column(column, justify="left" if left else "right", no_wrap=True)
    ordered = sorted(snapshot.nodes, key=lambda n: (-n.severity, n.name))
    troubled = [n for n in ordered if n.severity is not Severity.OK and n.reasons]
    shown, reasons = ordered, troubled
    if height is not None:
        reasons = troubled[:TROUBLE_LINES]
        # header, pools, gaps, column heads, gateways and drift
        fixed = 6 + len(snapshot.pools) + len(reasons) + len(snapshot.gateways)
        fixed += sum(1 for s in snapshot.sources if s.banner)
        fixed += 3 * len(snapshot.drift)
        room = max(1, height - fixed)
        if len(ordered) > room:
            shown = ordered[: room - 1]
    for node in shown:
        nodes.add_row(
            node.name,
            node.engine_kind,
            _severity(node.severity, node.ack),
            node.state or "-",
            fmt(node.engine.running),
            fmt(node.engine.waiting),
            fmt(node.engine.kv_cache_usage, ".0f", 100, "%"),
            fmt(node.engine.error_rate, ".1f", 100, "%"),
            fmt(node.engine.tokens_per_s),
            _gpu_util(node),
            fmt(node.age_s, ".0f", suffix="s"),
        )
    if len(shown) < len(ordered):
        hidden = ordered[len(shown) :]
        worst = max(n.severity for n in hidden)
        nodes.add_row(f"… {len(hidden)} more", "", Text(SEVERITY_MARK[worst], "dim"))
    lines = [f"▲ {s.banner}" for s in snapshot.sources if s.banner]
    lines += [
        f"gateway {g.name}: {g.replicas_up if g.replicas_up is not None else '?'}/"
        f"{g.replicas_total} replicas {SEVERITY_MARK[g.severity]}"
        + (f": {'; '.join(g.reasons)}" if g.reasons else "")
        for g in snapshot.gateways
    ]
    lines += [f"{node.name}: {'; '.join(node.reasons)}" for node in reasons]
    if len(reasons) < len(troubled):
        lines.append(f"… {len(troubled) - len(reasons)} more nodes in trouble")
    trouble = Text("\n".join(lines), no_wrap=True, overflow="ellipsis")
    # drift is shown whole, wrapped if need be: its commands are meant to be pasted
    drift = Text(
        "".join(
            f"drift {d.target}: expected {d.expected}, shows {d.observed}\n"
            f"  re-apply: {d.reapply}\n  forget:   {d.forget}\n"
            for d in snapshot.drift
        ).rstrip("\n"),
        overflow="fold",
    )
    parts: list[Any] = [header, Text(""), pools, Text(""), nodes, Text(""), trouble]
    if snapshot.drift:
        parts.append(drift)
    if len(snapshot.nodes) == 1:  # one host (the local watch): its GPUs one by one
        parts[5:5] = [Text(""), gpu_table(snapshot.nodes[0])]
    return Group(*parts)


def _severity(severity: Severity, ack: Ack | None) -> Any:
    from rich.text import Text

    if ack is not None:  # acknowledged: shown, but not as an alarm
        return Text(f"◌ ack {severity.label}", "dim")
    return Text(SEVERITY_MARK[severity], SEVERITY_STYLE[severity])


def gpu_table(node: NodeStatus) -> Any:
    """A node's GPUs, one row each, and its host figures."""
    from rich.table import Table

    gib = 1 / 2**30
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("GPU", "NAME", "UTIL", "MEM GiB", "TEMP", "POWER W", "STATE"):
        table.add_column(column, justify="left" if column in ("NAME", "STATE") else "right")
    for gpu in node.gpus:
        if gpu.lost:
            state = f"✗ lost (XID {gpu.last_xid})" if gpu.last_xid else "✗ lost"
        elif gpu.last_xid is not None:
            state = f"▲ XID {gpu.last_xid}"
        else:
            state = ", ".join(t for t in gpu.throttle or () if t != "idle") or "✓"
        table.add_row(
            str(gpu.index),
            (gpu.name or "-").removeprefix("NVIDIA "),
            fmt(gpu.util, suffix="%"),
            f"{fmt(gpu.mem_used, '.1f', gib)}/{fmt(gpu.mem_total, '.0f', gib)}",
            fmt(gpu.temp, suffix="°C"),
            f"{fmt(gpu.power)}/{fmt(gpu.power_limit)}",
            state,
        )
    host = node.host
    if host is not None:
        table.caption = (
            f"host: cpu {fmt(host.cpu, suffix='%')}  load {fmt(host.load1, '.2f')}  "
            f"mem {fmt(host.mem_used, '.1f', gib)}/{fmt(host.mem_total, '.0f', gib)} GiB"
        )
        table.caption_justify = "left"
    return table
