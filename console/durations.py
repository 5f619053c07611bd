"""Durations as people write them: "500ms", "2s", "1.5s", "1m", "1h", or a bare number of seconds.

Standard library only: the command-line parsers use it before anything heavy is imported.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | int | float) -> float:
    """Seconds; raises ValueError("bad duration '2x' (use e.g. 500ms, 2s, 1m)")."""
    seconds = None
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    elif isinstance(text, str):
        match = _DURATION.fullmatch(text.strip())
        if match is not None:
            seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"bad duration '{text}' (use e.g. 500ms, 2s, 1m)")
    return seconds
