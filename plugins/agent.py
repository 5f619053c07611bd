"""The node agent's `GET /v1/snapshot` (DESIGN.md, 'The node agent API') as a source.

The agent supplies a node's GPUs, host and deployed revision, and the canonical engine figures
when it scrapes a local engine itself; a node with both an engine URL and an agent takes the
serving figures from the engine and the rest from the agent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from console.errors import SourceError
from console.fleet import NodeConfig
from console.mapping import ENGINE_SCALARS, GPU_FIGURES
from console.model import EngineSample, GpuSample, HostSample, Reading
from console.plugin import Registry

SNAPSHOT_PATH = "/v1/snapshot"
SUPPORTED_SCHEMA = 1
# last_xid is an integer code, read on its own; every other figure is a number or null
_GPU_NUMBERS = tuple(name for name in GPU_FIGURES if name != "last_xid")


def _number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SourceError(f"{where}.{key}: expected a number or null, got {type(value).__name__}")
    return None if math.isnan(value) else float(value)


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise SourceError(f"{where}: expected an object, got {type(data).__name__}")
    return data


def _gpu(data: Any, position: int) -> GpuSample:
    where = f"gpus[{position}]"
    gpu = _object(data, where)
    index = gpu.get("index", position)
    if not isinstance(index, int) or isinstance(index, bool):
        raise SourceError(f"{where}.index: expected an integer")
    last_xid = gpu.get("last_xid")
    throttle = gpu.get("throttle")
    return GpuSample(
        index=index,
        uuid=gpu.get("uuid") if isinstance(gpu.get("uuid"), str) else None,
        name=gpu.get("name") if isinstance(gpu.get("name"), str) else None,
        last_xid=last_xid if isinstance(last_xid, int) and not isinstance(last_xid, bool) else None,
        throttle=tuple(str(t) for t in throttle) if isinstance(throttle, list) else None,
        lost=gpu.get("lost") is True,
        **{key: _number(gpu, key, where) for key in _GPU_NUMBERS},
    )


def _engine(engine: Mapping[str, Any]) -> EngineSample:
    """The canonical figures of an engine the agent scrapes itself (counters still totals)."""
    numbers = {key: _number(engine, key, "engine") for key in ENGINE_SCALARS}
    model = engine.get("model")
    return EngineSample(
        running=numbers["running"],
        waiting=numbers["waiting"],
        kv_cache_usage=numbers["kv_cache_usage"],
        prompt_tokens_total=numbers["prompt_tokens_total"],
        generation_tokens_total=numbers["generation_tokens_total"],
        requests_total=numbers["requests_total"],
        errors_total=numbers["errors_total"],
        model=model if isinstance(model, str) else None,
    )


def decode_snapshot(body: bytes) -> Reading:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"agent snapshot is not JSON: {exc}") from None
    snapshot = _object(data, "snapshot")
    version = snapshot.get("schema_version")
    if version != SUPPORTED_SCHEMA:
        raise SourceError(
            f"agent snapshot schema_version {version!r} (expected {SUPPORTED_SCHEMA})"
        )
    gpus = snapshot.get("gpus") or []
    if not isinstance(gpus, list):
        raise SourceError("gpus: expected a list")
    host = snapshot.get("host")
    engine = snapshot.get("engine")
    gpu_error = snapshot.get("gpu_error")
    revision = snapshot.get("revision")
    return Reading(
        gpus=tuple(_gpu(gpu, i) for i, gpu in enumerate(gpus)),
        host=None
        if host is None
        else HostSample(
            **{
                key: _number(_object(host, "host"), key, "host")
                for key in ("cpu", "mem_used", "mem_total", "load1", "uptime_s")
            }
        ),
        engine=None if engine is None else _engine(_object(engine, "engine")),
        gpu_error=str(gpu_error) if gpu_error is not None else None,
        revision=str(revision) if revision is not None else None,
    )


class AgentSource:
    def __init__(self, url: str) -> None:
        self.url = url

    def decode(self, body: bytes) -> Reading:
        return decode_snapshot(body)


def _agent_source(node: NodeConfig, url: str, registry: Registry) -> AgentSource:
    return AgentSource(url)


def register(registry: Registry) -> None:
    registry.add_source("agent", _agent_source)
