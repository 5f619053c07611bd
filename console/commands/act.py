"""The action commands: `drain`, `undrain`, `failover`, `failback`, `rollback`, `ack`, `forget`
and `command` (an operator command from the config), all through `console.actions`.

Each reads the fleet once (every target and gateway replica), plans, prints the plan with
`--dry-run`, asks for confirmation (or takes `--yes`; without a terminal `--yes` is required),
runs, and prints the verified outcome. Exit codes (DESIGN.md): 0 done and verified, 1 refused,
2 failed, 3 partial, 4 verify timed out; 64 usage, 78 config.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from console.commands.options import duration

if TYPE_CHECKING:
    from console.actions import Outcome
    from console.plans import Plan, Request

TIMEOUT_S = 30.0
ROLLBACK_TIMEOUT_S = 900.0
PREFLIGHT_WINDOW_S = 1.0  # between the two readings the preflight's rates span
HELP = {
    "drain": ("NODE", "stop new requests to a node at every gateway replica"),
    "undrain": ("NODE", "let a drained node take requests again"),
    "failover": ("POOL", "point a pool's route at its standby on every replica"),
    "failback": ("POOL", "point a pool's route back at its own backend"),
    "rollback": ("TARGET", "roll a node, or a pool one node at a time, back a revision"),
    "ack": ("TARGET", "silence a node's or pool's alert for a while"),
    "forget": ("TARGET", "accept what the gateways show: drop the drift of a target"),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for action, (metavar, help_text) in HELP.items():
        parser = subparsers.add_parser(action, help=help_text, description=help_text)
        parser.add_argument("target", metavar=metavar)
        _options(parser, action)
    parser = subparsers.add_parser(
        "command", help="run an operator command from the config on a target"
    )
    parser.add_argument("name", help="the command's name in the config's `commands:`")
    parser.add_argument("target", help="the node, pool or gateway it runs for")
    _options(parser, "command")


def _options(parser: argparse.ArgumentParser, action: str) -> None:
    from console.cli import add_common

    add_common(parser)
    if action == "failover":
        parser.add_argument("--to", metavar="STANDBY", help="the pool to fail over to")
    if action == "rollback":
        parser.add_argument("--to", metavar="REV", help="the revision (default: the previous)")
    if action == "ack":
        parser.add_argument(
            "--for",
            dest="ack_for",
            type=duration,
            required=True,
            metavar="DURATION",
            help="how long, e.g. 30m",
        )
    if action == "drain":
        parser.add_argument(
            "--wait", action="store_true", help="wait until the requests in flight have finished"
        )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    # a rolling rollback restarts engines one after another: minutes, not seconds
    default_timeout = ROLLBACK_TIMEOUT_S if action == "rollback" else TIMEOUT_S
    parser.add_argument(
        "--timeout",
        type=duration,
        default=default_timeout,
        metavar="DURATION",
        help=f"for the whole action, verification included (default {default_timeout:g}s)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="act on the reachable gateway replicas when some are not",
    )
    parser.add_argument("--reason", metavar="TEXT", help="the incident or ticket, for the audit")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument("--read-only", action="store_true", help="refuse every action")
    parser.set_defaults(func=run, action=action)


def request_of(args: argparse.Namespace) -> Request:
    from console.plans import Request

    return Request(
        action=args.action,
        target=args.target,
        to=getattr(args, "to", None),
        command=getattr(args, "name", None),
        reason=args.reason,
        force=args.force,
        wait=getattr(args, "wait", False),
        timeout=args.timeout,
        ack_for=getattr(args, "ack_for", None),
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    import asyncio

    from console.actions import Actions, audit_path
    from console.audit import AuditLog
    from console.collector import Collector
    from console.commandline import CommandLine
    from console.headless import audit_overlay, load_fleet, plugins, report_unfinished

    config = load_fleet(args.config)
    overlay = audit_overlay(config, args.audit_log)
    report_unfinished(overlay)
    collector = Collector(config, plugins(), overlay=overlay)
    try:
        # two readings, so the preflight sees error rates and latency, not only gauges
        started = asyncio.get_running_loop().time()
        await collector.scrape_all()
        await asyncio.sleep(
            max(0.0, started + PREFLIGHT_WINDOW_S - asyncio.get_running_loop().time())
        )
        await collector.scrape_again()
        actions = Actions(
            config,
            collector,
            AuditLog(audit_path(args.audit_log, config)),
            read_only=args.read_only,
            commands=CommandLine.for_fleet(config, args.audit_log),
        )
        plan = actions.plan(request_of(args))
        if args.dry_run:
            _show_plan(plan, args.output, sys.stdout)
            return 1 if plan.refusal else 0
        if plan.refusal is None and not args.yes:
            if not sys.stdin.isatty():
                print(
                    "fleetdeck: refused: stdin is not a terminal; pass --yes to act",
                    file=sys.stderr,
                )
                return 1
            _show_plan(plan, "text", sys.stderr)
            # the question goes to stderr (stdout is data) and the answer is read at once:
            # nothing else runs meanwhile, and Ctrl-C stops it there
            sys.stderr.write("Proceed? [y/N] ")
            sys.stderr.flush()
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                print("fleetdeck: not confirmed: nothing done", file=sys.stderr)
                return 1
        outcome = await actions.execute(plan, progress=_progress(args.output))
    finally:
        await collector.aclose()
    _show_outcome(outcome, args.output)
    return outcome.exit_code


def _progress(output: str) -> Any:
    def say(text: str) -> None:
        if output == "text":
            print(f"  … {text}", file=sys.stderr, flush=True)

    return say


def _show_plan(plan: Plan, output: str, stream: Any) -> None:
    import json

    from console.audit import redact, redact_text

    if output == "json":
        print(json.dumps({"schema_version": 1, "plan": redact(plan.as_json())}), file=stream)
        return
    for line in plan.lines():
        print(redact_text(line), file=stream)


def _show_outcome(outcome: Outcome, output: str) -> None:
    """The outcome on stdout, secrets masked as in the audit log."""
    import json

    from console.audit import redact, redact_text

    if output == "json":
        print(json.dumps(redact(outcome.as_json())))
        return
    lines = [f"{outcome.status}: {outcome.plan.summary} ({outcome.duration_s:.2f} s)"]
    if outcome.detail:
        lines.append(f"  {outcome.detail}")
    for change in outcome.changes:
        mark = "ok" if change.ok else "FAILED"
        lines.append(f"  {mark}: {change.where}" + (f": {change.detail}" if change.detail else ""))
    if outcome.retry:
        lines.append(f"  retry:  {outcome.retry}")
    if outcome.revert:
        lines.append(f"  revert: {outcome.revert}")
    for line in lines:
        print(redact_text(line))
