"""The engine kinds the simulator speaks, each a module declaring its page and histograms."""

from __future__ import annotations

from console.sim.engines import sglang, tgi, triton, vllm
from console.sim.engines.spec import EngineSpec
from console.sim.pagetext import Page

ENGINES: dict[str, EngineSpec] = {
    module.SPEC.kind: module.SPEC for module in (vllm, sglang, tgi, triton)
}
ENGINE_KINDS = tuple(ENGINES)
_pages: dict[tuple[str, str, tuple[str, ...]], Page] = {}


def compiled_page(spec: EngineSpec, model: str, gpu_uuids: tuple[str, ...]) -> Page:
    """The compiled page for a node; nodes whose pages differ only in numbers share one."""
    key = (spec.kind, model, gpu_uuids if spec.names_gpus else ())
    page = _pages.get(key)
    if page is None:
        page = _pages[key] = spec.build_page(model, gpu_uuids)
    return page
