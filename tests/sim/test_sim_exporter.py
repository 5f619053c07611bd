"""`SimExporters`: many nodes' series on a few targets, read back by our parser, by the vLLM
mapping, by a real Prometheus and through `fleetdeck sim --exporters`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.mapping import load_mapping_file
from console.promtext import Family, Page, parse
from console.sim.exporter import GPU_KEYS, SimExporters, ttft_bounds
from console.sim.prometheus import PrometheusProcess

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0
ENGINE_FAMILIES = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:request_success",
    "vllm:time_to_first_token_seconds",
}
GPU_FAMILIES = {f"fleetdeck_gpu_{key}" for key in GPU_KEYS}


async def pages(exporters: SimExporters, client: httpx.AsyncClient) -> list[Page]:
    parsed = []
    for url in exporters.urls:
        answer = await client.get(url + "/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        page = parse(answer.text)
        assert not page.issues, page.issues[:3]
        parsed.append(page)
    return parsed


def of_node(page: Page, node: str) -> Page:
    """The part of an exporter's page one node's engine and agent would have served."""
    return Page(
        {
            name: Family(name, family.type, family.help, [
                sample for sample in family.samples if sample.labels["node"] == node
            ])
            for name, family in page.families.items()
        },
        [],
    )  # fmt: skip


async def test_each_exporter_serves_a_block_of_nodes_every_series_labelled(
    client: httpx.AsyncClient,
) -> None:
    async with SimExporters(nodes=12, exporters=3, seed=2, gpus=2, pools=4) as exporters:
        served = await pages(exporters, client)
    assert exporters.series_per_node == 3 + 2 + 4 + (3 + 1 + 2) + 5 * 2
    blocks = []
    for page in served:
        assert set(page.families) == ENGINE_FAMILIES | GPU_FAMILIES
        samples = [sample for family in page.families.values() for sample in family.samples]
        nodes = sorted({sample.labels["node"] for sample in samples})
        blocks.append(nodes)
        assert len(samples) == exporters.series_per_node * len(nodes)
        for sample in samples:
            assert sample.labels["pool"] == exporters.pools[sample.labels["node"]]
        for gpu_family in GPU_FAMILIES:
            gpus = {sample.labels["gpu"] for sample in page.families[gpu_family].samples}
            assert gpus == {"0", "1"}
    names = [f"node-{index:03d}" for index in range(1, 13)]
    assert blocks == [names[0:4], names[4:8], names[8:12]]
    pools = [exporters.pools[name] for name in names]
    assert pools == ["pool-a"] * 3 + ["pool-b"] * 3 + ["pool-c"] * 3 + ["pool-d"] * 3


async def test_one_nodes_series_read_by_the_vllm_mapping_give_its_model(
    client: httpx.AsyncClient,
) -> None:
    mapping = load_mapping_file(ROOT / "plugins" / "engines" / "vllm.yaml")
    async with SimExporters(nodes=6, exporters=2, seed=5, buckets=6) as exporters:
        (_, second) = await pages(exporters, client)
    model = exporters.models["node-005"]
    engine = mapping.apply(of_node(second, "node-005")).engine
    assert engine is not None
    assert engine.model == "meta-llama/Llama-3.1-8B"
    assert (engine.running, engine.waiting) == (model.running, model.waiting)
    assert engine.kv_cache_usage == model.kv_cache_usage
    assert engine.requests_total == pytest.approx(model.requests_total)
    assert engine.errors_total == pytest.approx(model.errors_total)
    assert engine.prompt_tokens_total == pytest.approx(model.prompt_tokens_total)
    ttft = engine.ttft_seconds
    assert ttft is not None
    assert len(ttft.buckets) == 6 and ttft.buckets[-1][0] == float("inf")
    assert tuple(bound for bound, _count in ttft.buckets[:-1]) == ttft_bounds(6)
    gpu = second.families["fleetdeck_gpu_util"].samples
    utils = {sample.labels["node"]: sample.value for sample in gpu}
    assert utils["node-005"] == model.gpu_readings()[0].util


async def test_a_moving_fleet_counts_on_and_a_static_one_stays(
    client: httpx.AsyncClient,
) -> None:
    now = [100.0]
    moving = SimExporters(nodes=4, exporters=1, static=False, clock=lambda: now[0])
    before = moving.exporters[0].render()
    now[0] += 30.0
    after = parse(moving.exporters[0].render()).families["vllm:prompt_tokens"].samples
    counted = parse(before).families["vllm:prompt_tokens"].samples
    assert all(late.value > early.value for early, late in zip(counted, after, strict=True))
    async with SimExporters(nodes=4, exporters=1, static=True, clock=lambda: now[0]) as still:
        first = (await client.get(still.urls[0] + "/metrics")).content
        now[0] += 30.0
        assert still.exporters[0].render().encode() == first
        assert (await client.get(still.urls[0] + "/metrics")).content == first
        assert (await client.get(still.urls[0] + "/v1/snapshot")).status_code == 404


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"nodes": 3, "exporters": 4}, "exporters must be 1 to 3"),
        ({"nodes": 3, "exporters": 1, "buckets": 1}, "buckets must be 2 to"),
        ({"nodes": 3, "exporters": 1, "pools": 4}, "pools must be 1 to 3"),
        ({"nodes": 3, "exporters": 1, "gpus": 0}, "at least one GPU"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimExporters(**arguments)


async def test_a_real_prometheus_holds_every_nodes_series() -> None:
    async with (
        SimExporters(nodes=50, exporters=2, seed=1, pools=5) as exporters,
        PrometheusProcess(exporters.jobs(), interval=1.0) as prometheus,
    ):
        by_node = "count(count by (node) (vllm:num_requests_running))"
        await prometheus.wait_for(by_node, 50, within=15.0)
        running = await prometheus.query("vllm:num_requests_running")
        held = await prometheus.query("count by (node) ({node!=''})")
        pools = await prometheus.query("count by (pool) (fleetdeck_gpu_util)")
    values = {row["metric"]["node"]: float(row["value"][1]) for row in running}  # type: ignore[index]
    assert values == {name: model.running for name, model in exporters.models.items()}
    assert {row["metric"]["job"] for row in running} == {"fleet"}  # type: ignore[index]
    series = {float(row["value"][1]) for row in held}  # type: ignore[index]
    assert len(held) == 50 and series == {exporters.series_per_node}
    assert {row["metric"]["pool"]: row["value"][1] for row in pools} == {  # type: ignore[index]
        pool: "10" for pool in ("pool-a", "pool-b", "pool-c", "pool-d", "pool-e")
    }


def test_the_command_serves_exporters_and_writes_their_targets(tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    command = [sys.executable, "-m", "console", "sim", "--nodes", "30", "--exporters", "3"]
    process = subprocess.Popen(
        [*command, "--static", "--write-targets", str(targets)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[-1] == "ready 30 nodes\n"
        urls = [line.removeprefix("exporter ").strip() for line in lines[:3]]
        assert all(line.startswith("exporter http://127.0.0.1:") for line in lines[:3])
        (group,) = json.loads(targets.read_text(encoding="utf-8"))
        assert group == {"targets": [url.removeprefix("http://") for url in urls], "labels": {}}
        with urllib.request.urlopen(urls[2] + "/metrics", timeout=WAIT) as answer:
            page = parse(answer.read().decode())
        nodes = {sample.labels["node"] for sample in page.families["fleetdeck_gpu_power"].samples}
        assert nodes == {f"node-{index:03d}" for index in range(21, 31)}  # one GPU each
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
