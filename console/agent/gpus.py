"""A node's GPUs as the snapshot's `gpus` list (DESIGN.md, 'The node agent API').

Units: util and mem_util in percent, memory in bytes, temp in °C, power in W, clocks in MHz.
An unknown figure is None (null), never 0. A lost GPU keeps its index, uuid and name (as last
seen) and its last XID; its readings are null.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import psutil

from console.agent.nvml import (
    THROTTLE_REASONS,
    GpuLost,
    NvmlApi,
    NvmlUnavailable,
    RawGpu,
    XidWaitFailed,
)

log = logging.getLogger("fleetdeck.agent")

NVML_RETRY_S = 30.0  # a driver loaded after the agent started is picked up this late at most
XID_WAIT_MS = 500  # how long close() may wait for the XID thread
XID_BACKOFF_S = 1.0  # after a failed wait, so a broken event set cannot spin a core

Identity = tuple[str | None, str | None]  # uuid, name

# The keys of a GPU whose value is None (unknown) while the GPU is lost.
_READINGS = (
    "util",
    "mem_util",
    "mem_used",
    "mem_total",
    "temp",
    "power",
    "power_limit",
    "throttle",
    "ecc_uncorrected",
    "remapped_rows",
    "retired_pages",
    "processes",
)
_NAMED_THROTTLE_BITS = sum(bit for bit, _ in THROTTLE_REASONS)


class XidWatcher:
    """The last critical XID and its wall time per GPU, from an NVML event set."""

    def __init__(self, nvml: NvmlApi, wall: Callable[[], float]) -> None:
        self._nvml = nvml
        self._wall = wall
        self._last: dict[int, tuple[int, float]] = {}  # index -> (xid, wall time)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        events = self._nvml.open_xid_events()
        if events is None:
            return
        self._thread = threading.Thread(
            target=self._watch, args=(events,), name="fleetdeck-xid", daemon=True
        )
        self._thread.start()

    def last(self, index: int) -> tuple[int, float] | None:
        return self._last.get(index)  # one dict read: atomic against the watcher's writes

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=XID_WAIT_MS / 1000 + XID_BACKOFF_S + 1.0)
            self._thread = None

    def _watch(self, events: object) -> None:
        reported: set[str] = set()
        try:
            while not self._stopping.is_set():
                try:
                    event = self._nvml.wait_xid(events, XID_WAIT_MS)
                except XidWaitFailed as error:
                    if str(error) not in reported:
                        reported.add(str(error))
                        log.warning("%s", error)
                    self._stopping.wait(XID_BACKOFF_S)
                    continue
                if event is not None:
                    self._last[event.gpu] = (event.xid, round(self._wall(), 3))
                    log.warning("GPU %d: XID %d", event.gpu, event.xid)
        finally:  # freed only once no wait is in flight on it
            self._nvml.close_xid_events(events)


class GpuReader:
    """Every GPU through one NvmlApi; `read()` is one sweep."""

    def __init__(
        self, nvml: NvmlApi, clock: Callable[[], float], wall: Callable[[], float]
    ) -> None:
        self._nvml = nvml
        self._clock = clock
        self._xids = XidWatcher(nvml, wall)
        self._watching = False
        self._retry_at = -math.inf
        self._error: str | None = None
        self._identities: dict[int, Identity] = {}  # as last seen, for a GPU that is lost now
        self._lost: set[int] = set()

    def read(self) -> tuple[list[dict[str, Any]], str | None]:
        """The GPUs and None, or [] and why NVML cannot be used (init retried now and then)."""
        now = self._clock()
        if now < self._retry_at:
            return [], self._error
        try:
            count = self._nvml.device_count()
        except NvmlUnavailable as error:
            if error.message != self._error:
                log.warning("%s; running without GPU telemetry", error.message)
            self._error, self._retry_at = error.message, now + NVML_RETRY_S
            return [], self._error
        self._error = None
        if not self._watching:
            self._watching = True
            self._xids.start()
        return [self._gpu(index) for index in range(count)], None

    def close(self) -> None:
        self._xids.stop()
        self._nvml.shutdown()

    def _gpu(self, index: int) -> dict[str, Any]:
        try:
            raw = self._nvml.read(index)
        except GpuLost as error:
            if index not in self._lost:
                self._lost.add(index)
                log.warning("GPU %d lost: %s", index, error)
            return self._lost_json(index)
        if index in self._lost:
            self._lost.discard(index)
            log.warning("GPU %d answers again", index)
        self._identities[index] = (raw.uuid, raw.name)
        return self._json(index, raw)

    def _json(self, index: int, raw: RawGpu) -> dict[str, Any]:
        last_xid, last_xid_time = self._xids.last(index) or (None, None)
        return {
            "index": index,
            "uuid": raw.uuid,
            "name": raw.name,
            "util": raw.util,
            "mem_util": raw.mem_util,
            "mem_used": raw.mem_used,
            "mem_total": raw.mem_total,
            "temp": raw.temp,
            "power": _watts(raw.power_mw),
            "power_limit": _watts(raw.power_limit_mw),
            "clocks": {"sm": raw.sm_clock, "mem": raw.mem_clock},
            "throttle": throttle_names(raw.throttle_mask),
            "ecc_uncorrected": raw.ecc_uncorrected,
            "remapped_rows": None if raw.remapped_rows is None else raw.remapped_rows._asdict(),
            "retired_pages": None if raw.retired_pages is None else raw.retired_pages._asdict(),
            "last_xid": last_xid,
            "last_xid_time": last_xid_time,
            "lost": False,
            "processes": None
            if raw.processes is None
            else [
                {"pid": pid, "name": _process_name(pid), "mem_used": mem_used}
                for pid, mem_used in raw.processes
            ],
        }

    def _lost_json(self, index: int) -> dict[str, Any]:
        uuid, name = self._identities.get(index, (None, None))
        last_xid, last_xid_time = self._xids.last(index) or (None, None)
        return {
            "index": index,
            "uuid": uuid,
            "name": name,
            **dict.fromkeys(_READINGS),
            "clocks": {"sm": None, "mem": None},
            "last_xid": last_xid,
            "last_xid_time": last_xid_time,
            "lost": True,
        }


def throttle_names(mask: int | None) -> list[str] | None:
    """The clock event reasons set in `mask`; a bit this agent has no name for as hex."""
    if mask is None:
        return None
    names = [name for bit, name in THROTTLE_REASONS if mask & bit]
    unnamed = mask & ~_NAMED_THROTTLE_BITS
    if unnamed:
        names.append(f"0x{unnamed:x}")
    return names


def _watts(milliwatts: int | None) -> float | None:
    return None if milliwatts is None else milliwatts / 1000.0


def _process_name(pid: int) -> str | None:
    """None once the process has gone, or when it lives in another pid namespace."""
    try:
        name: str = psutil.Process(pid).name()
    except psutil.Error:
        return None
    return name
