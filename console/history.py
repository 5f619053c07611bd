"""Bounded in-memory history per series, for sparklines and the flight recorder.

Each series keeps two fixed-size rings of float32: 1 s resolution for the last 15 minutes and
10 s resolution for the hour before. Slots are addressed by time, so a missed tick leaves a gap
(NaN) instead of shifting later samples; unknown values are NaN too. Memory is fixed up front:
about 5 KB per series whatever the uptime.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable

from console.model import NodeStatus, PoolStatus, Snapshot
from console.rules import average

NAN = math.nan
FINE = (1.0, 900)  # (seconds per slot, slots)
COARSE = (10.0, 360)


class Ring:
    __slots__ = ("last_slot", "resolution", "size", "values")

    def __init__(self, resolution: float, size: int) -> None:
        self.resolution = resolution
        self.size = size
        self.values = array("f", [NAN]) * size
        self.last_slot: int | None = None

    def put(self, time: float, value: float | None) -> None:
        slot = int(time // self.resolution)
        last = self.last_slot
        if last is not None and slot > last + 1:  # blank the slots nobody wrote
            for gap in range(last + 1, min(slot, last + 1 + self.size)):
                self.values[gap % self.size] = NAN
        if last is None or slot >= last:
            self.values[slot % self.size] = NAN if value is None else value
            self.last_slot = slot

    def window(self, slots: int) -> list[float]:
        """The newest `slots` values, oldest first (NaN where unknown)."""
        if self.last_slot is None:
            return []
        count = min(slots, self.size, self.last_slot + 1)
        return [
            self.values[s % self.size]
            for s in range(self.last_slot - count + 1, self.last_slot + 1)
        ]


class Series:
    __slots__ = ("coarse", "fine")

    def __init__(self) -> None:
        self.fine = Ring(*FINE)
        self.coarse = Ring(*COARSE)

    def put(self, time: float, value: float | None) -> None:
        self.fine.put(time, value)
        self.coarse.put(time, value)


NODE_SERIES: dict[str, Callable[[NodeStatus], float | None]] = {
    "gpu_util": lambda n: average(g.util for g in n.gpus),
    "waiting": lambda n: n.engine.waiting,
    "error_rate": lambda n: n.engine.error_rate,
    "ttft_p95_s": lambda n: n.engine.ttft_p95_s,
    "tokens_per_s": lambda n: n.engine.tokens_per_s,
}
POOL_SERIES: dict[str, Callable[[PoolStatus], float | None]] = {
    "gpu_util": lambda p: p.gpu_util_avg,
    "waiting": lambda p: p.waiting,
    "error_rate": lambda p: p.error_rate,
    "ttft_p95_s": lambda p: p.ttft_p95_s,
    "tokens_per_s": lambda p: p.tokens_per_s,
}


class History:
    """Series keyed by (scope, name, figure), e.g. ("node", "us-1", "waiting")."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], Series] = {}

    def _put(self, key: tuple[str, str, str], time: float, value: float | None) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
        series.put(time, value)

    def record(self, snapshot: Snapshot) -> None:
        time = snapshot.time
        for node in snapshot.nodes:
            for figure, read in NODE_SERIES.items():
                self._put(("node", node.name, figure), time, None if node.stale else read(node))
        for pool in snapshot.pools:
            for figure, roll_up in POOL_SERIES.items():
                self._put(("pool", pool.name, figure), time, roll_up(pool))

    def values(self, scope: str, name: str, figure: str, seconds: float = 900) -> list[float]:
        """The last `seconds` of a series at the finest resolution that covers them."""
        series = self.series.get((scope, name, figure))
        if series is None:
            return []
        ring = series.fine if seconds <= FINE[0] * FINE[1] else series.coarse
        return ring.window(math.ceil(seconds / ring.resolution))
