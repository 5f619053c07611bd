"""Engine mappings: declarative files that turn a parsed `/metrics` page into canonical readings.

One YAML file per engine kind (`plugins/engines/KIND.yaml`; the format is described in each
file's header and in docs/engine-mappings.md). Loading validates a file strictly and compiles
every figure into a small reader object, so `EngineMapping.apply()` only looks families up and
adds samples: it runs once per scrape of every target.

Readers return a figure's value per group: the single group "" for an engine, one group per
device (the value of the device label) for GPUs. An empty result means "unknown", never 0.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, get_args, get_type_hints

import yaml

from console.errors import PluginError
from console.model import EngineSample, GpuSample, Histogram, Reading

if TYPE_CHECKING:
    from console.promtext import Family, Page

Families = Mapping[str, "Family"]
Totals = dict[str, float]
Fold = Callable[[float, float], float]
T_co = TypeVar("T_co", covariant=True)

DEFAULT_PRIORITY = 50
_ENGINE = ""  # the one group of an engine section
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_KIND = re.compile(r"[a-z][a-z0-9_-]*\Z")


def _figures_of(cls: type, kinds: tuple[type, ...]) -> tuple[str, ...]:
    """Fields of a model dataclass typed `KIND | None`: the names a mapping may fill."""
    hints = get_type_hints(cls)
    names = []
    for field in fields(cls):
        members = get_args(hints[field.name])
        if type(None) in members and any(kind in members for kind in kinds):
            names.append(field.name)
    return tuple(names)


ENGINE_SCALARS = _figures_of(EngineSample, (float,))
ENGINE_HISTOGRAMS = _figures_of(EngineSample, (Histogram,))
GPU_FIGURES = _figures_of(GpuSample, (float, int))
_GPU_INTEGERS = frozenset(_figures_of(GpuSample, (int,)))
_ZERO_MEANS_NONE = frozenset({"last_xid"})  # XID 0 is "no error seen", not an error code
# Fractions do not add up across label sets (two engines at 60% are not at 120%): take the
# fullest. A GPU's several series (dcgm-exporter repeats one per pod using it) are copies.
_PEAK_ENGINE_FIGURES = frozenset({"kv_cache_usage"})
_GPU_LABEL_KEYS = ("device_label", "uuid_label", "name_label")


# --- readers (compiled figure specs) -------------------------------------------------------


class _Reader(Protocol[T_co]):
    families: tuple[str, ...]  # every family the reader looks at

    def read(self, families: Families, group_label: str | None) -> T_co: ...


def _selected(labels: Mapping[str, str], match: tuple[tuple[str, frozenset[str]], ...]) -> bool:
    for label, allowed in match:  # noqa: SIM110 (per sample: all() over a generator costs more)
        if labels.get(label) not in allowed:
            return False
    return True


class FamilyReader:
    """One family's samples (named `sample_names`, chosen by `match`) folded per group."""

    __slots__ = ("families", "family", "fold", "match", "sample_names", "scale", "zero_with")

    def __init__(
        self,
        family: str,
        sample_names: frozenset[str],
        match: tuple[tuple[str, frozenset[str]], ...],
        scale: float,
        fold: Fold,
        zero_with: str | None,
    ) -> None:
        self.family = family
        self.sample_names = sample_names
        self.match = match
        self.scale = scale
        self.fold = fold
        self.zero_with = zero_with
        self.families: tuple[str, ...] = (family,) if zero_with is None else (family, zero_with)

    def read(self, families: Families, group_label: str | None) -> Totals:
        family = families.get(self.family)
        if family is None:
            # Some engines register a counter on its first increment: no family, no errors yet.
            if self.zero_with is not None and self.zero_with in families:
                return {_ENGINE: 0.0}
            return {}
        totals: Totals = {}
        selected_any = False
        names, match, fold = self.sample_names, self.match, self.fold
        for sample in family.samples:
            if sample.name not in names:
                continue
            labels = sample.labels
            if match and not _selected(labels, match):
                continue
            group = _ENGINE if group_label is None else labels.get(group_label)
            if group is None:
                continue
            selected_any = True
            value = sample.value
            if value != value:  # NaN: the target does not know, neither do we
                continue
            previous = totals.get(group)
            totals[group] = value if previous is None else fold(previous, value)
        if not selected_any and group_label is None and family.type == "counter":
            # A labelled counter shows a series only once that series counted something.
            return {_ENGINE: 0.0}
        if self.scale != 1.0:
            for group, value in totals.items():
                totals[group] = value * self.scale
        return totals


