"""`SimFleet`: simulated nodes on loopback, each with an engine port and an agent port.

    async with SimFleet(nodes=8, seed=1, gpus=2) as fleet:
        fleet.nodes[0].url          # http://127.0.0.1:PORT (engine: /metrics, /v1/completions)
        fleet.nodes[0].agent        # http://127.0.0.1:PORT (node agent API)
        fleet.control_url           # the control API (control.py)
        fleet.config_yaml()         # a fleet.yaml pointing at all of it

Every port is a free one picked by the system (`fleet.nodes` is filled by `start()`). Nodes
are `node-001`...; engine kinds go round-robin over `engines`; pools (`pool-a`...) hold one
engine kind each, or, with `pools`, consecutive blocks of nodes. The served fleet runs on
real time; `NodeModel` takes an injected clock for tests of the model itself.

With `gateway=True` every pool is a backend (its nodes the servers, named like them) of one
gateway, `edge`, with `gateway_replicas` independent replicas: pools pair up as primary and
standby (pool-a's standby is pool-b, pool-c's is pool-d, ...), each primary has a route (the
key is its name) and the nodes' modelled load follows the routes. The replicas are the sim's
own (gateway.py), or with `haproxy=True` real `haproxy` processes (haproxy_gateway.py).
`fleet.gateway.endpoints` are the replicas' runtime APIs (tcp://127.0.0.1:PORT),
`fleet.gateway.frontends` the first replica's frontend URL per route key, and
`fleet.config_yaml()` names either kind.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from console.errors import FleetdeckError
from console.sim.agent import AgentServer
from console.sim.child import Service
from console.sim.control import Change, ControlServer, parse_change
from console.sim.engine_server import EngineServer
from console.sim.engines import ENGINE_KINDS, ENGINES
from console.sim.model import NodeModel

if TYPE_CHECKING:
    from console.sim.gateway import SimGateway
    from console.sim.haproxy_gateway import HaproxyGateway

log = logging.getLogger("fleetdeck.sim")
FILES_PER_NODE = 4  # two listening sockets and, typically, one open connection to each
SPARE_FILES = 64
GATEWAY_NAME = "edge"


@dataclass(frozen=True, slots=True)
class SimNode:
    name: str
    engine: str
    pool: str
    url: str  # the engine's base URL
    agent: str  # the node agent's base URL
    server: str | None = None  # its server at the gateway's backend for its pool


class SimFleet(Service):
    """A simulated fleet served on loopback; an async context manager."""

    def __init__(
        self,
        nodes: int,
        seed: int = 0,
        engines: Sequence[str] = ENGINE_KINDS,
        gpus: int = 8,
        static: bool = False,
        host: str = "127.0.0.1",
        pools: int | None = None,
        control_port: int = 0,
        gateway: bool = False,
        gateway_replicas: int = 1,
        haproxy: bool = False,
    ) -> None:
        if nodes < 1:
            raise ValueError("a simulated fleet needs at least one node")
        unknown = [kind for kind in engines if kind not in ENGINES]
        if unknown or not engines:
            raise ValueError(
                f"unknown engine kind {unknown[0] if unknown else '(none)'!r} "
                f"(known: {', '.join(ENGINE_KINDS)})"
            )
        if gpus < 1:
            raise ValueError("every node needs at least one GPU")
        if pools is not None and pools < 1:
            raise ValueError("pools must be at least 1")
        if gateway_replicas < 1:
            raise ValueError("a gateway needs at least one replica")
        if haproxy and not gateway:
            raise ValueError("haproxy serves the gateway: it needs gateway=True")
        self.seed = seed
        self.gpus = gpus
        self.host = host
        self.warnings: list[str] = []
        width = max(3, len(str(nodes)))
        wall_start = time.time()
        self.models: dict[str, NodeModel] = {}
        self.engines: dict[str, EngineServer] = {}
        self.agents: dict[str, AgentServer] = {}
        self._pools: dict[str, str] = {}
        kinds_in_order = list(dict.fromkeys(engines))
        block = -(-nodes // pools) if pools is not None else 0
        for index in range(nodes):
            name = f"node-{index + 1:0{width}d}"
            kind = engines[index % len(engines)]
            group = index // block if pools is not None else kinds_in_order.index(kind)
            model = NodeModel(
                name,
                ENGINES[kind],
                seed=seed,
                index=index,
                gpus=gpus,
                wall_start=wall_start,
                static=static,
            )
            self.models[name] = model
            self.engines[name] = EngineServer(model, host)
            self.agents[name] = AgentServer(model, host)
            self._pools[name] = pool_name(group)
        self.names = frozenset(self.models)
        pool_names = list(dict.fromkeys(self._pools.values()))
        self.standby: dict[str, str] = {}  # primary pool -> its standby, with a gateway
        self.gateway: SimGateway | HaproxyGateway | None = None
        if gateway:
            self.standby = dict(zip(pool_names[0::2], pool_names[1::2], strict=False))
            self.gateway = self._gateway(pool_names[0::2], gateway_replicas, haproxy)
        self.control = ControlServer(self, host, control_port)
        self.nodes: list[SimNode] = []

    def _gateway(
        self, primaries: Sequence[str], replicas: int, haproxy: bool
    ) -> SimGateway | HaproxyGateway:
        """The gateway over every pool, each primary routed by a key named like it."""
        members: dict[str, list[str]] = {}
        for name, pool in self._pools.items():
            members.setdefault(pool, []).append(name)
        routes = {pool: pool for pool in primaries}
        if haproxy:
            from console.sim.haproxy_gateway import HaproxyGateway

            return HaproxyGateway(
                GATEWAY_NAME, members, routes, self.models, self.engines, replicas
            )
        from console.sim.gateway import SimGateway  # imports httpx: only for a fleet with one

        return SimGateway(
            GATEWAY_NAME, members, routes, self.models, self.engines, self.host, replicas
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.warnings += raise_open_files_limit(len(self.models))
        try:
            for name, model in self.models.items():
                await self.engines[name].server.start()
                await self.agents[name].server.start()
                self.nodes.append(
                    SimNode(
                        name,
                        model.spec.kind,
                        self._pools[name],
                        self.engines[name].server.url,
                        self.agents[name].server.url,
                        None if self.gateway is None else name,
                    )
                )
            if self.gateway is not None:
                await self.gateway.start()
            await self.control.server.start()
        except OSError as exc:
            await self.stop()
            raise FleetdeckError(f"cannot listen on {self.host}: {exc.strerror}", "sim") from None
        except BaseException:  # haproxy that does not start, a cancelled start
            await self.stop()
            raise

    async def stop(self) -> None:
        await self.control.server.close()
        if self.gateway is not None:
            await self.gateway.close()
        for name in self.models:
            await self.engines[name].server.close()
            await self.agents[name].close()

    @property
    def control_url(self) -> str:
        return self.control.server.url

    # -- what the control API reads and changes -----------------------------------------

    def node_json(self, name: str) -> dict[str, Any]:
        model = self.models[name]
        return {
            "name": name,
            "engine": model.spec.kind,
            "url": self.engines[name].server.url,
            "agent": self.agents[name].server.url,
            "pool": self._pools[name],
            **model.truth(),
        }

    def nodes_json(self) -> list[dict[str, Any]]:
        return [self.node_json(name) for name in self.models]

    async def apply(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """What `PUT /sim/nodes/NAME` does, in process (for a scripted demo): pins and/or a
        fault as the control API takes them. ValueError when the body is bad, KeyError for
        an unknown node; returns the node's ground truth."""
        if name not in self.models:
            raise KeyError(f"no node {name!r}")
        await self.change(name, parse_change(body, self.gpus))
        return self.node_json(name)

    async def change(self, name: str, change: Change) -> None:
        model = self.models[name]
        if change.pins:
            model.set_pins(change.pins)
        if change.sets_fault:
            model.set_fault(change.fault)
            await self._apply_network_fault(name)
        self._reroute()

    async def clear(self, name: str) -> None:
        self.models[name].clear()
        await self._apply_network_fault(name)
        self._reroute()

    def _reroute(self) -> None:
        """A node's health or figures changed: the gateway's checks and counts see it now."""
        if self.gateway is not None:
            self.gateway.reroute()

    async def restart(self, name: str) -> None:
        self.models[name].restart()

    async def _apply_network_fault(self, name: str) -> None:
        """Make the engine port match the node's fault: closed while it refuses, hung
        connections dropped once it no longer hangs."""
        fault = self.models[name].fault
        server = self.engines[name].server
        kind = None if fault is None else fault.kind
        if kind == "refuse" and server.listening:
            server.stop_listening()
        elif kind != "refuse" and not server.listening:
            await server.start()
        if kind != "hang":
            server.close_connections(hanging_only=True)

    # -- configuration ------------------------------------------------------------------

    def config_yaml(self) -> str:
        """A fleet.yaml for this fleet: pools with their nodes' engine, url and agent; with a
        gateway, the gateway's replicas and each pool's backend, route, standby and servers."""
        gateway = self.gateway
        lines = [
            f"# A simulated fleet of {len(self.nodes)} nodes (fleetdeck sim, seed {self.seed})."
        ]
        if gateway is not None:
            lines += [
                "gateways:",
                f"  - name: {gateway.name}",
                "    plugin: haproxy",
                f"    endpoints: {json.dumps(gateway.endpoints)}",
            ]
        lines.append("pools:")
        for pool in dict.fromkeys(self._pools.values()):
            members = [node for node in self.nodes if node.pool == pool]
            models = {self.models[node.name].model for node in members}
            lines.append(f"  - name: {pool}")
            if len(models) == 1:
                lines.append(f"    model: {json.dumps(models.pop())}")
            if gateway is not None:
                lines += [f"    gateway: {gateway.name}", f"    backend: {pool}"]
                if pool in gateway.routes:
                    route = {"map": gateway.map_file, "key": pool}
                    lines.append(f"    route: {json.dumps(route)}")
                if pool in self.standby:
                    lines.append(f"    standby: {self.standby[pool]}")
                lines.append("    min_healthy: 1")
            lines.append("    nodes:")
            for node in members:
                lines += [
                    f"      - name: {node.name}",
                    f"        engine: {node.engine}",
                    f"        url: {json.dumps(node.url)}",
                    f"        agent: {json.dumps(node.agent)}",
                ]
                if node.server is not None:
                    lines.append(f"        server: {node.server}")
        return "\n".join(lines) + "\n"


def pool_name(index: int) -> str:
    """pool-a ... pool-z, pool-aa, pool-ab, ..."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return f"pool-{letters}"


def raise_open_files_limit(nodes: int) -> list[str]:
    """Raise the soft open-files limit toward the hard one so `nodes` nodes fit; warnings
    for what could not be done (an error when not even the listening sockets fit)."""
    wanted = nodes * FILES_PER_NODE + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return []
    listening = 2 * nodes + SPARE_FILES
    message = (
        f"the open-files limit is {soft} (hard limit {hard}); {nodes} simulated nodes want "
        f"about {wanted}: raise it with `ulimit -n {wanted}`"
    )
    if soft < listening:
        raise FleetdeckError(message, "sim")
    log.warning("%s", message)
    return [message]
