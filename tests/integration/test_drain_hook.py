"""A node with no gateway drains through its agent's `stop_accepting` hook: its engine then
turns new requests away (503), and `undrain` runs `resume`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import fleetdeck, write_fleet

COMPLETION = {"prompt": "ping", "max_tokens": 1}


async def test_drain_and_undrain_through_the_agent_hooks(sim_factory: Any, tmp_path: Path) -> None:
    fleet = await sim_factory(2, engines=("vllm",))
    config = write_fleet(fleet, tmp_path / "fleet.yaml")
    audit = tmp_path / "audit.jsonl"
    node = fleet.nodes[0]
    common = ("-c", str(config), "--audit-log", str(audit), "--yes")
    async with httpx.AsyncClient(base_url=node.url, timeout=5.0) as client:
        assert (await client.post("/v1/completions", json=COMPLETION)).status_code == 200
        drain = await fleetdeck("drain", node.name, *common)
        assert drain.code == 0, drain.stdout + drain.stderr
        assert "hook stop_accepting: done" in drain.stdout
        assert (await client.post("/v1/completions", json=COMPLETION)).status_code == 503
        undrain = await fleetdeck("undrain", node.name, *common)
        assert undrain.code == 0, undrain.stdout + undrain.stderr
        assert (await client.post("/v1/completions", json=COMPLETION)).status_code == 200
