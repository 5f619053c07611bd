"""`fleetdeck status`: one snapshot of the fleet, as a table or JSON."""

from __future__ import annotations

import argparse

from console.commands.options import duration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser("status", help="print one snapshot of the fleet")
    add_common(parser)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument(
        "--window",
        type=duration,
        default=2.0,
        metavar="DURATION",
        help="time between the two readings rates are taken from (default 2s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import sys

    from console.headless import audit_overlay, load_fleet, measure, plugins, report_unfinished
    from console.render import snapshot_json, snapshot_table

    config = load_fleet(args.config)
    overlay = audit_overlay(config, args.audit_log)
    report_unfinished(overlay)
    snapshot = asyncio.run(measure(config, plugins(), args.window, overlay))
    if args.output == "json":
        json.dump(snapshot_json(snapshot), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from rich.console import Console

        Console(soft_wrap=False).print(snapshot_table(snapshot))
    return 0
