"""`fleetdeck demo`: a simulated fleet on loopback, watched live, with a scripted incident."""

from __future__ import annotations

import argparse

from console.commands.options import duration, positive_int


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser("demo", help="watch a simulated fleet with a live incident")
    add_common(parser)
    parser.add_argument("--nodes", type=positive_int, default=12, help="simulated nodes (12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interval", type=duration, default=1.0, metavar="DURATION")
    parser.add_argument("--count", type=positive_int, metavar="N", help="stop after N refreshes")
    parser.add_argument("--no-incident", action="store_true", help="leave the fleet healthy")
    parser.add_argument("--theme", metavar="NAME", help="the TUI's theme")
    parser.add_argument(
        "--haproxy",
        action="store_true",
        help="put real haproxy processes in front of the nodes instead of the sim's gateway",
    )
    parser.set_defaults(func=run)


INTROS = {  # (with the incident, behind haproxy) -> the note shown until the incident speaks
    (True, False): "incident in 20 s; meanwhile try: fleetdeck failover pool-a. Ctrl-C quits.",
    (True, True): "real haproxy; incident in 20 s; try: fleetdeck failover pool-a. Ctrl-C quits.",
    (False, False): "a simulated fleet on loopback; try: fleetdeck drain node-001. Ctrl-C quits.",
    (False, True): "nodes behind real haproxy; try: fleetdeck drain node-001. Ctrl-C quits.",
}
HINT = "to act, in another shell: export FLEETDECK_CONFIG={config}"
WELCOME = (
    "A simulated fleet behind a two-replica gateway. {incident}Keys: d drain, u undrain, "
    "f fail over, F fail back, b roll back, enter details, ? all keys. Other shells can act "
    "too: export FLEETDECK_CONFIG={config}"
)


def run(args: argparse.Namespace) -> int:
    import asyncio

    asyncio.run(_demo(args))
    return 0


async def _demo(args: argparse.Namespace) -> None:
    """The TUI on a terminal; with --count, or when stdout is not a terminal, the plain live
    view (for logs and scripts)."""
    import asyncio
    import sys
    import tempfile
    from collections.abc import Callable
    from pathlib import Path

    from console.actions import Actions, audit_path
    from console.audit import AuditLog
    from console.collector import Collector
    from console.config import load_config
    from console.demo import demo_fleet, run_incident
    from console.headless import audit_overlay, plugins, with_interval
    from console.history import History
    from console.liveview import show_live

    events: list[str] = []
    fleet = demo_fleet(args.nodes, args.seed, args.haproxy)
    tui = sys.stdout.isatty() and args.count is None
    with tempfile.TemporaryDirectory(prefix="fd-") as folder:
        async with fleet:
            # the config outlives nothing but the demo: other shells act on the fleet with it
            path = Path(folder) / "fleet.yaml"
            # its own audit log, shared with the shells that act on it through this file
            path.write_text("audit_log: audit.jsonl\n" + fleet.config_yaml(), encoding="utf-8")
            config = with_interval(load_config(path), args.interval)
            overlay = audit_overlay(config, args.audit_log)
            collector = Collector(config, plugins(), overlay=overlay, history=History())
            say: Callable[[str], None] = events.append
            app = None
            if tui:
                from console.tui.app import FleetdeckApp
                from console.tui.feed import CollectorFeed
                from console.tui.themes import choose_theme, load_themes, theme_folders

                themes = load_themes(theme_folders())
                actions = Actions(config, collector, AuditLog(audit_path(args.audit_log, config)))
                app = FleetdeckApp(
                    CollectorFeed(collector),
                    actions,
                    commands=config.commands,
                    themes=themes,
                    theme=choose_theme(themes, args.theme),
                )
                say = app.incident_notice
            incident = None
            if not args.no_incident:
                names = [n.name for n in fleet.nodes]
                incident = asyncio.create_task(run_incident(fleet.control_url, names, say))
            try:
                if app is not None:
                    starts = "" if args.no_incident else "An incident starts in 20 s. "
                    welcome = WELCOME.format(incident=starts, config=path)
                    app.call_later(app.notify, welcome, title="fleetdeck demo", timeout=20)
                    await app.run_async()
                else:
                    intro = INTROS[(not args.no_incident, args.haproxy)]
                    hint = HINT.format(config=path)

                    def notes() -> list[str]:
                        return [hint, *(events[-2:] or [intro])]

                    await show_live(collector, notes, args.count)
            finally:
                if incident is not None:
                    incident.cancel()
                    await asyncio.gather(incident, return_exceptions=True)
                await collector.aclose()
