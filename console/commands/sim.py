"""`fleetdeck sim`: serve a simulated fleet on loopback until interrupted.

Prints `control http://127.0.0.1:PORT` and then `ready N nodes` on stdout (flushed), so a
parent process can wait for the fleet; with `--gateway`, the lines between name the gateway's
runtime API per replica (`gateway edge tcp://127.0.0.1:PORT`) and its frontend per route
(`route pool-a http://127.0.0.1:PORT`). Diagnostics go to stderr. SIGINT and SIGTERM stop it
cleanly with exit 0.

With `--exporters N` it serves instead every node's vLLM and GPU series on N Prometheus
targets, each series labelled with its node and pool (a fleet of 10,000 nodes for a real
Prometheus to scrape): it prints `exporter http://127.0.0.1:PORT` per target, then `ready N
nodes`, and `--write-targets FILE` writes the targets in Prometheus' file_sd format.
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
    parser.add_argument(
        "--gpus", type=int, metavar="N", help="GPUs per node (default 8; with --exporters 1)"
    )
    parser.add_argument(
        "--pools",
        type=int,
        metavar="N",
        help="N pools of consecutive nodes (with --exporters default one per 100 nodes)",
    )
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
    parser.add_argument(
        "--exporters",
        type=int,
        metavar="N",
        help="serve the nodes' vLLM and GPU series, labelled node and pool, on N Prometheus "
        "targets instead of two servers per node",
    )
    parser.add_argument(
        "--buckets",
        type=int,
        metavar="N",
        help="with --exporters: buckets of the TTFT histogram, +Inf included (default 4)",
    )
    parser.add_argument(
        "--write-targets",
        metavar="FILE",
        help="with --exporters: write the targets as a Prometheus file_sd JSON file",
    )
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    engines = _validate(args)
    import asyncio

    if args.exporters is not None:
        from console.sim.exporter import DEFAULT_BUCKETS
        from console.sim.serve import serve_exporters

        return asyncio.run(
            serve_exporters(
                nodes=args.nodes,
                exporters=args.exporters,
                seed=args.seed,
                gpus=args.gpus or 1,
                static=args.static,
                pools=args.pools,
                buckets=DEFAULT_BUCKETS if args.buckets is None else args.buckets,
                write_targets=args.write_targets,
            )
        )
    from console.sim.serve import serve

    return asyncio.run(
        serve(
            nodes=args.nodes,
            seed=args.seed,
            engines=engines,
            gpus=args.gpus or 8,
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
    if args.gpus is not None and args.gpus < 1:
        parser.error("--gpus must be at least 1")
    if args.pools is not None and args.pools < 1:
        parser.error("--pools must be at least 1")
    if args.gateway is not None and args.gateway < 1:
        parser.error("--gateway must be at least 1 replica")
    if not 0 <= args.control <= 65535:
        parser.error("--control must be a port number (0 picks a free one)")
    if args.exporters is not None:
        _validate_exporters(args, engines)
    else:
        for option, value in (("--buckets", args.buckets), ("--write-targets", args.write_targets)):
            if value is not None:
                parser.error(f"{option} needs --exporters")
    return engines


def _validate_exporters(args: argparse.Namespace, engines: tuple[str, ...]) -> None:
    """--exporters serves vLLM series alone, with no control API, gateway or fleet.yaml."""
    from console.sim.exporter import ttft_bounds

    parser: argparse.ArgumentParser = args.parser
    if not 1 <= args.exporters <= args.nodes:
        parser.error("--exporters must be 1 to --nodes")
    if args.engines is not None and set(engines) != {"vllm"}:
        parser.error("--exporters serves vLLM series only: leave out --engines")
    for option, given in (
        ("--gateway", args.gateway is not None),
        ("--write-config", args.write_config is not None),
        ("--control", args.control != 0),
    ):
        if given:
            parser.error(f"{option} does not go with --exporters (no per-node servers)")
    if args.pools is not None and args.pools > args.nodes:
        parser.error("--pools must be at most --nodes")
    if args.buckets is not None:
        try:
            ttft_bounds(args.buckets)
        except ValueError as exc:
            parser.error(f"--buckets: {exc}")
