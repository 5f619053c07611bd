"""A node agent snapshot (`GET /v1/snapshot`) as Prometheus text (`GET /metrics`).

One renderer for the agent and the simulator's agents, so a Prometheus server scraping either
sees the same families. Every family carries the `fleetdeck_` prefix; an unknown (null) figure
is left out rather than written as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "fleetdeck_"

# (snapshot key, family suffix, help) per section of the snapshot
HOST_FAMILIES = (
    ("cpu", "host_cpu", "Host CPU utilisation in percent (0-100)."),
    ("mem_used", "host_mem_used", "Host memory in use, bytes."),
    ("mem_total", "host_mem_total", "Host memory, bytes."),
    ("load1", "host_load1", "Host load average over one minute."),
    ("uptime_s", "host_uptime_s", "Seconds since the host booted."),
)
GPU_FAMILIES = (
    ("util", "gpu_util", "GPU utilisation in percent (0-100)."),
    ("mem_util", "gpu_mem_util", "GPU memory controller utilisation in percent (0-100)."),
    ("mem_used", "gpu_mem_used", "GPU memory in use, bytes."),
    ("mem_total", "gpu_mem_total", "GPU memory, bytes."),
    ("temp", "gpu_temp", "GPU temperature, degrees Celsius."),
    ("power", "gpu_power", "GPU power draw, watts."),
    ("power_limit", "gpu_power_limit", "GPU power limit, watts."),
    ("ecc_uncorrected", "gpu_ecc_uncorrected", "Uncorrected ECC errors."),
    ("last_xid", "gpu_last_xid", "The last XID error the GPU reported."),
    ("lost", "gpu_lost", "1 when the GPU fell off the bus."),
)
ENGINE_GAUGES = (
    ("running", "engine_running", "Requests the local engine is running."),
    ("waiting", "engine_waiting", "Requests waiting in the local engine's queue."),
    ("kv_cache_usage", "engine_kv_cache_usage", "KV cache in use, fraction 0..1."),
)
ENGINE_COUNTERS = (
    ("prompt_tokens_total", "engine_prompt_tokens_total", "Prompt tokens processed."),
    ("generation_tokens_total", "engine_generation_tokens_total", "Tokens generated."),
    ("requests_total", "engine_requests_total", "Requests finished."),
    ("errors_total", "engine_errors_total", "Requests that failed."),
)
Samples = list[tuple[str, Any]]  # (label text with braces, or "", value)


def snapshot_metrics(snapshot: Mapping[str, Any]) -> str:
    """The snapshot's host, GPU, engine and revision figures as Prometheus text."""
    lines: list[str] = []
    host = snapshot.get("host") or {}
    for key, suffix, help_text in HOST_FAMILIES:
        _family(lines, suffix, "gauge", help_text, [("", host.get(key))])
    gpus: list[Mapping[str, Any]] = snapshot.get("gpus") or []
    for key, suffix, help_text in GPU_FAMILIES:
        _family(lines, suffix, "gauge", help_text, [(_gpu(gpu), gpu.get(key)) for gpu in gpus])
    for clock in ("sm", "mem"):
        samples = [(_gpu(gpu), (gpu.get("clocks") or {}).get(clock)) for gpu in gpus]
        _family(lines, f"gpu_clock_{clock}", "gauge", f"GPU {clock} clock, MHz.", samples)
    identities = [
        (_labels(gpu=gpu["index"], name=gpu.get("name"), uuid=gpu.get("uuid")), 1) for gpu in gpus
    ]
    _family(lines, "gpu_info", "gauge", "GPU identity.", identities)
    _engine_families(lines, snapshot)
    revision = snapshot.get("revision")
    if revision is not None:
        _family(
            lines,
            "revision_info",
            "gauge",
            "The deployed revision.",
            [(_labels(revision=revision), 1)],
        )
    return "\n".join(lines) + "\n"


def _engine_families(lines: list[str], snapshot: Mapping[str, Any]) -> None:
    """The local engine's figures, and whether the agent could read them at all."""
    engine: Mapping[str, Any] | None = snapshot.get("engine")
    if engine is None:
        if snapshot.get("engine_error") is not None:
            _family(lines, "engine_up", "gauge", "1 when the local engine answered.", [("", 0)])
        return
    _family(lines, "engine_up", "gauge", "1 when the local engine answered.", [("", 1)])
    for key, suffix, help_text in ENGINE_GAUGES:
        _family(lines, suffix, "gauge", help_text, [("", engine.get(key))])
    for key, suffix, help_text in ENGINE_COUNTERS:
        _family(lines, suffix, "counter", help_text, [("", engine.get(key))])
    model = engine.get("model")
    if model is not None:
        _family(lines, "engine_info", "gauge", "The model served.", [(_labels(model=model), 1)])


def _gpu(gpu: Mapping[str, Any]) -> str:
    return f'{{gpu="{gpu["index"]}"}}'


def _labels(**values: object) -> str:
    """`{a="x",b="y"}` with label values escaped as the text format wants; None is left out."""
    pairs = ",".join(
        f'{name}="{_escape(str(value))}"' for name, value in values.items() if value is not None
    )
    return f"{{{pairs}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(lines: list[str], suffix: str, kind: str, help_text: str, samples: Samples) -> None:
    name = PREFIX + suffix
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        if value is not None:
            lines.append(f"{name}{labels} {float(value)!r}")
