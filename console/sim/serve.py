"""Run a simulated fleet in the foreground until SIGINT or SIGTERM (`fleetdeck sim`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence

from console.errors import FleetdeckError
from console.sim.child import Service
from console.sim.exporter import SimExporters
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

    def announce() -> None:
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

    return await _serve_until_stopped(fleet, announce, nodes)


async def serve_exporters(
    nodes: int,
    exporters: int,
    seed: int,
    gpus: int,
    static: bool,
    pools: int | None,
    buckets: int,
    write_targets: str | None,
) -> int:
    """Serve the nodes' series on `exporters` Prometheus targets (exporter.py); print
    `exporter URL` per target and `ready N nodes` once they listen. `write_targets` gets the
    targets in Prometheus' file_sd format."""
    fleet = SimExporters(
        nodes, exporters, seed=seed, gpus=gpus, static=static, buckets=buckets, pools=pools
    )

    def announce() -> None:
        if write_targets is not None:
            _write(write_targets, json.dumps(fleet.file_sd(), indent=1) + "\n")
        for url in fleet.urls:
            print(f"exporter {url}", flush=True)

    return await _serve_until_stopped(fleet, announce, nodes)


async def _serve_until_stopped(service: Service, announce: Callable[[], None], nodes: int) -> int:
    """Start, say where it listens, print `ready N nodes`, and serve until SIGINT or SIGTERM."""
    stop = _stop_on_signals()
    await service.start()
    try:
        announce()
        print(f"ready {nodes} nodes", flush=True)
        await stop.wait()
    finally:
        await service.stop()
    return 0


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _write(path: str, text: str) -> None:
    """Write the file whole or not at all (a reader never sees half a file)."""
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(partial, path)
    except OSError as exc:
        raise FleetdeckError(f"cannot write {path}: {exc.strerror}", "sim") from None
