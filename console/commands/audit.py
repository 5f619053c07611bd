"""`fleetdeck audit`: the actions taken from this host, as the append-only audit log tells them.

A table with one line per action (its intent paired with its result, newest last; an action that
never finished says so), or JSON as `console/schemas/audit.schema.json` describes it. Each line
the log cannot use goes to stderr as `FILE:LINE: what is wrong`. Exit 0; 78 when the log exists
but cannot be read. A missing log simply holds no records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from console.durations import parse_duration

if TYPE_CHECKING:
    from console.audit import AuditEntry

COLUMNS = ("TIME", "USER@HOST", "ACTION", "TARGETS", "OUTCOME", "DURATION", "REASON")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser("audit", help="show the actions taken from this host")
    add_common(parser)
    parser.add_argument(
        "--since",
        type=since_time,
        metavar="WHEN",
        help="only records since a duration ago (30m, 1h) or a time (2026-11-28T10:00Z; UTC "
        "when no offset is given)",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument(
        "--unfinished",
        action="store_true",
        help="only actions with an intent and no result (the console stopped mid-action)",
    )
    parser.set_defaults(func=run)


def since_time(text: str) -> float:
    """`1h` -> an hour ago; `2026-11-28T10:00Z` -> that moment (UTC without an offset)."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        return _moment(text)
    return time.time() - seconds


def _moment(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad --since '{text}' (use a duration such as 1h or a time such as 2026-11-28T10:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def run(args: argparse.Namespace) -> int:
    import json

    from console.audit import (
        AUDIT_SCHEMA_VERSION,
        AuditLog,
        AuditUnreadable,
        entries,
        unfinished,
    )
    from console.exitcodes import Exit

    path = Path(args.audit_log) if args.audit_log else _configured(args.config)
    try:
        readout = AuditLog(path).read(since=args.since)
    except AuditUnreadable as exc:
        print(f"fleetdeck: audit: {exc}", file=sys.stderr)
        return Exit.CONFIG
    for problem in readout.problems:
        print(problem, file=sys.stderr)
    records = readout.records
    if args.unfinished:
        left = {record.id for record in unfinished(records)}
        records = tuple(record for record in records if record.id in left)
    if args.output == "json":
        document = {
            "schema_version": AUDIT_SCHEMA_VERSION,
            "records": [record.as_json() for record in records],
            "problems": list(readout.problems),
        }
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif records:
        for line in table(entries(records)):
            print(line)
    else:
        print(f"fleetdeck: audit: no actions recorded in {path}", file=sys.stderr)
    return Exit.OK


def _configured(explicit: str | None) -> Path:
    """The audit log the fleet config names (`audit_log:`), else the user's own."""
    from console.actions import audit_path
    from console.config import find_config, load_config

    found = find_config(explicit)
    return audit_path(None, load_config(found) if found is not None else None)


def table(actions: list[AuditEntry]) -> list[str]:
    """Aligned text lines, a header first; status is spelt out, never colour-only."""
    rows = [COLUMNS, *(_row(action) for action in actions)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in rows
    ]


def _row(action: AuditEntry) -> tuple[str, ...]:
    from console.audit import format_time

    first, result = action.first, action.result
    if result is None:
        outcome = "UNFINISHED (no result)"
    elif action.intent is None:
        outcome = f"{result.outcome} (intent line lost)"
    else:
        outcome = result.outcome or "?"
    duration = "-" if result is None or result.duration_s is None else f"{result.duration_s:.1f}s"
    return (
        format_time(first.time)[:19] + "Z",  # to the second
        f"{first.user}@{first.host}",
        first.action,
        ",".join(first.targets),
        outcome,
        duration,
        " ".join((first.reason or "-").split()),  # one line, whatever the reason holds
    )
