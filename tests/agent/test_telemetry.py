"""The node agent's telemetry: GPUs through a fake of the NVML wrapper, the host through psutil."""

from __future__ import annotations

import ctypes.util
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pynvml
import pytest

from console.agent import gpus as gpus_module
from console.agent.gpus import NVML_RETRY_S, throttle_names
from console.agent.host import ENGINE_SEARCH_S
from console.agent.nvml import GpuLost, GpuProcess, Nvml, unavailable_reason
from console.agent.telemetry import Telemetry
from tests.agent.fake_nvml import H200_MEM_TOTAL, FakeNvml, h200, unsupported

WALL = 1_700_000_000.0
DEADLINE_S = 5.0  # the longest any wait in these tests may take


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_telemetry(clock: FakeClock) -> Iterator[Callable[..., Telemetry]]:
    """Telemetry on the fake clock and a fixed wall time (unless given), closed after the test."""
    made: list[Telemetry] = []

    def make(**options: Any) -> Telemetry:
        telemetry = Telemetry(
            **{"node": "gpu-node-1", "clock": clock, "wall": lambda: WALL, **options}
        )
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.close()


def eight_h200() -> FakeNvml:
    return FakeNvml([h200(index) for index in range(8)])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# --- GPUs ----------------------------------------------------------------------------------


def test_supported_fields_come_in_the_snapshots_units(make_telemetry: Callable[..., Telemetry]):
    snapshot = make_telemetry(nvml=eight_h200()).snapshot()
    assert snapshot["schema_version"] == 1
    assert snapshot["node"] == "gpu-node-1"
    assert snapshot["time"] == WALL
    assert snapshot["gpu_error"] is None
    assert [gpu["index"] for gpu in snapshot["gpus"]] == list(range(8))
    gpu = snapshot["gpus"][5]
    assert gpu == {
        "index": 5,
        "uuid": "GPU-00000000-0000-0000-0000-000000000005",
        "name": "NVIDIA H200",
        "util": 85,
        "mem_util": 45,
        "mem_used": 135_000_000_005,
        "mem_total": H200_MEM_TOTAL,
        "temp": 65,
        "power": 612.345,  # W from NVML's mW
        "power_limit": 700.0,
        "clocks": {"sm": 1980, "mem": 3201},
        "throttle": ["sw_power_cap", "sw_thermal"],
        "ecc_uncorrected": 5,
        "remapped_rows": {"correctable": 2, "uncorrectable": 0, "pending": False, "failed": False},
        "retired_pages": None,
        "last_xid": None,
        "last_xid_time": None,
        "lost": False,
        "processes": [],
    }
    json.dumps(snapshot, allow_nan=False)  # the server sends it as it is


def test_gpu_processes_are_named_while_they_live(make_telemetry: Callable[..., Telemetry]):
    gone_pid = psutil.Popen([sys.executable, "-c", "pass"]).pid
    psutil.Process(gone_pid).wait(timeout=DEADLINE_S)
    processes = [GpuProcess(os.getpid(), 1_000_000), GpuProcess(gone_pid, None)]
    snapshot = make_telemetry(nvml=FakeNvml([h200(0, processes)])).snapshot()
    assert snapshot["gpus"][0]["processes"] == [
        {"pid": os.getpid(), "name": psutil.Process().name(), "mem_used": 1_000_000},
        {"pid": gone_pid, "name": None, "mem_used": None},
    ]


def test_fields_nvml_does_not_offer_are_null_not_zero(make_telemetry: Callable[..., Telemetry]):
    gpu = make_telemetry(nvml=FakeNvml([unsupported(0)])).snapshot()["gpus"][0]
    assert (gpu["index"], gpu["uuid"], gpu["name"], gpu["lost"]) == (
        0,
        "GPU-0",
        "NVIDIA A10G",
        False,
    )
    readings = {key: value for key, value in gpu.items() if key not in ("index", "uuid", "name")}
    assert readings == {
        **dict.fromkeys(readings),
        "clocks": {"sm": None, "mem": None},
        "lost": False,
    }


