"""The one module that talks to NVML (package nvidia-ml-py, module `pynvml`).

Everything else reads GPUs through `NvmlApi`: `Nvml` here, or a fake with the same surface in
tests. Values come back in NVML's own units (bytes, mW, MHz, a bitmask); a field the GPU or the
driver does not offer comes back as None, never as an exception. NVML is initialised on first
use and shut down at exit.

Errors:
    NvmlUnavailable  NVML cannot be used on this host at all (no library, no driver, ...);
                     its message is the reason, for the snapshot's `gpu_error`
    GpuLost          one GPU stopped answering (NVML_ERROR_GPU_IS_LOST); the others still do
    XidWaitFailed    waiting on the XID event set failed for another reason than a timeout
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar, cast

import pynvml

from console.errors import FleetdeckError

log = logging.getLogger("fleetdeck.agent")
T = TypeVar("T")

# Clock event ("throttle") reasons, in the order nvidia-smi lists them.
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (pynvml.nvmlClocksEventReasonGpuIdle, "idle"),
    (pynvml.nvmlClocksEventReasonApplicationsClocksSetting, "applications_clocks"),
    (pynvml.nvmlClocksEventReasonSwPowerCap, "sw_power_cap"),
    (pynvml.nvmlClocksEventReasonHwSlowdown, "hw_slowdown"),
    (pynvml.nvmlClocksEventReasonSyncBoost, "sync_boost"),
    (pynvml.nvmlClocksEventReasonSwThermalSlowdown, "sw_thermal"),
    (pynvml.nvmlClocksEventReasonHwThermalSlowdown, "hw_thermal"),
    (pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown, "hw_power_brake"),
    (pynvml.nvmlClocksEventReasonDisplayClockSetting, "display_clocks"),
)

_UNAVAILABLE_REASONS = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: (
        "NVML: libnvidia-ml.so.1 not found (no NVIDIA driver installed)"
    ),
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "NVML: NVIDIA driver not loaded",
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "NVML: library and kernel driver versions differ (reload the driver or reboot)"
    ),
    pynvml.NVML_ERROR_NO_PERMISSION: "NVML: no permission to open the GPU devices",
}


class NvmlUnavailable(FleetdeckError):
    title = "gpu"


class GpuLost(Exception):
    """A GPU that no longer answers; the message says what NVML said."""


class XidWaitFailed(Exception):
    """Waiting for XID events failed; the message says what NVML said."""


class RemappedRows(NamedTuple):
    correctable: int
    uncorrectable: int
    pending: bool  # a remap waits for the next GPU reset
    failed: bool  # a remap failed: the GPU needs service


class RetiredPages(NamedTuple):
    single_bit: int  # pages retired after repeated single-bit ECC errors
    double_bit: int
    pending: bool  # a retirement waits for the next reboot


class GpuProcess(NamedTuple):
    pid: int
    mem_used: int | None  # bytes; None where the driver cannot tell


class XidEvent(NamedTuple):
    gpu: int  # the GPU's index
    xid: int


@dataclass(frozen=True, slots=True)
class RawGpu:
    """One GPU as NVML reports it, in NVML's units; None where there is no answer."""

    uuid: str | None
    name: str | None
    util: int | None  # percent of time a kernel ran
    mem_util: int | None  # percent of time memory was read or written
    mem_used: int | None  # bytes
    mem_total: int | None  # bytes
    temp: int | None  # °C
    power_mw: int | None
    power_limit_mw: int | None  # the enforced limit
    sm_clock: int | None  # MHz
    mem_clock: int | None  # MHz
    throttle_mask: int | None  # clock event reasons, bits of THROTTLE_REASONS
    ecc_uncorrected: int | None  # volatile (since the driver loaded)
    remapped_rows: RemappedRows | None
    retired_pages: RetiredPages | None
    processes: tuple[GpuProcess, ...] | None  # compute and graphics, one entry per pid


