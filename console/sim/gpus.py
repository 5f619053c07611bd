"""A node's simulated GPUs and host, in the node agent's units (DESIGN.md).

util and mem_util in percent 0-100, memory in bytes, power in W, temperature in °C, clocks in
MHz. A GPU that fell off the bus (XID 79) is `lost`: its readings are null, its last XID stays.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from console.sim.faults import XID_FELL_OFF_THE_BUS
from console.sim.load import LoadShape

GPU_NAME = "NVIDIA H100 80GB HBM3"
GPU_MEM_TOTAL = 85_520_809_984  # 81559 MiB
GPU_POWER_LIMIT = 700.0
GPU_IDLE_POWER = 72.0
SM_CLOCK_MAX = 1980
MEM_CLOCK = 2619
ENGINE_MEMORY_SHARE = 0.9  # engines preallocate 90 % of the memory for weights and KV cache
HOST_CORES = 224
HOST_MEM_TOTAL = 2_164_207_329_280  # 2 TiB less firmware reservations


@dataclass(slots=True)  # not frozen: a frozen one costs more to build, once a second per GPU
class GpuReading:
    index: int
    uuid: str
    name: str
    util: float | None
    mem_util: float | None
    mem_used: float | None
    mem_total: float
    temp: float | None
    power: float | None
    power_limit: float
    sm_clock: int | None
    mem_clock: int | None
    throttle: tuple[str, ...]
    ecc_uncorrected: int
    last_xid: int | None
    last_xid_time: float | None
    lost: bool

    def as_json(self, pid: int, process: str) -> dict[str, Any]:
        processes = [] if self.lost else [{"pid": pid, "name": process, "mem_used": self.mem_used}]
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "util": self.util,
            "mem_util": self.mem_util,
            "mem_used": self.mem_used,
            "mem_total": self.mem_total,
            "temp": self.temp,
            "power": self.power,
            "power_limit": self.power_limit,
            "clocks": {"sm": self.sm_clock, "mem": self.mem_clock},
            "throttle": list(self.throttle),
            "ecc_uncorrected": self.ecc_uncorrected,
            "last_xid": self.last_xid,
            "last_xid_time": self.last_xid_time,
            "lost": self.lost,
            "processes": processes,
        }


class GpuBoard:
    """The GPUs of one node: fixed identities, readings that follow the node's load."""

    def __init__(self, count: int, rng: random.Random, shape: LoadShape) -> None:
        self.count = count
        self.shape = shape
        self.uuids = [_uuid(rng) for _ in range(count)]
        self.util_offsets = [rng.uniform(-4.0, 4.0) for _ in range(count)]
        self.temp_offsets = [rng.uniform(-3.0, 5.0) for _ in range(count)]
        self.xid_times: dict[int, float] = {}  # GPU index -> wall time of its last XID 79
        self._cache: tuple[tuple[object, ...], list[GpuReading]] = ((), [])

    def record_xid(self, gpu: int, wall: float) -> None:
        self.xid_times[gpu] = wall

    def readings(
        self, t: float, load: float, pinned_util: float | None, lost: int | None
    ) -> list[GpuReading]:
        """Every GPU at `t` (seconds since the fleet started) under `load` (0..1). Readings
        move once a second (as NVML's do), so they are computed once a second."""
        key = (math.floor(t), round(load, 3), pinned_util, lost, tuple(self.xid_times.items()))
        if self._cache[0] != key:
            readings = [
                self._reading(index, t, load, pinned_util, lost == index)
                for index in range(self.count)
            ]
            self._cache = (key, readings)
        return self._cache[1]

    def energy_j(self, uptime_s: float) -> list[float]:
        """Energy each GPU used since the engine started (Triton's nv_energy_consumption)."""
        return [uptime_s * (GPU_IDLE_POWER + 260.0 + 4.0 * offset) for offset in self.util_offsets]

    def _reading(
        self, index: int, t: float, load: float, pinned_util: float | None, lost: bool
    ) -> GpuReading:
        xid_time = self.xid_times.get(index)
        last_xid = XID_FELL_OFF_THE_BUS if xid_time is not None else None
        if lost:
            return GpuReading(
                index,
                self.uuids[index],
                GPU_NAME,
                None,
                None,
                None,
                GPU_MEM_TOTAL,
                None,
                None,
                GPU_POWER_LIMIT,
                None,
                None,
                (),
                0,
                last_xid,
                xid_time,
                True,
            )
        if pinned_util is not None:
            util = float(pinned_util)
        else:
            wobble = 3.0 * self.shape.jitter(t, index)
            util = float(
                round(min(100.0, max(0.0, 6.0 + 90.0 * load + self.util_offsets[index] + wobble)))
            )
        power = round(GPU_IDLE_POWER + (GPU_POWER_LIMIT * 0.93 - GPU_IDLE_POWER) * util / 100.0, 2)
        temp = float(round(31.0 + 0.42 * util + self.temp_offsets[index]))
        throttle: tuple[str, ...] = ()
        if power >= GPU_POWER_LIMIT * 0.9:
            throttle = ("sw_power_cap",)
        sm_clock = SM_CLOCK_MAX if util > 5 else 345
        mem_used = float(round(GPU_MEM_TOTAL * ENGINE_MEMORY_SHARE) + 512 * 1024 * 1024)
        return GpuReading(
            index,
            self.uuids[index],
            GPU_NAME,
            util,
            float(round(util * 0.55)),
            mem_used,
            GPU_MEM_TOTAL,
            temp,
            power,
            GPU_POWER_LIMIT,
            sm_clock,
            MEM_CLOCK,
            throttle,
            0,
            last_xid,
            xid_time,
            False,
        )


def host_json(shape: LoadShape, t: float, load: float, uptime_s: float) -> dict[str, Any]:
    """The host's figures: cpu %, memory bytes, load average, uptime seconds."""
    cpu = round(min(100.0, max(0.0, 4.0 + 28.0 * load + 1.5 * shape.jitter(t, 99))), 1)
    mem_used = float(round(HOST_MEM_TOTAL * (0.17 + 0.04 * load)))
    return {
        "cpu": cpu,
        "mem_used": mem_used,
        "mem_total": float(HOST_MEM_TOTAL),
        "load1": round(cpu / 100.0 * HOST_CORES, 2),
        "uptime_s": round(uptime_s, 1),
    }


def _uuid(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(128):032x}"
    return f"GPU-{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
