"""Watching this host alone: the agent's telemetry read in-process, shaped as a one-node fleet."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from console.agent.telemetry import Telemetry
from console.collector import Collector
from console.local import LocalTransport, local_fleet
from console.plugin import load_registry
from tests.agent.fake_nvml import FakeNvml, h200
from tests.integration.conftest import fleetdeck


async def test_local_fleet_reads_telemetry_in_process() -> None:
    config = local_fleet(interval=0.2, node="gpu-box")
    telemetry = Telemetry(node="gpu-box", nvml=FakeNvml([h200(i) for i in range(8)]), interval=0.2)
    collector = Collector(config, load_registry(), transport=lambda: LocalTransport(telemetry))
    await collector.scrape_all()
    snapshot = collector.build()
    await collector.aclose()
    (node,) = snapshot.nodes
    assert node.name == "gpu-box" and node.up and not node.stale
    assert len(node.gpus) == 8 and all(gpu.util is not None for gpu in node.gpus)
    assert node.host is not None and node.host.mem_total
    assert snapshot.pools[0].gpu_util_avg is not None


async def test_local_command_without_a_gpu_says_why() -> None:
    run = await fleetdeck("local", "--count", "2", "--interval", "300ms")
    assert run.code == 0, run.stderr
    assert "nodes up 1/1" in run.stdout
    assert "GPU telemetry: NVML" in run.stdout  # no driver here: a reason, not a crash


async def test_plain_fleetdeck_without_config_watches_this_host(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLEETDECK_CONFIG"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_STATE_HOME=str(tmp_path / "state"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "console",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(2.5)
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    shown = out.decode()
    assert "nodes up 1/1" in shown, err.decode()
    assert socket.gethostname().split(".")[0] in shown
