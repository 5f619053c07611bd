"""Engine and dcgm-exporter metrics: the declarative mappings in `engines/` and the source
that applies them to a scraped Prometheus page.

Sources registered: `engine` (the node's engine kind, or detected from the page for `auto`)
and `dcgm` (a dcgm-exporter page, for the GPUs of a node without an agent).
"""

from __future__ import annotations

from pathlib import Path

from console.errors import SourceError
from console.fleet import NodeConfig
from console.mapping import EngineMapping, detect_kind, load_mapping_dir
from console.model import Reading
from console.plugin import Registry
from console.promtext import BlockLayout, Page, parse

GPU_ONLY_KINDS = frozenset({"dcgm"})
# label sets remembered across the pages of every target a registry reads: the nodes of one
# model serve the same label text, so a fleet keeps one parsed dict per distinct text (a page
# that churns labels resets it)
LABEL_CACHE_LIMIT = 65536
LabelSets = dict[str, dict[str, str]]


class MetricsSource:
    """One Prometheus page mapped onto canonical names by one engine mapping.

    With `auto`, the first page is parsed in full and the mapping detected from it; later pages
    take the mapping's fast path, and detection runs again only if the page stops matching.
    """

    def __init__(self, url: str, kind: str, registry: Registry, labels: LabelSets) -> None:
        self.url = url
        self._kind = kind
        self._registry = registry
        self._mapping: EngineMapping | None = None
        self._labels = labels  # shared with the registry's other sources; never handed out
        self._layouts: dict[str, BlockLayout | None] = {}  # one entry per wanted block at most
        if kind != "auto":
            try:
                self._mapping = registry.mappings[kind]
            except KeyError:
                raise SourceError(f"{url}: no mapping for engine kind '{kind}'") from None

    def decode(self, body: bytes) -> Reading:
        text = body.decode("utf-8", errors="replace")
        if len(self._labels) > LABEL_CACHE_LIMIT:
            self._labels.clear()
        mapping = self._mapping
        if mapping is not None:
            page = parse(text, mapping.wanted, self._labels, self._layouts)
            if page.families:
                return mapping.apply(page)
            if self._kind != "auto":
                raise SourceError(self._no_families(page, f"no {mapping.kind} metrics on the page"))
        page = parse(text, label_cache=self._labels)
        candidates = [m for k, m in self._registry.mappings.items() if k not in GPU_ONLY_KINDS]
        detected = detect_kind(page, candidates)
        if detected is None:
            raise SourceError(self._no_families(page, "no known engine's metrics on the page"))
        self._mapping = detected
        return detected.apply(page)

    @staticmethod
    def _no_families(page: Page, reason: str) -> str:
        if page.issues:
            first = page.issues[0]
            return f"{reason} (line {first.line}: {first.message})"
        return reason


def register(registry: Registry) -> None:
    mappings, errors = load_mapping_dir(Path(__file__).resolve().parent / "engines")
    for mapping in mappings:
        registry.add_mapping(mapping)
    for error in errors:
        registry.report(error)
    labels: LabelSets = {}

    def engine_source(node: NodeConfig, url: str, registry: Registry) -> MetricsSource:
        return MetricsSource(url, node.engine, registry, labels)

    def dcgm_source(node: NodeConfig, url: str, registry: Registry) -> MetricsSource:
        return MetricsSource(url, "dcgm", registry, labels)

    registry.add_source("engine", engine_source)
    registry.add_source("dcgm", dcgm_source)
