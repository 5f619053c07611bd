"""The Prometheus source against answers a healthy Prometheus seldom gives but a federated or
proxied one does: errors, `warnings`, the wrong result type, HTML from a proxy. Served by a
real HTTP server on loopback that answers each query by what it reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from console.collector import Collector
from console.config import load_config
from console.httpserver import HttpServer, Request, Response, json_response
from console.model import Severity, Snapshot, SourceStatus
from console.plugin import load_registry

NODE = {"node": "node-a"}
PLACED = {**NODE, "pool": "pool-x"}


def _vector(*series: tuple[dict[str, str], float], warnings: list[str] | None = None) -> Response:
    result = [{"metric": metric, "value": [1700000000.0, str(value)]} for metric, value in series]
    answer: dict[str, object] = {
        "status": "success",
        "data": {"resultType": "vector", "result": result},
    }
    if warnings:
        answer["warnings"] = warnings
    return json_response(200, answer)


def healthy(query: str) -> Response:
    """What a Prometheus holding one vLLM node answers to each of the source's queries."""
    if query.startswith("count by (node, __name__"):  # engine kind and model
        kind = {**NODE, "__name__": "vllm:num_requests_running", "model_name": "llama"}
        return _vector((kind, 1))
    if query.startswith("up{"):
        return _vector(({**NODE, "job": "engine", "instance": "10.0.0.1:8000"}, 1))
    if query.startswith("max by (node, pool) (timestamp("):
        return _vector((PLACED, 1700000000.0))
    if (
        "vllm:time_to_first_token_seconds_bucket" in query
    ):  # 10 requests/s, half under 0.2 s, all under 1 s
        rates = {"0.2": 5.0, "1": 10.0, "+Inf": 10.0}
        return _vector(*(({**NODE, "le": le}, rate) for le, rate in rates.items()))
    figures = {
        "finished_reason": 1.0,  # errors/s (tried before the requests' own family)
        "vllm:request_success": 4.0,
        "vllm:num_requests_running": 7,
        "vllm:num_requests_waiting": 2,
    }
    return next((_vector((NODE, v)) for name, v in figures.items() if name in query), _vector())


async def _view(tmp_path: Path, answer: Callable[[str], Response]) -> tuple[SourceStatus, Snapshot]:
    def handler(request: Request) -> Response:
        form = parse_qs(request.body.decode())
        return answer(form["query"][0])

    server = HttpServer(handler)
    await server.start()
    try:
        path = tmp_path / "fleet.yaml"
        path.write_text(f"source: {{plugin: prometheus, url: {server.url}}}\n")
        collector = Collector(load_config(path), load_registry(tmp_path))
        try:
            await collector.scrape_all()
            snapshot = collector.current()
        finally:
            await collector.aclose()
    finally:
        await server.close()
    return snapshot.sources[0], snapshot


async def test_healthy_answers_make_a_node(tmp_path: Path) -> None:
    source, snapshot = await _view(tmp_path, healthy)
    assert source.banner is None
    (node,) = snapshot.nodes
    assert (node.name, node.pool, node.engine_kind) == ("node-a", "pool-x", "vllm")
    assert node.engine.model == "llama"
    assert (node.engine.running, node.engine.waiting) == (7, 2)
    assert node.engine.error_rate == 0.25
    assert (node.engine.ttft_p50_s, node.engine.ttft_p95_s) == (0.2, pytest.approx(0.92))
    assert snapshot.pools[0].ttft_p95_s == pytest.approx(0.92)


async def test_partial_answers_are_a_banner_not_a_crash(tmp_path: Path) -> None:
    def partial(query: str) -> Response:
        if "vllm:num_requests_running" in query and query.startswith("(sum by"):
            return _vector((NODE, 7), warnings=["store eu-1 timed out"])
        if "request_success" in query and "finished_reason" not in query:
            return json_response(
                200, {"status": "success", "data": {"resultType": "matrix", "result": []}}
            )
        if "vllm:time_to_first_token_seconds_bucket" in query:
            return json_response(
                422,
                {"status": "error", "errorType": "execution", "error": "query too expensive"},
            )
        if "fleetdeck_gpu_mem_used" in query:
            return Response(502, b"<html>Bad Gateway</html>", "text/html")
        return healthy(query)

    source, snapshot = await _view(tmp_path, partial)
    warnings = source.warnings
    assert sorted(warnings) == [
        "gpu mem_used: HTTP 502: not JSON: b'<html>Bad Gateway</html>'",
        "requests_per_s: resultType 'matrix', expected 'vector'",
        "running: store eu-1 timed out",
        "ttft buckets x1: HTTP 422: execution: query too expensive",
    ]
    assert source.up and source.severity is Severity.WARN
    assert source.banner == f"prometheus: partial data: {warnings[0]} (+3 more)"
    (node,) = snapshot.nodes
    assert node.engine.running == 7 and node.engine.requests_per_s is None


async def test_every_query_failing_is_the_source_down(tmp_path: Path) -> None:
    def failing(query: str) -> Response:
        return json_response(
            503, {"status": "error", "errorType": "unavailable", "error": "not ready"}
        )

    source, snapshot = await _view(tmp_path, failing)
    assert not source.up
    assert source.error == "kinds: HTTP 503: unavailable: not ready"
    assert snapshot.nodes == ()
    assert snapshot.severity is Severity.UNKNOWN


async def test_gpus_named_rather_than_numbered_keep_their_figures_together(
    tmp_path: Path,
) -> None:
    def named(query: str) -> Response:
        if "fleetdeck_gpu_util" in query and "timestamp" not in query:
            return _vector(({**NODE, "gpu": "GPU-b"}, 20), ({**NODE, "gpu": "GPU-a"}, 10))
        if "fleetdeck_gpu_temp" in query:
            return _vector(({**NODE, "gpu": "GPU-a"}, 51), ({**NODE, "gpu": "GPU-b"}, 52))
        return healthy(query)

    _, snapshot = await _view(tmp_path, named)
    (node,) = snapshot.nodes
    assert [(g.index, g.util, g.temp) for g in node.gpus] == [(0, 10, 51), (1, 20, 52)]  # by label
