"""Where the TUI's snapshots come from.

The app never touches the network itself: a feed runs in a worker and hands each new snapshot
to the app, which only reads them. `CollectorFeed` polls the fleet in the app's own event loop
(the collector's scrapes are asyncio tasks, so the UI never waits on them); `StaticFeed` holds
one frozen snapshot, for snapshot tests and screenshots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from console.collector import Collector
from console.model import Snapshot

Publish = Callable[[Snapshot], None]


class Feed(Protocol):
    collector: Collector | None  # what actions plan against; None when there is no fleet

    async def run(self, publish: Publish) -> None:
        """Publish snapshots until cancelled."""
        ...

    def refresh(self) -> None:
        """Read the whole fleet now; the result arrives through `run`'s publish."""
        ...


class CollectorFeed:
    def __init__(self, collector: Collector) -> None:
        self.collector: Collector | None = collector

    async def run(self, publish: Publish) -> None:
        assert self.collector is not None
        try:
            async for snapshot in self.collector.snapshots():
                publish(snapshot)
        finally:
            await self.collector.aclose()

    def refresh(self) -> None:
        assert self.collector is not None
        self.collector.refresh_now()  # the loop reads: never two scrapes of a target at once


class StaticFeed:
    """One snapshot, published once: what snapshot tests render."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.collector: Collector | None = None

    async def run(self, publish: Publish) -> None:
        publish(self.snapshot)
        await asyncio.Event().wait()  # nothing more will come

    def refresh(self) -> None:
        """A frozen snapshot has nothing newer."""
