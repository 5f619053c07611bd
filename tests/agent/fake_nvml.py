"""A fake of `console.agent.nvml` (the `NvmlApi` surface) for hosts without a GPU.

It answers as the real wrapper does: fields NVML does not offer are None, a lost GPU raises
GpuLost, a host without a usable NVML raises NvmlUnavailable with the reason. It counts calls,
can be slowed down, and delivers XID events put in with `deliver_xid`.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from console.agent.nvml import (
    GpuLost,
    GpuProcess,
    NvmlUnavailable,
    RawGpu,
    RemappedRows,
    XidEvent,
    XidWaitFailed,
)

H200_MEM_TOTAL = 150_754_820_096  # 143,771 MiB
WAIT_CAP_S = 0.01  # the fake's XID wait returns early (a timeout), so close() is quick


def h200(index: int, processes: Sequence[GpuProcess] = ()) -> RawGpu:
    """A busy H200 as NVML reports it: bytes, mW, MHz, a clock event bitmask."""
    return RawGpu(
        uuid=f"GPU-00000000-0000-0000-0000-00000000000{index}",
        name="NVIDIA H200",
        util=80 + index,
        mem_util=40 + index,
        mem_used=135_000_000_000 + index,
        mem_total=H200_MEM_TOTAL,
        temp=60 + index,
        power_mw=612_345,
        power_limit_mw=700_000,
        sm_clock=1980,
        mem_clock=3201,
        throttle_mask=0x4 | 0x20,  # sw_power_cap, sw_thermal
        ecc_uncorrected=index,
        remapped_rows=RemappedRows(2, 0, False, False),
        retired_pages=None,  # Hopper remaps rows instead
        processes=tuple(processes),
    )


def unsupported(index: int) -> RawGpu:
    """A GPU that answers nothing but who it is (every field NotSupported or NoPermission)."""
    fields = {field.name: None for field in dataclasses.fields(RawGpu)}
    return RawGpu(**{**fields, "uuid": f"GPU-{index}", "name": "NVIDIA A10G"})


class FakeNvml:
    """NvmlApi over fixed readings."""

    def __init__(
        self,
        gpus: Iterable[RawGpu] = (),
        *,
        unavailable: str | None = None,
        lost: Iterable[int] = (),
        xid_events: bool = True,
        sweep_delay_s: float = 0.0,
    ) -> None:
        self.gpus = list(gpus)
        self.unavailable = unavailable
        self.lost = set(lost)
        self.xid_events = xid_events
        self.sweep_delay_s = sweep_delay_s  # time device_count takes, to widen races
        self.calls: Counter[str] = Counter()
        self.xid_open = False
        self.shut_down = False
        self._waiting: queue.Queue[XidEvent | XidWaitFailed] = queue.Queue()

    def device_count(self) -> int:
        self.calls["device_count"] += 1
        time.sleep(self.sweep_delay_s)
        if self.unavailable is not None:
            raise NvmlUnavailable(self.unavailable)
        return len(self.gpus)

    def read(self, index: int) -> RawGpu:
        self.calls["read"] += 1
        if index in self.lost:
            raise GpuLost("GPU is lost")
        return self.gpus[index]

    def open_xid_events(self) -> object | None:
        self.calls["open_xid_events"] += 1
        self.xid_open = self.xid_events
        return self._waiting if self.xid_events else None

    def wait_xid(self, events: object, timeout_ms: int) -> XidEvent | None:
        assert events is self._waiting and self.xid_open
        try:
            waiting = self._waiting.get(timeout=min(timeout_ms / 1000, WAIT_CAP_S))
        except queue.Empty:
            return None
        if isinstance(waiting, XidWaitFailed):
            raise waiting
        return waiting

    def close_xid_events(self, events: object) -> None:
        assert events is self._waiting
        self.xid_open = False

    def shutdown(self) -> None:
        self.shut_down = True

    def deliver_xid(self, gpu: int, xid: int) -> None:
        self._waiting.put(XidEvent(gpu, xid))

    def fail_next_wait(self, message: str) -> None:
        self._waiting.put(XidWaitFailed(message))