class SumReader:
    """The sum of several figures, per group; a group missing from any part is unknown."""

    __slots__ = ("families", "parts", "scale")

    def __init__(self, parts: tuple[_Reader[Totals], ...], scale: float) -> None:
        self.parts = parts
        self.scale = scale
        self.families = tuple(name for part in parts for name in part.families)

    def read(self, families: Families, group_label: str | None) -> Totals:
        first, *rest = (part.read(families, group_label) for part in self.parts)
        totals: Totals = {}
        for group, value in first.items():
            if all(group in part for part in rest):
                totals[group] = (value + sum(part[group] for part in rest)) * self.scale
        return totals


class FirstOf(Generic[T_co]):
    """Alternatives in order: the first that yields a value wins."""

    __slots__ = ("alternatives", "families")

    def __init__(self, alternatives: tuple[_Reader[T_co], ...]) -> None:
        self.alternatives = alternatives
        self.families = tuple(name for alt in alternatives for name in alt.families)

    def read(self, families: Families, group_label: str | None) -> T_co:
        for alternative in self.alternatives:
            result = alternative.read(families, group_label)
            if result:
                return result
        return result  # the last alternative's own "unknown" (an empty dict, or None)


class HistogramReader:
    """One histogram family merged across label sets by bucket bound; `scale` converts units."""

    __slots__ = ("bucket_name", "count_name", "families", "family", "match", "scale", "sum_name")

    def __init__(
        self, family: str, match: tuple[tuple[str, frozenset[str]], ...], scale: float
    ) -> None:
        self.family = family
        self.bucket_name = family + "_bucket"
        self.count_name = family + "_count"
        self.sum_name = family + "_sum"
        self.match = match
        self.scale = scale
        self.families: tuple[str, ...] = (family,)

    def read(self, families: Families, group_label: str | None) -> Histogram | None:
        family = families.get(self.family)
        if family is None:
            return None
        buckets: dict[float, float] = {}
        count: float | None = None
        total = 0.0
        match = self.match
        bucket_name, count_name, sum_name = self.bucket_name, self.count_name, self.sum_name
        for name, labels, value, _ in family.samples:
            if value != value or (match and not _selected(labels, match)):
                continue
            if name == bucket_name:
                try:
                    bound = float(labels["le"])
                except (KeyError, ValueError):
                    continue  # a bucket without a usable bound cannot be placed
                if bound == bound:
                    buckets[bound] = buckets.get(bound, 0.0) + value
            elif name == count_name:
                count = value if count is None else count + value
            elif name == sum_name:
                total += value
        if not buckets:
            return None
        ordered = sorted(buckets.items())
        if count is None:
            count = ordered[-1][1]
        if ordered[-1][0] != math.inf:
            ordered.append((math.inf, count))
        scale = self.scale
        if scale != 1.0:
            ordered = [(bound * scale, cumulative) for bound, cumulative in ordered]
            total *= scale
        return Histogram(buckets=tuple(ordered), count=count, sum=total)


# --- sections -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineSection:
    scalars: tuple[tuple[str, _Reader[Totals]], ...]
    histograms: tuple[tuple[str, _Reader[Histogram | None]], ...]
    model_label: str | None
    model_families: tuple[str, ...]  # where to look for the model label, in figure order

    def read(self, families: Families) -> EngineSample:
        values: dict[str, Any] = {
            name: reader.read(families, None).get(_ENGINE) for name, reader in self.scalars
        }
        for name, reader in self.histograms:
            values[name] = reader.read(families, None)
        return EngineSample(model=self._model(families), **values)

    def _model(self, families: Families) -> str | None:
        label = self.model_label
        if label is None:
            return None
        for name in self.model_families:
            family = families.get(name)
            if family is not None:
                for sample in family.samples:
                    model = sample.labels.get(label)
                    if model:
                        return model
        return None


