"""The local engine, read by the agent: its `/metrics` page as canonical engine figures.

The page is read through the console's own pieces, the plugin registry and its `engine` source
(the declarative mappings in `plugins/engines/`), over the collector's lean transport, so a
console that talks to the agent alone sees exactly the figures it would read from the engine.
"""

from __future__ import annotations

from typing import Any

from console.agent.config import EngineConfig
from console.collector import Collector
from console.fleet import NodeConfig, Refresh, single_node_fleet
from console.mapping import ENGINE_SCALARS
from console.plugin import load_registry

FIGURES = (*ENGINE_SCALARS, "model")
Figures = dict[str, Any]


class EngineProbe:
    """Scrapes one local engine page per call; `read()` never raises for a bad engine."""

    def __init__(self, node: str, engine: EngineConfig, timeout: float) -> None:
        url = engine.metrics_url
        if url is None:
            raise ValueError("an engine probe needs engine.port")
        self.url = url
        # the node as a console would configure it, scraped by the console's own collector
        local = NodeConfig(
            name=node,
            pool="local",
            engine=engine.kind,
            url=f"http://127.0.0.1:{engine.port}",
            metrics_url=url,
            agent=None,
            dcgm=None,
            server=None,
            refresh=Refresh(interval=timeout, timeout=timeout),
        )
        self._collector = Collector(single_node_fleet(local), load_registry())
        (self._target,) = self._collector.targets

    async def read(self) -> tuple[Figures | None, str | None]:
        """(figures, None), or (None, one line saying why there are none)."""
        target = self._target
        await self._collector.scrape_all()  # a target with no source keeps its setup error
        if not target.up or target.reading is None:
            return None, f"{self.url}: {target.error or 'not read yet'}"
        engine = target.reading.engine
        if engine is None:
            return None, f"{self.url}: the page holds no engine figures"
        return {name: getattr(engine, name) for name in FIGURES}, None

    async def aclose(self) -> None:
        await self._collector.aclose()
