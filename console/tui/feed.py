"""Where the TUI's snapshots come from.

The app never touches the network itself: a feed hands each new snapshot to the app, which
only reads them. `CollectorFeed` polls the fleet on a thread of its own with its own event
loop: a 1,000-node fleet's scrapes, parsing and snapshot builds are thousands of callbacks a
second, and in the app's loop every step from a key press to its frame would queue behind them.
Actions run on that loop too, since they read and re-read the collector's gateways.
`StaticFeed` holds one frozen snapshot, for snapshot tests and screenshots.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from console.collector import Collector
from console.model import Snapshot

Publish = Callable[[Snapshot], None]
Result = TypeVar("Result")
STOP_S = 10.0  # the longest the collector's thread gets to close its connections on exit


class Feed(Protocol):
    collector: Collector | None  # what actions plan against; None when there is no fleet

    async def run(self, publish: Publish) -> None:
        """Publish snapshots until cancelled."""
        ...

    def refresh(self) -> None:
        """Read the whole fleet now; the result arrives through `run`'s publish."""
        ...

    async def call(self, work: Coroutine[Any, Any, Result]) -> Result:
        """Run `work` where the collector lives and wait for its result."""
        ...


class CollectorFeed:
    def __init__(self, collector: Collector) -> None:
        self.collector: Collector | None = collector
        self._loop = asyncio.new_event_loop()
        # a daemon: a console that dies without cancelling its feed still exits
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="collector", daemon=True
        )
        self._handover = threading.Lock()
        self._newest: Snapshot | None = None  # published, not yet taken by the app's loop

    async def run(self, publish: Publish) -> None:
        assert self.collector is not None
        app_loop = asyncio.get_running_loop()

        def take() -> None:
            with self._handover:
                snapshot, self._newest = self._newest, None
            if snapshot is not None:
                publish(snapshot)

        def hand_over(snapshot: Snapshot) -> None:  # on the collector's thread
            with self._handover:
                waiting, self._newest = self._newest is not None, snapshot
            if not waiting:  # a slow app gets the newest snapshot, never a backlog
                app_loop.call_soon_threadsafe(take)

        self._start()
        polling = asyncio.run_coroutine_threadsafe(self._poll(hand_over), self._loop)
        try:
            await asyncio.wrap_future(polling)
        finally:
            polling.cancel()  # the collector closes its connections, then stops its loop
            await asyncio.to_thread(self._thread.join, STOP_S)
            if not self._thread.is_alive():
                self._loop.close()

    async def _poll(self, hand_over: Publish) -> None:
        assert self.collector is not None
        try:
            async for snapshot in self.collector.snapshots():
                hand_over(snapshot)
        finally:
            await self.collector.aclose()
            # an action cancelled with the app records that it was interrupted before the
            # loop stops under it
            others = asyncio.all_tasks() - {asyncio.current_task()}
            if others:
                await asyncio.wait(others, timeout=STOP_S)
            self._loop.call_soon(self._loop.stop)

    def refresh(self) -> None:
        assert self.collector is not None
        # the loop reads: never two scrapes of a target at once
        self._loop.call_soon_threadsafe(self.collector.refresh_now)

    async def call(self, work: Coroutine[Any, Any, Result]) -> Result:
        self._start()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def _start(self) -> None:
        if self._thread.ident is None:  # not started yet
            self._thread.start()


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

    async def call(self, work: Coroutine[Any, Any, Result]) -> Result:
        return await work
