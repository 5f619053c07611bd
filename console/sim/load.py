"""The background load: a compressed day, occasional bursts, a little jitter.

Everything here is a pure function of (seed, time), so a node's load at a moment does not
depend on how often anyone looked at it: the same seed and the same clock readings give the
same figures. Randomness that belongs to a moment (is there a burst in this slot? how much
jitter this second?) comes from hashing the seed with the slot number (splitmix64), not from
a stateful generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_S = 240.0  # one simulated day, so a demo shows the fleet breathe within minutes
BURST_SLOT_S = 40.0  # each slot of this length may hold one burst
BURST_CHANCE = 0.15
JITTER_SLOT_S = 1.0

_MASK = (1 << 64) - 1


def mix(value: int) -> int:
    """splitmix64: a well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def unit(seed: int, slot: int, salt: int = 0) -> float:
    """A uniform number in [0, 1) for this seed, slot and salt."""
    return mix((seed * 0x100000001B3 + slot * 0x9E3779B1 + salt) & _MASK) / 2.0**64


@dataclass(frozen=True, slots=True)
class LoadShape:
    """Relative demand over time (1.0 = the node's base rate at the daily peak)."""

    seed: int
    phase: float  # where in the day this node's clock starts, 0..1

    def at(self, t: float) -> float:
        """Demand at `t` seconds since the fleet started."""
        daily = 0.62 + 0.38 * math.sin(2.0 * math.pi * (t / DAY_S + self.phase))
        jitter_slot = math.floor(t / JITTER_SLOT_S)
        jitter = 1.0 + 0.06 * (unit(self.seed, jitter_slot, 1) - 0.5)
        return daily * self.burst(t) * jitter

    def burst(self, t: float) -> float:
        """The burst multiplier at `t`: 1.0 outside bursts, 1.3 to 1.7 inside one."""
        slot = math.floor(t / BURST_SLOT_S)
        if unit(self.seed, slot, 2) >= BURST_CHANCE:
            return 1.0
        start = slot * BURST_SLOT_S + 0.5 * BURST_SLOT_S * unit(self.seed, slot, 3)
        length = 6.0 + 14.0 * unit(self.seed, slot, 4)
        if not start <= t < start + length:
            return 1.0
        return 1.3 + 0.4 * unit(self.seed, slot, 5)

    def jitter(self, t: float, salt: int) -> float:
        """A per-second number in [-1, 1) for gauges that wobble."""
        return 2.0 * unit(self.seed, math.floor(t / JITTER_SLOT_S), 16 + salt) - 1.0
