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


def run(args: argparse.Namespace) -> int:
    import asyncio

    asyncio.run(_demo(args))
    return 0


async def _demo(args: argparse.Namespace) -> None:
    import asyncio
    import tempfile
    from pathlib import Path

    from console.collector import Collector
    from console.config import load_config
    from console.demo import demo_fleet, run_incident
    from console.headless import audit_overlay, plugins, with_interval
    from console.liveview import show_live

    events: list[str] = []
    fleet = demo_fleet(args.nodes, args.seed, args.haproxy)
    with tempfile.TemporaryDirectory(prefix="fd-") as folder:
        async with fleet:
            # the config outlives nothing but the demo: other shells act on the fleet with it
            path = Path(folder) / "fleet.yaml"
            path.write_text(fleet.config_yaml(), encoding="utf-8")
            config = with_interval(load_config(path), args.interval)
            collector = Collector(config, plugins(), overlay=audit_overlay(config, args.audit_log))
            incident = None
            if not args.no_incident:
                incident = asyncio.create_task(
                    run_incident(fleet.control_url, [n.name for n in fleet.nodes], events.append)
                )
            intro = INTROS[(not args.no_incident, args.haproxy)]
            hint = HINT.format(config=path)
            try:
                await show_live(collector, lambda: [hint, *(events[-2:] or [intro])], args.count)
            finally:
                if incident is not None:
                    incident.cancel()
                    await asyncio.gather(incident, return_exceptions=True)
                await collector.aclose()
