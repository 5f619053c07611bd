"""What the detail screens draw from the history rings."""

from __future__ import annotations

import math

from console.tui.detail import carried


def test_sparklines_carry_a_reading_until_the_next() -> None:
    nan = math.nan
    # read every 3 s into 1 s slots: the value holds; a gap longer than the limit is zero
    assert carried([nan, 5.0, nan, nan, 7.0, nan, nan, nan, nan], 3) == [
        0.0, 5.0, 5.0, 5.0, 7.0, 7.0, 7.0, 7.0, 0.0,
    ]  # fmt: skip
