"""Full-size example pages of every engine kind, as the simulator serves them."""

from __future__ import annotations

from console.sim.engines import ENGINE_KINDS, ENGINES, compiled_page
from console.sim.model import NodeModel

EXAMPLE_SEED = 7
EXAMPLE_GPUS = 8


def example_page(kind: str) -> str:
    """A `/metrics` page of engine `kind` (one of ENGINE_KINDS) from a node in mid-life."""
    if kind not in ENGINES:
        raise ValueError(f"unknown engine kind {kind!r} (known: {', '.join(ENGINE_KINDS)})")
    spec = ENGINES[kind]
    node = NodeModel(
        "node-001",
        spec,
        seed=EXAMPLE_SEED,
        index=0,
        gpus=EXAMPLE_GPUS,
        clock=lambda: 1000.0,
        wall_start=1_750_000_000.0,
        static=True,
    )
    return compiled_page(spec, node.model, tuple(node.board.uuids)).render(node)
