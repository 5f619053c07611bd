"""Cumulative histograms fed with whole distributions at once.

The background load adds many requests per step; instead of drawing each one, a step adds
`n` observations spread over the buckets by a log-normal distribution's CDF, so bucket counts
look like a real latency histogram and p50/p95 derived from bucket deltas land where the
distribution says.

Wide histograms (TGI's 1024 batch-size buckets) mostly hold every observation in their upper
buckets, so only a head of buckets is stored: every bucket past the head equals `count`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

Cdf = tuple[int, tuple[float, ...]]  # (first bucket reached, shares up to the full bucket)
_MEDIAN_STEPS_PER_E = 50  # medians are quantised to ~2 % steps, so CDF caches stay small
# CDFs by bounds, then by (median step, sigma): nodes with the same buckets share them
_CDF_CACHES: dict[tuple[float, ...], dict[tuple[int, float], Cdf]] = {}


def lognormal_mean(median: float, sigma: float) -> float:
    return median * math.exp(sigma * sigma / 2.0)


class Histogram:
    """Cumulative bucket counts over fixed bounds (+Inf last); counts are floats, pages
    round them.

    Only the buckets a distribution actually spreads over are touched: buckets below `low`
    have never been reached (they hold 0), buckets past the stored `head` have held every
    observation (they hold `count`).
    """

    __slots__ = ("_cdfs", "bounds", "count", "head", "low", "memo", "size", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(bound) for bound in bounds)
        self.size = len(self.bounds) + 1
        self._cdfs = _CDF_CACHES.setdefault(self.bounds, {})
        self.memo: tuple[Any, ...] = (None, None, None, None)  # a page's text of these counts
        self.reset()

    def reset(self) -> None:
        self.head: list[float] = []
        self.low = self.size
        self.count = 0.0
        self.sum = 0.0

    def cdf(self, median: float, sigma: float) -> Cdf:
        """The buckets a log-normal X with this median spreads over: (first bucket it
        reaches, P(X <= bound) from there up to the first bucket that holds all of it)."""
        step = round(math.log(max(median, 1e-12)) * _MEDIAN_STEPS_PER_E)
        cached = self._cdfs.get((step, sigma))
        if cached is not None:
            return cached
        mu = step / _MEDIAN_STEPS_PER_E
        shares = [_share(bound, mu, sigma) for bound in self.bounds]
        while shares and shares[-1] >= 1.0 - _NEGLIGIBLE:
            shares.pop()
        first = 0
        while first < len(shares) and shares[first] <= _NEGLIGIBLE:
            first += 1
        cdf = self._cdfs[(step, sigma)] = (first, tuple(shares[first:]))
        return cdf

    def add(self, n: float, cdf: Cdf, total: float) -> None:
        """`n` observations spread by `cdf` (from `self.cdf`), their values summing to
        `total`."""
        first, shares = cdf
        end = first + len(shares)
        head = self.head
        if end > len(head):
            head.extend([self.count] * (end - len(head)))
        if shares:
            head[first:end] = [
                count + n * share for count, share in zip(head[first:end], shares, strict=True)
            ]
        if len(head) > end:
            head[end:] = [count + n for count in head[end:]]
        if first < self.low:
            self.low = first
        self.count += n
        self.sum += total

    def observe(self, value: float) -> None:
        head = self.head
        first = bisect.bisect_left(self.bounds, value)  # the first bucket that holds it
        if first > len(head):  # buckets below it must stop following `count`
            head.extend([self.count] * (first - len(head)))
        for index in range(first, len(head)):
            head[index] += 1.0
        self.low = min(self.low, first)
        self.count += 1.0
        self.sum += value

    def rounded(self) -> list[int]:
        """Every bucket's count rounded to a whole number, +Inf last."""
        head = self.head
        return [round(count) for count in head] + [round(self.count)] * (self.size - len(head))


# a share this close to 0 or 1 is taken as 0 or 1: the far tails of a distribution, less
# than one observation in a million, are not spread over buckets of their own
_NEGLIGIBLE = 1e-6


def _share(bound: float, mu: float, sigma: float) -> float:
    if bound <= 0:
        return 0.0
    if sigma <= 0:
        return 1.0 if math.log(bound) >= mu else 0.0
    return 0.5 * math.erfc(-(math.log(bound) - mu) / (sigma * math.sqrt(2.0)))
