"""The nodes' modelled load following a gateway: what each node is offered, given how every
replica of the gateway splits its routes.

Each route's offered load is the demand of its own backend's nodes (the pool's clients), and
every replica carries an equal share of it; a replica sends its share where its view says
(`routing.split_load`), so a node is offered the sum of what reaches it through every replica.
The views may come from the sim's own gateway or from real HAProxy replicas read through the
haproxy plugin's driver: both name servers like their nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from console.fleet import Route
from console.gateway import ReplicaState
from console.sim.model import NodeModel
from console.sim.routing import LoadSplit, Offer, split_load
from console.sim.traffic import own_demand

RouteSplits = Mapping[str, LoadSplit]  # one replica's split of each route key, at one request/s


@dataclass(frozen=True, slots=True)
class Intake:
    """The requests/s offered to a node at t: its shares of routes' demands."""

    shares: tuple[tuple[float, tuple[NodeModel, ...]], ...]  # (share, the route's pool)

    def __call__(self, t: float) -> float:
        return sum(share * pool_demand(pool, t) for share, pool in self.shares)


def pool_demand(pool: Sequence[NodeModel], t: float) -> float:
    """What a pool's clients send at t: the sum of its nodes' own demand."""
    return sum(own_demand(node.profile, node.shape, t) for node in pool)


class LoadFlow:
    """Offers the nodes of `backends` (backend -> its servers, each named like its node) the
    load of `routes` (route key -> the backend serving it while `map_file` has no other)."""

    def __init__(
        self,
        backends: Mapping[str, Sequence[str]],
        routes: Mapping[str, str],
        map_file: str,
        models: Mapping[str, NodeModel],
    ) -> None:
        self.models = models
        self.nodes = [node for nodes in backends.values() for node in nodes]
        self.offers = {
            key: [Offer(Route(map_file, key), backend, 1.0)] for key, backend in routes.items()
        }
        self.pools = {  # route key -> the nodes whose clients send its load
            key: tuple(models[node] for node in backends[backend])
            for key, backend in routes.items()
        }

    def splits(self, view: ReplicaState) -> dict[str, LoadSplit]:
        """Where the replica seen in `view` sends each route, per route key."""
        return {key: split_load(view, offer) for key, offer in self.offers.items()}

    def offer(self, splits: Sequence[RouteSplits]) -> None:
        """Offer every node what reaches it when each replica routes by its `splits` (a node
        that no route reaches is offered nothing)."""
        shares: dict[str, dict[str, float]] = {node: {} for node in self.nodes}
        for replica in splits:
            for key, split in replica.items():
                for (_, server), share in split.servers.items():
                    if server in shares:  # a server that is none of the nodes carries nothing
                        by_route = shares[server]
                        by_route[key] = by_route.get(key, 0.0) + share / len(splits)
        for node, by_route in shares.items():
            intake = tuple((share, self.pools[key]) for key, share in by_route.items())
            self.models[node].set_demand(Intake(intake))
