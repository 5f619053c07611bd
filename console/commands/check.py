"""`fleetdeck check`: a Nagios-style plugin: one line with perfdata, exit 0/1/2/3."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from console.commands.options import duration

if TYPE_CHECKING:
    from console.model import Snapshot

NAGIOS = {
    "ok": (0, "OK"),
    "warn": (1, "WARNING"),
    "crit": (2, "CRITICAL"),
    "unknown": (3, "UNKNOWN"),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser("check", help="Nagios-style check of the whole fleet")
    add_common(parser)
    parser.add_argument("--window", type=duration, default=2.0, metavar="DURATION")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from console.errors import FleetdeckError
    from console.headless import audit_overlay, load_fleet, measure, plugins

    try:
        config = load_fleet(args.config)
        snapshot = asyncio.run(
            measure(config, plugins(), args.window, audit_overlay(config, args.audit_log))
        )
    except FleetdeckError as exc:  # Nagios wants UNKNOWN, with the reason, on stdout
        print(f"FLEETDECK UNKNOWN - {exc}")
        return 3
    code, word = NAGIOS[snapshot.severity.label]
    print(f"FLEETDECK {word} - {summary(snapshot)} | {perfdata(snapshot)}")
    return code


def summary(snapshot: Snapshot) -> str:
    healthy = sum(1 for n in snapshot.nodes if n.healthy)
    parts = [f"{healthy}/{len(snapshot.nodes)} nodes healthy"]
    for pool in snapshot.pools:
        if pool.ack is not None:
            parts.append(f"pool {pool.name}: ACK by {pool.ack.user}")
        elif pool.reasons:
            parts.append(f"pool {pool.name}: {'; '.join(pool.reasons)}")
    for gateway in snapshot.gateways:
        if gateway.reasons:
            parts.append(f"gateway {gateway.name}: {'; '.join(gateway.reasons)}")
    for drift in snapshot.drift:
        parts.append(
            f"drift on {drift.target}: expected {drift.expected}, gateway shows {drift.observed} "
            f"(re-apply: {drift.reapply})"
        )
    return ", ".join(parts)


def perfdata(snapshot: Snapshot) -> str:
    from console.rules import total

    pools = snapshot.pools
    figures = {
        "nodes": len(snapshot.nodes),
        "healthy": sum(1 for n in snapshot.nodes if n.healthy),
        "up": sum(1 for n in snapshot.nodes if n.up),
        "running": total(p.running for p in pools),
        "waiting": total(p.waiting for p in pools),
        "requests_per_s": total(p.requests_per_s for p in pools),
        "tokens_per_s": total(p.tokens_per_s for p in pools),
    }
    return " ".join(f"{k}={'U' if v is None else f'{v:g}'}" for k, v in figures.items())
