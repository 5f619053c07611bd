"""Entry point: `fleetdeck SUBCOMMAND ...`.

Each subcommand lives in its own module under `console.commands` and exposes
`register(subparsers)`, which adds its parser and sets `run` (args -> exit code) as the
parser's default `func`. Command modules import only the standard library at the top, so
`fleetdeck status` never pays for what `fleetdeck sim` needs (and never imports textual).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from console import __version__
from console.errors import FleetdeckError
from console.exitcodes import Exit

COMMAND_MODULES = (
    "status",
    "watch",
    "check",
    "config_check",
    "local",
    "sim",
    "demo",
    "agent",
    "act",
    "audit",
    "tui",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 64 (usage) instead of 2, with one line on stderr."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(Exit.USAGE, f"fleetdeck: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fleetdeck", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"fleetdeck {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"console.commands.{name}").register(subparsers)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand accepts."""
    parser.add_argument("-c", "--config", metavar="FILE", help="fleet config (fleet.yaml)")
    parser.add_argument(
        "--audit-log",
        metavar="FILE",
        help="the audit log (default $XDG_STATE_HOME/fleetdeck/audit.jsonl)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:
        # Nagios reads a usage error of `check` as UNKNOWN, with a line on stdout
        if exc.code == Exit.USAGE and next((w for w in words if w[:1] != "-"), "") == "check":
            print("FLEETDECK UNKNOWN - usage error (see fleetdeck check --help)")
            return Exit.UNKNOWN
        raise
    if args.command is None:
        # plain `fleetdeck`: the console on the fleet config found, else this host alone
        from console.config import find_config

        try:
            found = find_config(None)
        except FleetdeckError as exc:
            print(f"fleetdeck: {exc.title}: {exc}", file=sys.stderr)
            return Exit.CONFIG
        args = parser.parse_args(["tui"] if found is not None else ["local"])
    from console.logfile import setup_logging

    setup_logging(debug=args.debug)
    try:
        return int(args.func(args))
    except FleetdeckError as exc:
        if args.debug:
            raise
        print(f"fleetdeck: {exc.title}: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", Exit.CONFIG))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fleetdeck watch | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except Exception as exc:  # the last line of defence: one line, the log has the rest
        if args.debug:
            raise
        logging.getLogger("fleetdeck").exception("unexpected error")
        print(f"fleetdeck: internal error: {exc!r} (run with --debug for details)", file=sys.stderr)
        return Exit.UNKNOWN