def test_throttle_reasons_are_decoded_from_nvmls_bits():
    mask = pynvml.nvmlClocksEventReasonHwSlowdown | pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown
    assert throttle_names(mask) == ["hw_slowdown", "hw_power_brake"]
    assert throttle_names(pynvml.nvmlClocksEventReasonGpuIdle) == ["idle"]
    assert throttle_names(0) == []
    assert throttle_names(None) is None
    assert throttle_names(0x4 | 0x800) == ["sw_power_cap", "0x800"]  # a bit without a name


@pytest.mark.parametrize(
    "reason",
    [
        "NVML: libnvidia-ml.so.1 not found (no NVIDIA driver installed)",
        "NVML: NVIDIA driver not loaded",
    ],
)
def test_no_nvml_means_no_gpus_and_the_reason(
    make_telemetry: Callable[..., Telemetry], reason: str
):
    snapshot = make_telemetry(nvml=FakeNvml(unavailable=reason)).snapshot()
    assert snapshot["gpus"] == []
    assert snapshot["gpu_error"] == reason
    assert snapshot["host"]["mem_total"] > 0  # the host is still reported


def test_nvml_init_is_retried_now_and_then(
    make_telemetry: Callable[..., Telemetry], clock: FakeClock
):
    nvml = FakeNvml([h200(0)], unavailable="NVML: NVIDIA driver not loaded")
    telemetry = make_telemetry(nvml=nvml)
    assert telemetry.snapshot()["gpus"] == []
    nvml.unavailable = None  # the driver is loaded
    clock.advance(NVML_RETRY_S - 1)
    assert telemetry.snapshot()["gpu_error"] == "NVML: NVIDIA driver not loaded"
    assert nvml.calls["device_count"] == 1  # not once per sweep
    clock.advance(1)
    snapshot = telemetry.snapshot()
    assert (len(snapshot["gpus"]), snapshot["gpu_error"]) == (1, None)


def test_a_lost_gpu_is_marked_and_the_others_kept(
    make_telemetry: Callable[..., Telemetry], clock: FakeClock
):
    nvml = eight_h200()
    telemetry = make_telemetry(nvml=nvml)
    healthy = telemetry.snapshot()["gpus"]
    nvml.lost = {3}
    clock.advance(1)
    gpus = telemetry.snapshot()["gpus"]
    assert len(gpus) == 8
    lost = gpus[3]
    assert lost["lost"] is True
    assert (lost["index"], lost["uuid"], lost["name"]) == (3, healthy[3]["uuid"], "NVIDIA H200")
    assert lost["util"] is lost["temp"] is lost["power"] is lost["mem_used"] is None
    assert lost["clocks"] == {"sm": None, "mem": None}
    assert lost["processes"] is None  # unknown, not "none"
    assert [gpu for gpu in gpus if gpu["index"] != 3] == healthy[:3] + healthy[4:]
    nvml.lost = set()  # reset and answering again
    clock.advance(1)
    assert telemetry.snapshot()["gpus"][3] == healthy[3]


def test_an_xid_event_lands_on_its_gpu(make_telemetry: Callable[..., Telemetry], clock: FakeClock):
    nvml = eight_h200()
    telemetry = make_telemetry(nvml=nvml)
    telemetry.snapshot()
    nvml.deliver_xid(gpu=2, xid=79)

    def seen() -> bool:
        clock.advance(1)
        return telemetry.snapshot()["gpus"][2]["last_xid"] == 79

    wait_for(seen, "XID 79 on GPU 2")
    gpus = telemetry.snapshot()["gpus"]
    assert gpus[2]["last_xid_time"] == WALL
    assert all(gpu["last_xid"] is None for gpu in gpus if gpu["index"] != 2)
    nvml.lost = {2}  # XID 79: fallen off the bus; the XID stays on the lost GPU
    clock.advance(1)
    lost = telemetry.snapshot()["gpus"][2]
    assert (lost["lost"], lost["last_xid"], lost["last_xid_time"]) == (True, 79, WALL)