@dataclass(frozen=True, slots=True)
class GpuSection:
    device_label: str
    uuid_label: str | None
    name_label: str | None
    figures: tuple[tuple[str, _Reader[Totals]], ...]
    device_families: tuple[str, ...]  # where devices and their labels are found

    def read(self, families: Families) -> tuple[GpuSample, ...] | None:
        devices = self._devices(families)
        if not devices:
            return None
        per_figure = [
            (name, reader.read(families, self.device_label)) for name, reader in self.figures
        ]
        indexes = device_numbers(devices) or range(len(devices))
        gpus = [
            gpu_sample(
                index,
                {name: by_device.get(key) for name, by_device in per_figure},
                uuid=uuid,
                name=model_name,
            )
            for index, (key, (uuid, model_name)) in zip(indexes, devices.items(), strict=True)
        ]
        gpus.sort(key=lambda gpu: gpu.index)
        return tuple(gpus)

    def _devices(self, families: Families) -> dict[str, tuple[str | None, str | None]]:
        """Device key -> (uuid, name), in order of first appearance."""
        devices: dict[str, tuple[str | None, str | None]] = {}
        device_label, uuid_label, name_label = self.device_label, self.uuid_label, self.name_label
        for name in self.device_families:
            family = families.get(name)
            if family is None:
                continue
            for sample in family.samples:
                labels = sample.labels
                key = labels.get(device_label)
                if key is not None and key not in devices:
                    devices[key] = (
                        labels.get(uuid_label) if uuid_label else None,
                        labels.get(name_label) if name_label else None,
                    )
        return devices


# --- the mapping ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineMapping:
    """One engine kind's mapping, validated and compiled. Build with `from_dict` or a loader."""

    kind: str
    detect: tuple[str, ...]  # any of these families on a page means this engine
    wanted: frozenset[str]  # every family the mapping reads, for the parser's fast path
    priority: int  # detection order: lower is tried first
    origin: str  # the file it came from, for messages
    engine: EngineSection | None
    gpus: GpuSection | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> EngineMapping:
        return _Compiler(origin).mapping(data)

    def matches(self, page: Page) -> bool:
        families = page.families
        return any(name in families for name in self.detect)

    def apply(self, page: Page) -> Reading:
        families = page.families
        return Reading(
            engine=self.engine.read(families) if self.engine is not None else None,
            gpus=self.gpus.read(families) if self.gpus is not None else None,
            engine_kind=self.kind,
        )


def detect_kind(page: Page, mappings: Sequence[EngineMapping]) -> EngineMapping | None:
    """The mapping `engine: auto` should use for this page: lowest priority, then kind name."""
    candidates = (mapping for mapping in mappings if mapping.matches(page))
    return min(candidates, key=lambda mapping: (mapping.priority, mapping.kind), default=None)


def load_mapping_file(path: Path) -> EngineMapping:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PluginError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PluginError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PluginError(f"{path}: {where}{problem}") from None
    if not isinstance(data, Mapping):
        raise PluginError(f"{path}: expected a mapping of keys (kind, detect, engine, ...)")
    return EngineMapping.from_dict(data, str(path))


def load_mapping_dir(path: Path) -> tuple[list[EngineMapping], list[PluginError]]:
    """Every `*.yaml` mapping in a folder, by detection order; a broken file is reported."""
    try:
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    except OSError as exc:
        return [], [PluginError(f"{path}: cannot list engine mappings: {exc.strerror}")]
    mappings: dict[str, EngineMapping] = {}
    errors: list[PluginError] = []
    for file in files:
        try:
            mapping = load_mapping_file(file)
        except PluginError as exc:
            errors.append(exc)
            continue
        if mapping.kind in mappings:
            first = mappings[mapping.kind].origin
            errors.append(
                PluginError(f"{file}: kind {mapping.kind!r} is already mapped by {first}")
            )
            continue
        mappings[mapping.kind] = mapping
    ordered = sorted(mappings.values(), key=lambda mapping: (mapping.priority, mapping.kind))
    return ordered, errors


# --- loading: strict YAML and validation ---------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice (plain PyYAML silently keeps the last)."""


def _unique_keys_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float):  # others are refused by construct_mapping
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys_mapping)


