"""The agent source decodes `GET /v1/snapshot` into canonical readings; bad payloads are one
clear error naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from console.builtin import agent
from console.errors import SourceError

SNAPSHOT: dict[str, Any] = {
    "schema_version": 1,
    "node": "gpu-07",
    "time": 1_700_000_000.0,
    "host": {"cpu": 35.5, "mem_used": 1.0e10, "mem_total": 5.0e11, "load1": 3.2, "uptime_s": 86400},
    "gpus": [
        {
            "index": 0,
            "uuid": "GPU-a",
            "name": "NVIDIA H100",
            "util": 91,
            "mem_util": 40,
            "mem_used": 7.0e10,
            "mem_total": 8.0e10,
            "temp": 71,
            "power": 610.5,
            "power_limit": 700,
            "clocks": {"sm": 1980, "mem": 2619},
            "throttle": ["sw_power_cap"],
            "ecc_uncorrected": 0,
            "last_xid": None,
            "last_xid_time": None,
            "lost": False,
            "processes": [],
        },
        {
            "index": 1,
            "util": None,
            "temp": None,
            "lost": True,
            "last_xid": 79,
            "last_xid_time": 1_699_999_990.0,
        },
    ],
    "gpu_error": None,
    "engine": {"running": 4, "waiting": 0, "requests_total": 1200, "model": "m"},
    "revision": "rev-9",
}


def decode(payload: Any) -> Any:
    return agent.decode_snapshot(json.dumps(payload).encode())


def test_snapshot_maps_onto_readings() -> None:
    reading = decode(SNAPSHOT)
    assert reading.revision == "rev-9"
    assert reading.host.cpu == 35.5 and reading.host.load1 == 3.2
    first, lost = reading.gpus
    assert (first.util, first.temp, first.power, first.throttle) == (
        91,
        71,
        610.5,
        ("sw_power_cap",),
    )
    assert lost.lost and lost.last_xid == 79 and lost.util is None
    assert reading.engine.running == 4 and reading.engine.model == "m"
    assert reading.engine.kv_cache_usage is None  # unknown stays unknown


def test_no_gpus_with_a_reason() -> None:
    reading = decode({**SNAPSHOT, "gpus": [], "gpu_error": "NVML: driver not loaded"})
    assert reading.gpus == () and reading.gpu_error == "NVML: driver not loaded"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ([], "snapshot: expected an object"),
        ({**SNAPSHOT, "schema_version": 2}, "schema_version 2"),
        ({**SNAPSHOT, "gpus": {"0": {}}}, "gpus: expected a list"),
        ({**SNAPSHOT, "gpus": [{"index": 0, "util": "high"}]}, "gpus[0].util: expected a number"),
        ({**SNAPSHOT, "gpus": [{"index": "0"}]}, "gpus[0].index: expected an integer"),
        ({**SNAPSHOT, "host": {"cpu": True}}, "host.cpu: expected a number"),
    ],
)
def test_bad_payloads_name_the_field(payload: Any, message: str) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(SourceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        agent.decode_snapshot(body)
