"""The local engine, read by the agent: its `/metrics` page as canonical engine figures.

The page is read through the console's own pieces, the plugin registry and its `engine` source
(the declarative mappings in `plugins/engines/`), over the collector's lean transport, so a
console that talks to the agent alone sees exactly the figures it would read from the engine.
"""

from __future__ import annotations

from typing import Any

import httpx

from console.agent.config import EngineConfig
from console.errors import FleetdeckError
from console.fleet import NodeConfig, Refresh
from console.mapping import ENGINE_SCALARS
from console.plugin import Source, load_registry
from console.transport import ScrapeTransport

FIGURES = (*ENGINE_SCALARS, "model")
Figures = dict[str, Any]


class EngineProbe:
    """Scrapes one local engine page per call; `read()` never raises for a bad engine."""

    def __init__(self, node: str, engine: EngineConfig, timeout: float) -> None:
        url = engine.metrics_url
        if url is None:
            raise ValueError("an engine probe needs engine.port")
        self.url = url
        self.timeout = timeout
        self._transport = ScrapeTransport()
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._request = httpx.Request(
            "GET", url, headers={"user-agent": "fleetdeck-agent"}, extensions={"timeout": limits}
        )
        self._source: Source | None = None
        self._setup_error: str | None = None
        try:
            # the node as the console would configure it, so the same source decodes the page
            local = NodeConfig(
                name=node,
                pool="local",
                engine=engine.kind,
                url=f"http://127.0.0.1:{engine.port}",
                metrics_url=url,
                agent=None,
                dcgm=None,
                server=None,
                refresh=Refresh(),
            )
            self._source = load_registry().source("engine", local, url)
        except FleetdeckError as exc:  # no mapping for the kind: every read says so
            self._setup_error = str(exc)

    async def read(self) -> tuple[Figures | None, str | None]:
        """(figures, None), or (None, one line saying why there are none)."""
        source = self._source
        if source is None:
            return None, self._setup_error
        try:
            response = await self._transport.handle_async_request(self._request)
            if response.status_code != 200:
                return None, f"{self.url}: HTTP {response.status_code}"
            engine = source.decode(response.content).engine
        except httpx.TimeoutException:
            return None, f"{self.url}: no answer within {self.timeout:g}s"
        except httpx.HTTPError as exc:
            return None, f"{self.url}: {exc or type(exc).__name__}"
        except FleetdeckError as exc:  # a page no mapping reads
            return None, f"{self.url}: {exc}"
        if engine is None:
            return None, f"{self.url}: the page holds no engine figures"
        return {name: getattr(engine, name) for name in FIGURES}, None

    async def aclose(self) -> None:
        await self._transport.aclose()