def test_the_xid_watcher_survives_a_failed_wait(
    make_telemetry: Callable[..., Telemetry], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(gpus_module, "XID_BACKOFF_S", 0.01)
    nvml = eight_h200()
    telemetry = make_telemetry(nvml=nvml)
    telemetry.snapshot()
    nvml.fail_next_wait("NVML: waiting for XID events failed: Unknown Error")
    nvml.deliver_xid(gpu=6, xid=48)

    def seen() -> bool:
        clock.advance(1)
        return telemetry.snapshot()["gpus"][6]["last_xid"] == 48

    wait_for(seen, "XID 48 on GPU 6")


def test_close_stops_the_xid_thread_and_nvml(make_telemetry: Callable[..., Telemetry]):
    nvml = eight_h200()
    telemetry = make_telemetry(nvml=nvml)
    telemetry.snapshot()
    assert nvml.xid_open
    assert any(thread.name == "fleetdeck-xid" for thread in threading.enumerate())
    telemetry.close()
    assert not nvml.xid_open  # the event set is freed by the thread once its wait is over
    assert nvml.shut_down
    assert not any(thread.name == "fleetdeck-xid" for thread in threading.enumerate())


def test_gpus_without_xid_events_need_no_thread(make_telemetry: Callable[..., Telemetry]):
    nvml = FakeNvml([h200(0)], xid_events=False)
    gpu = make_telemetry(nvml=nvml).snapshot()["gpus"][0]
    assert gpu["last_xid"] is None
    assert nvml.calls["open_xid_events"] == 1
    assert not any(thread.name == "fleetdeck-xid" for thread in threading.enumerate())


# --- caching -------------------------------------------------------------------------------


def test_one_sweep_serves_a_whole_interval(
    make_telemetry: Callable[..., Telemetry], clock: FakeClock
):
    nvml = eight_h200()
    telemetry = make_telemetry(nvml=nvml, interval=1.0)
    first_sweep = clock.now
    first = telemetry.snapshot()
    for _ in range(99):
        clock.advance(0.005)
        assert telemetry.snapshot() == first
    assert (nvml.calls["device_count"], nvml.calls["read"]) == (1, 8)
    clock.now = first_sweep + 1.0
    telemetry.snapshot()
    assert (nvml.calls["device_count"], nvml.calls["read"]) == (2, 16)


def test_a_caller_may_add_keys_without_touching_the_cache(
    make_telemetry: Callable[..., Telemetry],
):
    telemetry = make_telemetry(nvml=eight_h200())
    telemetry.snapshot()["revision"] = "r42"
    assert "revision" not in telemetry.snapshot()


def test_concurrent_callers_share_one_sweep(make_telemetry: Callable[..., Telemetry]):
    nvml = FakeNvml([h200(index) for index in range(8)], sweep_delay_s=0.05)
    telemetry = make_telemetry(nvml=nvml)
    callers = 8
    start = threading.Barrier(callers)
    snapshots: list[dict[str, Any]] = []

    def call() -> None:
        start.wait(timeout=DEADLINE_S)
        snapshots.append(telemetry.snapshot())

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_S)
    assert len(snapshots) == callers
    assert nvml.calls["device_count"] == 1
    assert all(snapshot == snapshots[0] for snapshot in snapshots)


# --- the real wrapper ----------------------------------------------------------------------


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="this host has an NVIDIA driver"
)
def test_the_real_wrapper_degrades_without_a_driver(make_telemetry: Callable[..., Telemetry]):
    snapshot = make_telemetry().snapshot()
    assert snapshot["gpus"] == []
    assert snapshot["gpu_error"] == "NVML: libnvidia-ml.so.1 not found (no NVIDIA driver installed)"


def nvml_error(code: int) -> Callable[[], None]:
    def fail() -> None:
        raise pynvml.NVMLError(code)

    return fail


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION])
def test_query_maps_missing_fields_to_the_default(code: int):
    nvml = Nvml()
    assert nvml.query(nvml_error(code)) is None
    assert nvml.query(nvml_error(code), default=[]) == []
    assert nvml.query(lambda: 42) == 42


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_UNKNOWN])
def test_query_reports_an_unexpected_error_once(code: int, caplog: pytest.LogCaptureFixture):
    nvml = Nvml()
    failing = nvml_error(code)
    with caplog.at_level(logging.WARNING, logger="fleetdeck.agent"):
        assert nvml.query(failing) is None
        assert nvml.query(failing) is None
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("NVML: fail: ")


