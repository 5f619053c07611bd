"""`fleetdeck demo` runs on a fresh machine, and its scripted incident reaches the sim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from console.demo import Step, run_incident
from tests.integration.conftest import fleetdeck


async def test_demo_shows_the_simulated_fleet() -> None:
    run = await fleetdeck(
        "demo", "--nodes", "4", "--count", "3", "--interval", "500ms", "--no-incident"
    )
    assert run.code == 0, run.stderr
    assert "nodes up 4/4" in run.stdout
    for kind in ("vllm", "sglang", "tgi", "triton"):
        assert kind in run.stdout


async def test_incident_steps_drive_the_sim(sim_factory: Any, control_factory: Any) -> None:
    fleet = await sim_factory(3, engines=("vllm",))
    names = [n.name for n in fleet.nodes]
    said: list[str] = []
    steps = (
        Step(0, 1, {"fault": "bad_deploy"}, "bad deploy on {node}"),
        Step(0, 2, {"waiting": 150}, "spike on {node}"),
        Step(0, 9, {"fault": "hang"}, "a node the fleet does not have"),
    )
    await run_incident(fleet.control_url, names, said.append, steps)
    assert said == [f"bad deploy on {names[1]}", f"spike on {names[2]}"]
    truth = await control_factory(fleet).truth()
    assert truth[names[1]]["fault"] is not None
    assert truth[names[2]]["waiting"] == 150


def test_demo_behind_haproxy_without_haproxy_says_so_in_one_line(tmp_path: Path) -> None:
    hide_haproxy = (  # neither on PATH (empty) nor in the folders Debian installs it in
        "import sys, console.sim.haproxy as found; found.SBIN_FOLDERS = ()\n"
        "from console.cli import main; sys.exit(main(['demo', '--haproxy']))"
    )
    run = subprocess.run(
        [sys.executable, "-c", hide_haproxy],
        env={"PATH": "", "XDG_STATE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 78 and run.stdout == ""
    assert (
        run.stderr.startswith("fleetdeck: sim: haproxy not found") and run.stderr.count("\n") == 1
    )
