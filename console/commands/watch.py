"""`fleetdeck watch`: one snapshot per refresh, as NDJSON (one JSON object per line, flushed)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from console.commands.options import duration, positive_int

if TYPE_CHECKING:
    from console.fleet import FleetConfig
    from console.overlay import AuditOverlay
    from console.plugin import Registry


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser("watch", help="stream snapshots, one JSON line each")
    add_common(parser)
    parser.add_argument("-o", "--output", choices=("ndjson",), default="ndjson")
    parser.add_argument("--interval", type=duration, metavar="DURATION", help="poll every")
    parser.add_argument("--count", type=positive_int, metavar="N", help="stop after N snapshots")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from console.headless import audit_overlay, load_fleet, plugins, with_interval

    config = load_fleet(args.config)
    if args.interval is not None:
        config = with_interval(config, args.interval)
    overlay = audit_overlay(config, args.audit_log)
    asyncio.run(_stream(config, plugins(), args.count, overlay))
    return 0


async def _stream(
    config: FleetConfig, registry: Registry, count: int | None, overlay: AuditOverlay
) -> None:
    import json
    import sys

    from console.collector import Collector
    from console.render import snapshot_json

    collector = Collector(config, registry, overlay=overlay)
    printed = 0
    try:
        async for snapshot in collector.snapshots():
            sys.stdout.write(json.dumps(snapshot_json(snapshot), separators=(",", ":")) + "\n")
            sys.stdout.flush()
            printed += 1
            if count is not None and printed >= count:
                return
    finally:
        await collector.aclose()
