"""The garbage collector's settings for a long-running console (`watch`, `tui`, `demo`).

A console makes tens of thousands of objects a second that live a tick or two: readings,
parsed samples, snapshots. With Python's default thresholds they set off a full collection
every few seconds at 1,000 nodes (50-90 ms each, over everything the process holds, finding
nothing: none of them forms a reference cycle, so each is freed when dropped). Once the first
snapshot is in, what is here by then (imports, config, parser caches, connections) lives as
long as the process: it is frozen out of every collection, young collections run every 10,000
allocations (under 10 ms) and full ones hundreds of times less often.
"""

from __future__ import annotations

import gc

_settled = False


def settle_garbage_collector() -> None:
    """Once the first snapshot is in. The settings are process-wide and the loops that own a
    process both ask (the collector's, the TUI's, on their own threads): the first call does
    it, later ones do nothing. Garbage is collected first, so none of it is frozen for good."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
