"""Run a simulated fleet in the foreground until SIGINT or SIGTERM (`fleetdeck sim`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from console.errors import FleetdeckError
from console.sim.fleet import SimFleet


async def serve(
    nodes: int,
    seed: int,
    engines: Sequence[str],
    gpus: int,
    static: bool,
    pools: int | None,
    control_port: int,
    write_config: str | None,
    gateway_replicas: int = 0,
) -> int:
    """Serve the fleet (behind a gateway of `gateway_replicas` replicas, when not 0); print
    `control URL`, with a gateway `gateway NAME ENDPOINT` per replica and `route KEY URL` per
    route of the first replica, and `ready N nodes` once it listens."""
    fleet = SimFleet(
        nodes,
        seed=seed,
        engines=engines,
        gpus=gpus,
        static=static,
        pools=pools,
        control_port=control_port,
        gateway=gateway_replicas > 0,
        gateway_replicas=max(1, gateway_replicas),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await fleet.start()
    try:
        for warning in fleet.warnings:
            print(f"fleetdeck sim: {warning}", file=sys.stderr)
        if write_config is not None:
            _write(write_config, fleet.config_yaml())
        print(f"control {fleet.control_url}", flush=True)
        if fleet.gateway is not None:
            for endpoint in fleet.gateway.endpoints:
                print(f"gateway {fleet.gateway.name} {endpoint}", flush=True)
            for key, url in fleet.gateway.frontends.items():
                print(f"route {key} {url}", flush=True)
        print(f"ready {nodes} nodes", flush=True)
        await stop.wait()
    finally:
        await fleet.stop()
    return 0


def _write(path: str, text: str) -> None:
    """Write the config whole or not at all (a reader never sees half a file)."""
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(partial, path)
    except OSError as exc:
        raise FleetdeckError(f"cannot write {path}: {exc.strerror}", "sim") from None