class NvmlApi(Protocol):
    """What the telemetry needs from NVML; `Nvml` is the real one."""

    def device_count(self) -> int:
        """Initialises NVML if needed; raises NvmlUnavailable with the reason."""
        ...

    def read(self, index: int) -> RawGpu:
        """Every field of GPU `index`; raises GpuLost."""
        ...

    def open_xid_events(self) -> object | None:
        """An event set for critical XIDs on every GPU that offers them; None if none does."""
        ...

    def wait_xid(self, events: object, timeout_ms: int) -> XidEvent | None:
        """The next XID, or None after `timeout_ms`; raises XidWaitFailed."""
        ...

    def close_xid_events(self, events: object) -> None: ...

    def shutdown(self) -> None: ...


def unavailable_reason(error: pynvml.NVMLError) -> str:
    """Why NVML cannot be used, in words an on-call engineer can act on."""
    return _UNAVAILABLE_REASONS.get(error.value, f"NVML: initialisation failed: {error}")


@dataclass(slots=True)
class _XidEvents:
    event_set: Any
    index_by_handle: dict[int | None, int]  # a lost GPU cannot say its index: keep the map


class Nvml:
    """NVML through pynvml: lazy init, shutdown at exit, every field through `query`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        self._handles: dict[int, Any] = {}
        self._reported: set[tuple[str, str]] = set()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as error:
                raise NvmlUnavailable(unavailable_reason(error)) from None
            self._started = True
            atexit.register(self.shutdown)

    def shutdown(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
            self._handles.clear()
            atexit.unregister(self.shutdown)
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as error:
                log.warning("NVML: shutdown failed: %s", error)

    def query(self, func: Callable[..., T], *args: Any, default: T | None = None) -> T | None:
        """`func(*args)`, or `default` where the GPU, driver or permissions have no answer.

        Raises GpuLost when the GPU itself is gone; any other NVML error is logged once per
        function and error, and the field is `default`.
        """
        try:
            return func(*args)
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_NoPermission):
            return default
        except pynvml.NVMLError_GpuIsLost as error:
            raise GpuLost(str(error)) from None
        except (pynvml.NVMLError_FunctionNotFound, pynvml.NVMLLibraryMismatchError):
            self._report_once(func, "not in this driver's NVML")
            return default
        except pynvml.NVMLError as error:
            self._report_once(func, str(error))
            return default

    def device_count(self) -> int:
        self.start()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as error:
            raise NvmlUnavailable(f"NVML: cannot count the GPUs: {error}") from None

    def read(self, index: int) -> RawGpu:
        self.start()
        handle = self._handle(index)
        try:
            return self._read(handle)
        except GpuLost:
            del self._handles[index]  # a reset GPU comes back with a fresh handle
            raise

    def open_xid_events(self) -> object | None:
        count = self.device_count()
        try:
            event_set = pynvml.nvmlEventSetCreate()
        except pynvml.NVMLError as error:
            log.info("NVML: no XID events on this host: %s", error)
            return None
        index_by_handle: dict[int | None, int] = {}
        for index in range(count):
            try:
                handle = self._handle(index)
                pynvml.nvmlDeviceRegisterEvents(
                    handle, pynvml.nvmlEventTypeXidCriticalError, event_set
                )
            except (GpuLost, pynvml.NVMLError) as error:
                log.info("NVML: no XID events from GPU %d: %s", index, error)
                continue
            index_by_handle[_address(handle)] = index
        if not index_by_handle:
            pynvml.nvmlEventSetFree(event_set)
            return None
        return _XidEvents(event_set, index_by_handle)

    def wait_xid(self, events: object, timeout_ms: int) -> XidEvent | None:
        xid_events = cast(_XidEvents, events)
        try:
            data = pynvml.nvmlEventSetWait_v2(xid_events.event_set, timeout_ms)
        except pynvml.NVMLError_Timeout:
            return None
        except pynvml.NVMLError as error:
            raise XidWaitFailed(f"NVML: waiting for XID events failed: {error}") from None
        index = xid_events.index_by_handle.get(_address(data.device))
        if data.eventType != pynvml.nvmlEventTypeXidCriticalError or index is None:
            return None
        return XidEvent(index, int(data.eventData))

    def close_xid_events(self, events: object) -> None:
        try:
            pynvml.nvmlEventSetFree(cast(_XidEvents, events).event_set)
        except pynvml.NVMLError as error:
            log.warning("NVML: freeing the XID event set failed: %s", error)

    def _handle(self, index: int) -> Any:
        handle = self._handles.get(index)
        if handle is None:
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            except pynvml.NVMLError as error:  # a GPU off the bus often answers "Unknown Error"
                raise GpuLost(str(error)) from None
            self._handles[index] = handle
        return handle

    def _read(self, handle: Any) -> RawGpu:
        query = self.query
        utilization = query(pynvml.nvmlDeviceGetUtilizationRates, handle)
        memory = query(pynvml.nvmlDeviceGetMemoryInfo, handle)
        return RawGpu(
            uuid=query(pynvml.nvmlDeviceGetUUID, handle),
            name=query(pynvml.nvmlDeviceGetName, handle),
            util=None if utilization is None else utilization.gpu,
            mem_util=None if utilization is None else utilization.memory,
            mem_used=None if memory is None else memory.used,
            mem_total=None if memory is None else memory.total,
            # the variant every driver has (nvmlDeviceGetTemperatureV needs a recent one)
            temp=query(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
            power_mw=query(pynvml.nvmlDeviceGetPowerUsage, handle),
            power_limit_mw=query(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle),
            sm_clock=query(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
            mem_clock=query(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
            throttle_mask=query(pynvml.nvmlDeviceGetCurrentClocksEventReasons, handle),
            ecc_uncorrected=query(
                pynvml.nvmlDeviceGetTotalEccErrors,
                handle,
                pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                pynvml.NVML_VOLATILE_ECC,
            ),
            remapped_rows=self._remapped_rows(handle),
            retired_pages=self._retired_pages(handle),
            processes=self._processes(handle),
        )

    def _remapped_rows(self, handle: Any) -> RemappedRows | None:
        rows = self.query(pynvml.nvmlDeviceGetRemappedRows, handle)  # Ampere and later
        if rows is None:
            return None
        correctable, uncorrectable, pending, failed = rows
        return RemappedRows(correctable, uncorrectable, bool(pending), bool(failed))

    def _retired_pages(self, handle: Any) -> RetiredPages | None:
        query = self.query
        single = query(
            pynvml.nvmlDeviceGetRetiredPages,
            handle,
            pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
        )
        if single is None:  # before Ampere only; later GPUs remap rows instead
            return None
        double: list[int] | None = query(
            pynvml.nvmlDeviceGetRetiredPages,
            handle,
            pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
            default=[],
        )
        pending = query(pynvml.nvmlDeviceGetRetiredPagesPendingStatus, handle, default=0)
        return RetiredPages(len(single), len(double or ()), bool(pending))

    def _processes(self, handle: Any) -> tuple[GpuProcess, ...] | None:
        compute = self.query(pynvml.nvmlDeviceGetComputeRunningProcesses, handle)
        graphics = self.query(pynvml.nvmlDeviceGetGraphicsRunningProcesses, handle)
        if compute is None and graphics is None:
            return None
        by_pid: dict[int, GpuProcess] = {}
        for process in [*(compute or ()), *(graphics or ())]:  # a pid can be in both lists
            by_pid.setdefault(process.pid, GpuProcess(process.pid, process.usedGpuMemory))
        return tuple(by_pid.values())

    def _report_once(self, func: Callable[..., Any], problem: str) -> None:
        name = getattr(func, "__name__", repr(func))
        if (name, problem) not in self._reported:
            self._reported.add((name, problem))
            log.warning("NVML: %s: %s (reported as unknown)", name, problem)


def _address(handle: Any) -> int | None:
    """A device handle as a number, to match an event's device with the GPU it came from."""
    return ctypes.cast(handle, ctypes.c_void_p).value
