"""`fleetdeck sim`: serve a simulated fleet on loopback until interrupted.

Prints `control http://127.0.0.1:PORT` and then `ready N nodes` on stdout (flushed), so a
parent process can wait for the fleet; with `--gateway`, the lines between name the gateway's
runtime API per replica (`gateway edge tcp://127.0.0.1:PORT`) and its frontend per route
(`route pool-a http://127.0.0.1:PORT`). Diagnostics go to stderr. SIGINT and SIGTERM stop it
cleanly with exit 0.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser(
        "sim",
        help="serve a simulated fleet (engines, agents, control API) on loopback",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    add_common(parser)
    parser.add_argument("--nodes", type=int, required=True, metavar="N", help="how many nodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the load model (default 0)")
    parser.add_argument(
        "--engines",
        metavar="KINDS",
        help="engine kinds, comma-separated, assigned round-robin "
        "(default: vllm,sglang,tgi,triton)",
    )
    parser.add_argument("--gpus", type=int, default=8, metavar="N", help="GPUs per node")
    parser.add_argument("--pools", type=int, metavar="N", help="N pools of consecutive nodes")
    parser.add_argument("--write-config", metavar="FILE", help="write a fleet.yaml for the fleet")
    parser.add_argument("--control", type=int, default=0, metavar="PORT", help="control port")
    parser.add_argument(
        "--static", action="store_true", help="figures never move: every page is rendered once"
    )
    parser.add_argument(
        "--gateway",
        type=int,
        nargs="?",
        const=1,
        metavar="REPLICAS",
        help="put the pools behind a gateway speaking HAProxy's runtime API, with REPLICAS "
        "independent replicas (default 1); pools pair up as primary and standby",
    )
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    engines = _validate(args)
    import asyncio

    from console.sim.serve import serve

    return asyncio.run(
        serve(
            nodes=args.nodes,
            seed=args.seed,
            engines=engines,
            gpus=args.gpus,
            static=args.static,
            pools=args.pools,
            control_port=args.control,
            write_config=args.write_config,
            gateway_replicas=args.gateway or 0,
        )
    )


def _validate(args: argparse.Namespace) -> tuple[str, ...]:
    """The engine kinds asked for; any nonsense is a usage error (exit 64)."""
    from console.sim.engines import ENGINE_KINDS

    parser: argparse.ArgumentParser = args.parser
    asked = ",".join(ENGINE_KINDS) if args.engines is None else args.engines
    engines = tuple(kind.strip() for kind in asked.split(",") if kind.strip())
    unknown = [kind for kind in engines if kind not in ENGINE_KINDS]
    if unknown or not engines:
        parser.error(
            f"--engines: unknown engine kind {unknown[0] if unknown else '(none)'!r} "
            f"(known: {', '.join(ENGINE_KINDS)})"
        )
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if args.gpus < 1:
        parser.error("--gpus must be at least 1")
    if args.pools is not None and args.pools < 1:
        parser.error("--pools must be at least 1")
    if args.gateway is not None and args.gateway < 1:
        parser.error("--gateway must be at least 1 replica")
    if not 0 <= args.control <= 65535:
        parser.error("--control must be a port number (0 picks a free one)")
    return engines
