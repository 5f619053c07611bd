"""The node agent's snapshot (DESIGN.md, 'The node agent API'), read at most once per interval.

A sweep reads every GPU through NVML and the host through psutil. However often and from however
many threads `snapshot()` is called, one sweep serves a whole interval: 100 scrapes a second
cost one sweep and 100 dict copies. The server adds "engine", "revision" and "revisions".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from console.agent.gpus import GpuReader
from console.agent.host import HostReader
from console.agent.nvml import Nvml, NvmlApi

SCHEMA_VERSION = 1

Sweep = tuple[float, dict[str, Any]]  # (clock at the start of the sweep, snapshot)


class Telemetry:
    """GPU and host telemetry of one node; `close()` when done (stops the XID thread, NVML)."""

    def __init__(
        self,
        *,
        node: str,
        nvml: NvmlApi | None = None,
        interval: float = 1.0,
        process_name: str | None = None,
        engine_port: int | None = None,
        model_dir: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.interval = interval
        self._clock = clock
        self._wall = wall
        self._gpus = GpuReader(Nvml() if nvml is None else nvml, clock, wall)
        self._host = HostReader(
            process_name=process_name,
            engine_port=engine_port,
            model_dir=model_dir,
            clock=clock,
            wall=wall,
        )
        self._lock = threading.Lock()
        self._latest: Sweep | None = None

    def snapshot(self) -> dict[str, Any]:
        """The latest sweep, taken now if the last one is an interval old.

        A fresh top-level dict per call, so the caller may add keys; the values inside are
        shared with other callers and must not be changed.
        """
        snapshot = self._fresh()  # no lock while fresh: readers never wait on each other
        if snapshot is None:
            with self._lock:  # callers arriving during a sweep wait for it and share it
                snapshot = self._fresh()
                if snapshot is None:
                    started = self._clock()
                    snapshot = self._sweep()
                    self._latest = (started, snapshot)
        return dict(snapshot)

    def close(self) -> None:
        with self._lock:  # never under a running sweep
            self._gpus.close()

    def _fresh(self) -> dict[str, Any] | None:
        latest = self._latest
        if latest is None or self._clock() - latest[0] >= self.interval:
            return None
        return latest[1]

    def _sweep(self) -> dict[str, Any]:
        gpus, gpu_error = self._gpus.read()
        return {
            "schema_version": SCHEMA_VERSION,
            "node": self.node,
            "time": round(self._wall(), 3),
            "host": self._host.read(),
            "gpus": gpus,
            "gpu_error": gpu_error,
        }