def test_query_raises_gpu_lost():
    with pytest.raises(GpuLost, match="GPU is lost"):
        Nvml().query(nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST))


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "NVML: NVIDIA driver not loaded"),
        (
            pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
            "NVML: library and kernel driver versions differ (reload the driver or reboot)",
        ),
        (pynvml.NVML_ERROR_UNKNOWN, "NVML: initialisation failed: Unknown Error"),
    ],
)
def test_why_nvml_is_unavailable_is_readable(code: int, reason: str):
    assert unavailable_reason(pynvml.NVMLError(code)) == reason


# --- host ----------------------------------------------------------------------------------


def test_host_figures_are_sane(make_telemetry: Callable[..., Telemetry], tmp_path):
    telemetry = make_telemetry(nvml=FakeNvml(), model_dir=str(tmp_path), wall=time.time)
    host = telemetry.snapshot()["host"]
    assert 0.0 <= host["cpu"] <= 100.0
    assert 0 < host["mem_used"] <= host["mem_total"] == psutil.virtual_memory().total
    assert host["load1"] >= 0.0
    assert 0 < host["uptime_s"] <= time.time() - psutil.boot_time() + 1
    assert host["disk"]["path"] == str(tmp_path)
    assert 0 <= host["disk"]["used"] <= host["disk"]["total"]
    assert isinstance(host["net_errors"], int)
    assert host["net_errors"] >= 0
    assert host["engine_process"] is None  # none configured
    assert host["engine_process_error"] is None


def test_a_missing_model_dir_has_no_disk_figure(make_telemetry: Callable[..., Telemetry], tmp_path):
    host = make_telemetry(nvml=FakeNvml(), model_dir=str(tmp_path / "gone")).snapshot()["host"]
    assert host["disk"] is None


@pytest.fixture
def child() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start python children that are killed after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str, *argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=DEADLINE_S)


SLEEPER = "import time; time.sleep(60)"


def test_the_engine_process_is_found_by_name(
    make_telemetry: Callable[..., Telemetry], clock: FakeClock, child: Callable[..., Any]
):
    marker = f"engine-{uuid.uuid4().hex}"
    telemetry = make_telemetry(nvml=FakeNvml(), process_name=marker)
    host = telemetry.snapshot()["host"]
    assert host["engine_process"] is None
    assert marker in host["engine_process_error"]
    engine = child(SLEEPER, marker)
    clock.advance(1)
    assert telemetry.snapshot()["host"]["engine_process"] is None  # searched again only later
    clock.advance(ENGINE_SEARCH_S)
    found = telemetry.snapshot()["host"]["engine_process"]
    assert found is not None
    assert (found["pid"], found["name"]) == (engine.pid, psutil.Process(engine.pid).name())
    assert found["rss"] > 0
    assert found["state"] in (psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING)
    engine.kill()
    engine.wait(timeout=DEADLINE_S)
    restarted = child(SLEEPER, marker)
    clock.advance(1)  # the engine exited: looked for again at once
    assert telemetry.snapshot()["host"]["engine_process"]["pid"] == restarted.pid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LISTENER = """
import socket, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
time.sleep(60)
"""


def test_the_engine_process_is_found_by_port(
    make_telemetry: Callable[..., Telemetry], child: Callable[..., Any]
):
    try:
        psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        pytest.skip("listing sockets needs privileges on this host")
    engine = child(LISTENER)
    ready, _, _ = select.select([engine.stdout], [], [], DEADLINE_S)
    assert ready, "the listener did not report its port"
    port = int(engine.stdout.readline())
    host = make_telemetry(nvml=FakeNvml(), engine_port=port).snapshot()["host"]
    assert host["engine_process"]["pid"] == engine.pid
    assert host["engine_process_error"] is None


def test_nothing_on_the_engine_port_is_said(make_telemetry: Callable[..., Telemetry]):
    port = free_port()
    host = make_telemetry(nvml=FakeNvml(), engine_port=port).snapshot()["host"]
    assert host["engine_process"] is None
    assert host["engine_process_error"] == f"nothing listens on port {port}"
