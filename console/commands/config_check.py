"""`fleetdeck config check [FILE]`: validate a fleet config and print every issue.

Each issue goes to stdout as `FILE:LINE:COL: message`; a valid file prints
`FILE: ok (N nodes, M pools, K gateways)`. Exit 0 when valid, 1 when invalid or unreadable,
64 on a usage error.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    config = subparsers.add_parser("config", help="work with the fleet config")
    actions = config.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="validate a fleet.yaml and print every issue with its file:line:col"
    )
    check.add_argument("file", nargs="?", metavar="FILE", help="the config (default: as -c)")
    add_common(check)
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from console.config import check_config, find_config
    from console.errors import ConfigError
    from console.exitcodes import Exit

    if args.file and args.config and args.file != args.config:
        print(
            "fleetdeck: config check: give the file as FILE or with -c, not both", file=sys.stderr
        )
        return Exit.USAGE
    path = args.file or args.config
    if path is None:
        try:
            path = find_config(None)
        except ConfigError as exc:
            print(f"fleetdeck: config: {exc}", file=sys.stderr)
            return Exit.WARN
    if path is None:
        print(
            "fleetdeck: config: no fleet.yaml found ($FLEETDECK_CONFIG, ./fleet.yaml, "
            "$XDG_CONFIG_HOME/fleetdeck/fleet.yaml); name one as FILE",
            file=sys.stderr,
        )
        return Exit.WARN
    fleet, issues = check_config(path)  # an unreadable file is one issue, like any other
    for issue in issues:
        print(issue)
    if fleet is None:
        print(f"fleetdeck: config: {path}: {len(issues)} issue(s)", file=sys.stderr)
        return Exit.WARN
    print(
        f"{path}: ok ({len(fleet.nodes)} nodes, {len(fleet.pools)} pools, "
        f"{len(fleet.gateways)} gateways)"
    )
    return Exit.OK
