from __future__ import annotations

import math

from console.history import Ring


def test_ring_keeps_the_newest_values_in_order() -> None:
    ring = Ring(1.0, 4)
    for second in range(6):
        ring.put(100.0 + second, float(second))
    assert ring.window(4) == [2.0, 3.0, 4.0, 5.0]
    assert ring.window(2) == [4.0, 5.0]


def test_ring_leaves_gaps_as_nan_and_unknown_as_nan() -> None:
    ring = Ring(1.0, 8)
    ring.put(10.0, 1.0)
    ring.put(13.0, None)
    values = ring.window(4)
    assert values[0] == 1.0
    assert all(math.isnan(v) for v in values[1:])


def test_ring_ignores_time_going_backwards() -> None:
    ring = Ring(10.0, 4)
    ring.put(100.0, 1.0)
    ring.put(50.0, 9.0)
    assert ring.window(1) == [1.0]