class _Compiler:
    """Validates one mapping's data and builds its readers; errors name the file and key."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def error(self, where: str, problem: str) -> PluginError:
        return PluginError(f"{self.origin}: {where}: {problem}")

    def mapping(self, data: Mapping[str, Any]) -> EngineMapping:
        self.keys(data, "mapping", {"kind", "detect", "priority", "model_label", "engine", "gpus"})
        for key in ("kind", "detect"):
            if key not in data:
                raise self.error(key, "required")
        kind = data["kind"]
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise self.error("kind", "expected a lower-case name such as 'vllm'")
        detect = self.names(data["detect"], "detect")
        priority = data.get("priority", DEFAULT_PRIORITY)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise self.error("priority", "expected an integer")
        if "engine" not in data and "gpus" not in data:
            raise self.error("mapping", "needs an 'engine' or a 'gpus' section")
        model_label = data.get("model_label")
        if model_label is not None:
            self.label(model_label, "model_label")
            if "engine" not in data:
                raise self.error("model_label", "needs an 'engine' section")
        engine = self.engine(data["engine"], model_label) if "engine" in data else None
        gpus = self.gpus(data["gpus"]) if "gpus" in data else None
        wanted = set(detect)
        if engine is not None:
            wanted.update(engine.model_families)
        if gpus is not None:
            wanted.update(gpus.device_families)
        return EngineMapping(kind, detect, frozenset(wanted), priority, self.origin, engine, gpus)

    def engine(self, section: Any, model_label: str | None) -> EngineSection:
        self.section(section, "engine", ENGINE_SCALARS + ENGINE_HISTOGRAMS)
        scalars = tuple(
            (name, self.scalar(spec, f"engine.{name}", _peak_or_sum(name), in_engine=True))
            for name, spec in section.items()
            if name in ENGINE_SCALARS
        )
        histograms = tuple(
            (name, self.histogram(spec, f"engine.{name}"))
            for name, spec in section.items()
            if name in ENGINE_HISTOGRAMS
        )
        readers = [reader for _, reader in scalars] + [reader for _, reader in histograms]
        return EngineSection(scalars, histograms, model_label, _families_of(readers))

    def gpus(self, section: Any) -> GpuSection:
        self.section(section, "gpus", GPU_FIGURES + _GPU_LABEL_KEYS)
        if "device_label" not in section:
            raise self.error("gpus.device_label", "required (the label that tells GPUs apart)")
        labels = {key: section.get(key) for key in _GPU_LABEL_KEYS}
        for key, label in labels.items():
            if label is not None:
                self.label(label, f"gpus.{key}")
        figures = tuple(
            (name, self.scalar(spec, f"gpus.{name}", max, in_engine=False))
            for name, spec in section.items()
            if name in GPU_FIGURES
        )
        if not figures:
            raise self.error("gpus", f"maps no figure (expected some of {', '.join(GPU_FIGURES)})")
        return GpuSection(
            labels["device_label"],
            labels["uuid_label"],
            labels["name_label"],
            figures,
            _families_of([reader for _, reader in figures]),
        )

    def scalar(self, spec: Any, where: str, fold: Fold, *, in_engine: bool) -> _Reader[Totals]:
        """`FAMILY`, `{family: ...}`, `{sum: [...]}` or a list of alternatives of these."""
        if isinstance(spec, list):
            return self.alternatives(
                [
                    self.scalar(alt, f"{where}[{i}]", fold, in_engine=in_engine)
                    for i, alt in enumerate(spec)
                ],
                where,
            )
        if isinstance(spec, str):
            return FamilyReader(self.name(spec, where), _plain_samples(spec), (), 1.0, fold, None)
        if isinstance(spec, Mapping) and "sum" in spec:
            self.keys(spec, where, {"sum", "scale"})
            parts = spec["sum"]
            if not isinstance(parts, list) or len(parts) < 2:
                raise self.error(f"{where}.sum", "expected a list of at least two figures")
            return SumReader(
                tuple(
                    self.scalar(part, f"{where}.sum[{i}]", fold, in_engine=in_engine)
                    for i, part in enumerate(parts)
                ),
                self.scale(spec, where),
            )
        allowed = {"family", "match", "scale", "suffix"} | ({"zero_with"} if in_engine else set())
        family = self.family_spec(spec, where, allowed)
        suffix = spec.get("suffix")
        if suffix is None:
            sample_names = _plain_samples(family)
        elif isinstance(suffix, str) and _METRIC_NAME.match("x" + suffix) and suffix[0] == "_":
            sample_names = frozenset({family + suffix})
        else:
            raise self.error(f"{where}.suffix", "expected a sample suffix such as '_sum'")
        zero_with = spec.get("zero_with")
        if zero_with is not None:
            self.name(zero_with, f"{where}.zero_with")
        match = self.match(spec, where)
        return FamilyReader(family, sample_names, match, self.scale(spec, where), fold, zero_with)

    def histogram(self, spec: Any, where: str) -> _Reader[Histogram | None]:
        """`FAMILY`, `{family, match, scale}` or a list of alternatives of these."""
        if isinstance(spec, list):
            readers = [self.histogram(alt, f"{where}[{i}]") for i, alt in enumerate(spec)]
            return self.alternatives(readers, where)
        if isinstance(spec, str):
            return HistogramReader(self.name(spec, where), (), 1.0)
        family = self.family_spec(spec, where, {"family", "match", "scale"})
        return HistogramReader(family, self.match(spec, where), self.scale(spec, where))

    def alternatives(self, readers: list[_Reader[T_co]], where: str) -> _Reader[T_co]:
        if not readers:
            raise self.error(where, "an empty list of alternatives")
        return readers[0] if len(readers) == 1 else FirstOf(tuple(readers))

    def family_spec(self, spec: Any, where: str, allowed: set[str]) -> str:
        if not isinstance(spec, Mapping):
            raise self.error(where, "expected a family name, a mapping or a list of alternatives")
        self.keys(spec, where, allowed)
        if "family" not in spec:
            wanted = "'family' or 'sum'" if "suffix" in allowed else "'family'"
            raise self.error(where, f"expected {wanted}")
        return self.name(spec["family"], f"{where}.family")

    def match(self, spec: Mapping[str, Any], where: str) -> tuple[tuple[str, frozenset[str]], ...]:
        match = spec.get("match")
        if match is None:
            return ()
        if not isinstance(match, Mapping) or not match:
            raise self.error(f"{where}.match", "expected a mapping of label to value(s)")
        selectors = []
        for label, values in match.items():
            self.label(label, f"{where}.match")
            listed = values if isinstance(values, list) else [values]
            if not listed or not all(_is_label_value(value) for value in listed):
                raise self.error(
                    f"{where}.match.{label}", "expected a label value or a list of them (quoted)"
                )
            selectors.append((label, frozenset(str(value) for value in listed)))
        return tuple(selectors)

    def scale(self, spec: Mapping[str, Any], where: str) -> float:
        scale = spec.get("scale", 1.0)
        if (
            not isinstance(scale, int | float)
            or isinstance(scale, bool)
            or not math.isfinite(scale)
            or scale <= 0
        ):
            raise self.error(f"{where}.scale", "expected a positive number")
        return float(scale)

    def section(self, section: Any, where: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(section, Mapping) or not section:
            raise self.error(where, "expected a mapping of canonical names to figures")
        self.keys(section, where, set(allowed))

    def keys(self, data: Mapping[Any, Any], where: str, allowed: set[str]) -> None:
        unknown = [key for key in data if key not in allowed]
        if unknown:
            raise self.error(
                where, f"unknown key {unknown[0]!r} (expected one of {', '.join(sorted(allowed))})"
            )

    def names(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(where, "expected a list of family names")
        return tuple(self.name(item, f"{where}[{i}]") for i, item in enumerate(value))

    def name(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _METRIC_NAME.match(value):
            raise self.error(where, f"expected a metric family name, got {value!r}")
        return value

    def label(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _LABEL_NAME.match(value):
            raise self.error(where, f"expected a label name, got {value!r}")
        return value


def gpu_sample(
    index: int,
    figures: Mapping[str, float | None],
    *,
    uuid: str | None = None,
    name: str | None = None,
    lost: bool = False,
) -> GpuSample:
    """A GPU from its canonical figures, whole numbers made whole (an XID of 0 is none)."""
    values: dict[str, Any] = dict(figures)
    for figure in _GPU_INTEGERS & values.keys():
        values[figure] = _whole(values[figure], none_if_zero=figure in _ZERO_MEANS_NONE)
    return GpuSample(index=index, uuid=uuid, name=name, lost=lost, **values)


def device_numbers(keys: Iterable[str]) -> list[int] | None:
    """dcgm numbers its GPUs; Triton tells them apart by UUID (then page order numbers them)."""
    try:
        return [int(key) for key in keys]
    except ValueError:
        return None


def _whole(value: float | None, *, none_if_zero: bool) -> int | None:
    if value is None or not math.isfinite(value) or (none_if_zero and value == 0):
        return None
    return int(value)


def _plain_samples(family: str) -> frozenset[str]:
    """A gauge's sample, or a counter's with or without `_total` (never `_created`)."""
    return frozenset({family, family + "_total"})


def _peak_or_sum(figure: str) -> Fold:
    return max if figure in _PEAK_ENGINE_FIGURES else operator.add


def _is_label_value(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _families_of(readers: Sequence[_Reader[Any]]) -> tuple[str, ...]:
    """Every family the readers look at, once each, in order."""
    return tuple(dict.fromkeys(name for reader in readers for name in reader.families))
