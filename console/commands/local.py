"""`fleetdeck local`: watch this host's GPUs and host figures in-process, no config needed.

Plain `fleetdeck` does the same when no fleet config is found.
"""

from __future__ import annotations

import argparse

from console.commands.options import duration, positive_int


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser("local", help="watch this host alone (no config, no server)")
    add_common(parser)
    parser.add_argument("--interval", type=duration, default=1.0, metavar="DURATION")
    parser.add_argument("--count", type=positive_int, metavar="N", help="stop after N refreshes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    asyncio.run(watch_local(args.interval, args.count))
    return 0


async def watch_local(interval: float, count: int | None) -> None:
    from console.agent.telemetry import Telemetry
    from console.collector import Collector
    from console.headless import plugins
    from console.liveview import show_live
    from console.local import LocalTransport, local_fleet

    config = local_fleet(interval)
    telemetry = Telemetry(node=config.nodes[0].name, interval=interval)
    collector = Collector(config, plugins(), transport=lambda: LocalTransport(telemetry))
    try:
        await show_live(collector, lambda: ["this host, read in-process. Ctrl-C quits."], count)
    finally:
        await collector.aclose()
