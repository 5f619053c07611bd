"""Engine mappings: detection and figures on real upstream pages, and strict loading."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from console.errors import PluginError
from console.mapping import (
    EngineMapping,
    detect_kind,
    load_mapping_dir,
    load_mapping_file,
)
from console.model import Histogram, Reading
from console.promtext import parse

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ROOT / "plugins" / "engines"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "metrics"
MIB = 1024 * 1024


def fixture_text(name: str) -> str:
    path = FIXTURES / name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"metrics fixture missing in CI: {path}")
        pytest.skip(f"metrics fixture not available: {path}")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def mappings() -> list[EngineMapping]:
    loaded, errors = load_mapping_dir(ENGINES)
    assert errors == []
    return loaded


def by_kind(mappings: list[EngineMapping], kind: str) -> EngineMapping:
    return next(mapping for mapping in mappings if mapping.kind == kind)


def mapped(mappings: list[EngineMapping], kind: str, text: str) -> Reading:
    return by_kind(mappings, kind).apply(parse(text))


def test_builtin_mappings_load_one_per_kind(mappings: list[EngineMapping]) -> None:
    assert sorted(mapping.kind for mapping in mappings) == [
        "dcgm",
        "nim",
        "sglang",
        "tgi",
        "triton",
        "vllm",
    ]
    for mapping in mappings:
        assert Path(mapping.origin).stem == mapping.kind
        assert set(mapping.detect) <= mapping.wanted


# --- real pages ---------------------------------------------------------------------------

DETECTED = {
    "vllm-datadog-fixture-v0-v1-mixed-opt125m.prom": "vllm",
    "sglang-datadog-fixture-v0.5.10-opt125m.prom": "sglang",
    "tgi-datadog-fixture-payload.prom": "tgi",
    "triton-datadog-fixture-classic-models.prom": "triton",
    "triton-trtllm-backend-readme-example.prom": "triton",
    "nim-datadog-fixture-llama3.1-8b.prom": "nim",
    "dcgm-datadog-fixture-t4-mixed.prom": "dcgm",
    "dcgm-cncf-kops-l4-default-counters.prom": "dcgm",
    "dcgm-cncf-upcloud-l40s-default-counters.prom": "dcgm",
    "llmd-epp-gie-release-1.3-testdata.prom": None,
}


@pytest.mark.parametrize(("fixture", "kind"), DETECTED.items())
def test_detection_picks_the_engine(
    mappings: list[EngineMapping], fixture: str, kind: str | None
) -> None:
    detected = detect_kind(parse(fixture_text(fixture)), mappings)
    assert (detected.kind if detected else None) == kind


@pytest.mark.parametrize("fixture", [name for name, kind in DETECTED.items() if kind])
def test_wanted_families_are_enough(mappings: list[EngineMapping], fixture: str) -> None:
    text = fixture_text(fixture)
    mapping = by_kind(mappings, DETECTED[fixture])  # type: ignore[arg-type]
    fast = parse(text, mapping.wanted)
    assert mapping.matches(fast)
    assert mapping.apply(fast) == mapping.apply(parse(text))


# Figures read by hand from each file.
ENGINE_FIGURES: dict[str, dict[str, Any]] = {
    "vllm-datadog-fixture-v0-v1-mixed-opt125m.prom": dict(
        running=0,
        waiting=0,
        kv_cache_usage=0,
        prompt_tokens_total=5,
        generation_tokens_total=7,
        requests_total=1,
        errors_total=0,  # the counter is there, no request finished with an error
        model="facebook/opt-125m",
    ),
    "sglang-datadog-fixture-v0.5.10-opt125m.prom": dict(
        running=0,
        waiting=0,
        kv_cache_usage=0.25,
        prompt_tokens_total=5,
        generation_tokens_total=32,
        requests_total=1,
        errors_total=None,  # this capture has no aborted-requests family
        model="facebook/opt-125m",
    ),
    "tgi-datadog-fixture-payload.prom": dict(
        running=0,
        waiting=0,
        kv_cache_usage=None,
        prompt_tokens_total=662,
        generation_tokens_total=3423,
        requests_total=111,
        errors_total=2,
        ttft_seconds=None,
        model=None,
    ),
    "triton-datadog-fixture-classic-models.prom": dict(
        running=None,
        waiting=0,
        kv_cache_usage=None,
        prompt_tokens_total=None,
        requests_total=3,
        errors_total=0,
        ttft_seconds=None,
        e2e_seconds=None,
        model="simple_string",
    ),
    "triton-trtllm-backend-readme-example.prom": dict(
        running=0,
        waiting=1,  # the TensorRT-LLM queue, not nv_inference_pending_request_count
        kv_cache_usage=0.4875,
        requests_total=None,
        errors_total=None,
        model="tensorrt_llm",
    ),
    "nim-datadog-fixture-llama3.1-8b.prom": dict(
        running=1,
        waiting=0,
        kv_cache_usage=0.0002848191398461977,
        prompt_tokens_total=109,
        generation_tokens_total=174,
        requests_total=5,
        errors_total=0,
        model="meta/llama-3.1-8b-instruct",
    ),
}


@pytest.mark.parametrize("fixture", ENGINE_FIGURES)
def test_engine_figures_match_the_page(mappings: list[EngineMapping], fixture: str) -> None:
    reading = mapped(mappings, DETECTED[fixture], fixture_text(fixture))  # type: ignore[arg-type]
    assert reading.engine is not None
    assert reading.engine_kind == DETECTED[fixture]
    for name, expected in ENGINE_FIGURES[fixture].items():
        assert getattr(reading.engine, name) == expected, name


def test_histograms_from_real_pages(mappings: list[EngineMapping]) -> None:
    vllm = mapped(mappings, "vllm", fixture_text("vllm-datadog-fixture-v0-v1-mixed-opt125m.prom"))
    assert vllm.engine is not None and vllm.engine.ttft_seconds is not None
    ttft = vllm.engine.ttft_seconds
    assert (ttft.count, ttft.sum) == (1, 0.31326723098754883)
    assert ttft.buckets[:10][-2:] == ((0.25, 0), (0.5, 1))
    assert ttft.buckets[-1] == (math.inf, 1)

    tgi = mapped(mappings, "tgi", fixture_text("tgi-datadog-fixture-payload.prom"))
    assert tgi.engine is not None and tgi.engine.e2e_seconds is not None
    e2e = tgi.engine.e2e_seconds
    assert (e2e.count, e2e.sum, len(e2e.buckets)) == (109, 541.2140316159999, 36)
    assert e2e.buckets[-2:] == ((145.61096060497135, 109), (math.inf, 109))
    assert [bound for bound, _ in e2e.buckets] == sorted(bound for bound, _ in e2e.buckets)

    nim = mapped(mappings, "nim", fixture_text("nim-datadog-fixture-llama3.1-8b.prom"))
    assert nim.engine is not None and nim.engine.ttft_seconds is not None
    assert (nim.engine.ttft_seconds.count, nim.engine.ttft_seconds.sum) == (5, 0.6119842529296875)


GPU_FIGURES: dict[str, dict[str, Any]] = {
    "dcgm-cncf-kops-l4-default-counters.prom": dict(
        index=0,
        uuid="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",
        name="NVIDIA L4",
        util=0,
        temp=31,
        power=16.365,
        power_limit=None,
        mem_used=0,
        mem_total=(0 + 22563 + 470) * MIB,  # no FB_TOTAL: used + free + reserved
        last_xid=None,
    ),
    "dcgm-cncf-upcloud-l40s-default-counters.prom": dict(
        index=0,
        uuid="GPU-5b4e07f6-3a86-4340-039d-25f2a83cdc43",
        name="NVIDIA L40S",
        temp=32,
        power=35.686,
        mem_total=(0 + 45459 + 608) * MIB,
    ),
    "dcgm-datadog-fixture-t4-mixed.prom": dict(
        index=0,
        uuid="GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e",
        name="Tesla T4",
        temp=25,
        power=8.969,
        power_limit=70,
        mem_used=0,
        mem_total=15109 * MIB,  # FB_TOTAL wins over the sum
        last_xid=None,  # XID 0: none seen
    ),
    "triton-datadog-fixture-classic-models.prom": dict(
        index=0,
        uuid="GPU-951eeeeb-d284-d263-688e-d98a5306389b",
        name=None,
        util=0,
        mem_used=266338304,
        mem_total=16106127360,
        power=32.09,
        power_limit=70,
        temp=None,
    ),
}


@pytest.mark.parametrize("fixture", GPU_FIGURES)
def test_gpu_figures_match_the_page(mappings: list[EngineMapping], fixture: str) -> None:
    reading = mapped(mappings, DETECTED[fixture], fixture_text(fixture))  # type: ignore[arg-type]
    assert reading.gpus is not None and len(reading.gpus) == 1
    for name, expected in GPU_FIGURES[fixture].items():
        assert getattr(reading.gpus[0], name) == expected, name


def test_dcgm_has_no_engine_and_engines_have_no_gpus(mappings: list[EngineMapping]) -> None:
    dcgm = mapped(mappings, "dcgm", fixture_text("dcgm-cncf-kops-l4-default-counters.prom"))
    assert dcgm.engine is None and dcgm.engine_kind == "dcgm"
    vllm = mapped(mappings, "vllm", fixture_text("vllm-datadog-fixture-v0-v1-mixed-opt125m.prom"))
    assert vllm.gpus is None
    trtllm = mapped(mappings, "triton", fixture_text("triton-trtllm-backend-readme-example.prom"))
    assert trtllm.gpus is None  # a GPU section, but no nv_gpu_* on this page: unknown, not none


# --- rules, on small pages ----------------------------------------------------------------


def test_kv_cache_falls_back_to_the_v0_name(mappings: list[EngineMapping]) -> None:
    v0 = "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.42\n"
    assert mapped(mappings, "vllm", v0).engine.kv_cache_usage == 0.42  # type: ignore[union-attr]
    both = v0 + "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0.7\n"
    assert mapped(mappings, "vllm", both).engine.kv_cache_usage == 0.7  # type: ignore[union-attr]


def test_label_sets_add_up_and_fractions_take_the_fullest(mappings: list[EngineMapping]) -> None:
    page = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3
vllm:num_requests_running{engine="1",model_name="m"} 4
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.6
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.9
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 10
vllm:request_success_total{engine="1",finished_reason="error",model_name="m"} 2
vllm:request_success_total{engine="1",finished_reason="length",model_name="m"} 5
"""
    engine = mapped(mappings, "vllm", page).engine
    assert engine is not None
    assert (engine.running, engine.kv_cache_usage) == (7, 0.9)
    assert (engine.requests_total, engine.errors_total) == (17, 2)
    assert engine.waiting is None and engine.ttft_seconds is None  # absent: unknown, not 0


def test_counters_never_count_created(mappings: list[EngineMapping]) -> None:
    openmetrics = """\
# TYPE vllm:request_success counter
vllm:request_success_total{finished_reason="stop"} 10
vllm:request_success_created{finished_reason="stop"} 1.7e9
vllm:request_success_total{finished_reason="error"} 1
vllm:request_success_created{finished_reason="error"} 1.7e9
# EOF
"""
    page = parse(openmetrics)
    assert "vllm:request_success_created" in {
        s.name for s in page.families["vllm:request_success"].samples
    }
    engine = by_kind(mappings, "vllm").apply(page).engine
    assert engine is not None and (engine.requests_total, engine.errors_total) == (11, 1)


def test_nan_is_unknown(mappings: list[EngineMapping]) -> None:
    page = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0"} NaN
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0"} NaN
vllm:num_requests_waiting{engine="1"} 6
"""
    engine = mapped(mappings, "vllm", page).engine
    assert engine is not None
    assert engine.running is None
    assert engine.waiting == 6


def test_histograms_merge_by_bound_and_scale_to_seconds(mappings: list[EngineMapping]) -> None:
    page = """\
# TYPE nv_inference_first_response_histogram_ms histogram
nv_inference_first_response_histogram_ms_bucket{model="a",version="1",le="100"} 1
nv_inference_first_response_histogram_ms_bucket{model="a",version="1",le="500"} 3
nv_inference_first_response_histogram_ms_bucket{model="a",version="1",le="+Inf"} 4
nv_inference_first_response_histogram_ms_sum{model="a",version="1"} 1500
nv_inference_first_response_histogram_ms_count{model="a",version="1"} 4
nv_inference_first_response_histogram_ms_bucket{model="b",version="1",le="100"} 2
nv_inference_first_response_histogram_ms_bucket{model="b",version="1",le="500"} 2
nv_inference_first_response_histogram_ms_bucket{model="b",version="1",le="+Inf"} 2
nv_inference_first_response_histogram_ms_sum{model="b",version="1"} 100
nv_inference_first_response_histogram_ms_count{model="b",version="1"} 2
"""
    engine = mapped(mappings, "triton", page).engine
    assert engine is not None
    assert engine.ttft_seconds == Histogram(
        buckets=((0.1, 3), (0.5, 5), (math.inf, 6)), count=6, sum=pytest.approx(1.6)
    )


def test_selectors_and_sums(mappings: list[EngineMapping]) -> None:
    trtllm = """\
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{model="t",request_type="max",version="1"} 512
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="t",version="1"} 40
"""
    engine = mapped(mappings, "triton", trtllm).engine
    assert engine is not None
    # a gauge with no series for the selected label value is unknown
    assert engine.running is None and engine.waiting is None
    # a sum is unknown while one of its parts is
    assert engine.requests_total is None and engine.errors_total is None


def test_counter_registered_on_first_increment(mappings: list[EngineMapping]) -> None:
    idle = mapped(mappings, "tgi", "# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n").engine
    assert idle is not None and (idle.requests_total, idle.errors_total) == (None, None)
    served = "# TYPE tgi_request_count counter\ntgi_request_count 9\n"
    engine = mapped(mappings, "tgi", served).engine
    assert engine is not None and (engine.requests_total, engine.errors_total) == (9, 0)


def test_gpus_per_device(mappings: list[EngineMapping]) -> None:
    labels = 'UUID="GPU-{u}",modelName="NVIDIA H100"'
    page = f"""\
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{{gpu="1",{labels.format(u="b")},pod="p1"}} 70
DCGM_FI_DEV_GPU_TEMP{{gpu="1",{labels.format(u="b")},pod="p2"}} 70
DCGM_FI_DEV_GPU_TEMP{{gpu="0",{labels.format(u="a")}}} 40
DCGM_FI_DEV_GPU_TEMP 0
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{{gpu="0",{labels.format(u="a")}}} 1000
DCGM_FI_DEV_FB_USED{{gpu="1",{labels.format(u="b")}}} 2000
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{{gpu="0",{labels.format(u="a")}}} 500
DCGM_FI_DEV_FB_FREE{{gpu="1",{labels.format(u="b")}}} 0
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{{gpu="0",{labels.format(u="a")}}} 0
DCGM_FI_DEV_XID_ERRORS{{gpu="1",{labels.format(u="b")}}} 79
"""
    gpus = mapped(mappings, "dcgm", page).gpus
    assert gpus is not None
    assert [(gpu.index, gpu.uuid, gpu.name) for gpu in gpus] == [
        (0, "GPU-a", "NVIDIA H100"),
        (1, "GPU-b", "NVIDIA H100"),
    ]
    assert [gpu.temp for gpu in gpus] == [40, 70]  # one series per pod is a copy, not a sum
    assert [gpu.mem_used for gpu in gpus] == [1000 * MIB, 2000 * MIB]
    assert [gpu.mem_total for gpu in gpus] == [1500 * MIB, 2000 * MIB]  # no FB_RESERVED
    assert [gpu.last_xid for gpu in gpus] == [None, 79]
    assert [gpu.util for gpu in gpus] == [None, None]


def test_odd_device_labels_and_values(mappings: list[EngineMapping]) -> None:
    page = """\
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="mig-x"} +Inf
DCGM_FI_DEV_XID_ERRORS{gpu="3"} 13
"""
    gpus = mapped(mappings, "dcgm", page).gpus
    assert gpus is not None
    # not every device label is a number: devices are numbered in page order
    assert [(gpu.index, gpu.last_xid) for gpu in gpus] == [(0, None), (1, 13)]


def test_triton_gpu_utilization_is_a_fraction(mappings: list[EngineMapping]) -> None:
    page = '# TYPE nv_gpu_utilization gauge\nnv_gpu_utilization{gpu_uuid="GPU-x"} 0.37\n'
    gpus = mapped(mappings, "triton", page).gpus
    assert gpus is not None and gpus[0].util == pytest.approx(37.0)
    assert (gpus[0].index, gpus[0].uuid) == (0, "GPU-x")


def test_nim_is_detected_before_vllm(mappings: list[EngineMapping]) -> None:
    page = parse(
        "# TYPE num_requests_running gauge\nnum_requests_running 1\n"
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n"
    )
    assert detect_kind(page, mappings).kind == "nim"  # type: ignore[union-attr]
    assert detect_kind(page, list(reversed(mappings))).kind == "nim"  # type: ignore[union-attr]
    assert detect_kind(parse("# TYPE up gauge\nup 1\n"), mappings) is None


# --- loading ------------------------------------------------------------------------------

MINIMAL = {"kind": "toy", "detect": ["toy_running"], "engine": {"running": "toy_running"}}


def test_a_new_engine_is_a_new_file(tmp_path: Path) -> None:
    (tmp_path / "toy.yaml").write_text(
        "kind: toy\ndetect: [toy_busy]\nmodel_label: m\n"
        "engine:\n  running: {family: toy_busy, match: {state: [run, prefill]}}\n"
    )
    mapping = load_mapping_file(tmp_path / "toy.yaml")
    page = parse(
        "# TYPE toy_busy gauge\n"
        'toy_busy{m="x",state="run"} 2\ntoy_busy{m="x",state="prefill"} 1\n'
        'toy_busy{m="x",state="idle"} 5\n'
    )
    assert detect_kind(page, [mapping]) is mapping
    reading = mapping.apply(page)
    assert reading.engine is not None
    assert (reading.engine.running, reading.engine.model) == (3, "x")
    assert reading.gpus is None and reading.engine_kind == "toy"
    assert mapping.wanted == frozenset({"toy_busy"})


def test_a_broken_file_is_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "vllm.yaml").write_text((ENGINES / "vllm.yaml").read_text())
    (tmp_path / "broken.yaml").write_text("kind: broken\ndetect: [a\n")
    (tmp_path / "typo.yaml").write_text(
        "kind: typo\ndetect: [x]\nengine:\n  runing: x\n"  # misspelt canonical name
    )
    (tmp_path / "twice.yaml").write_text("kind: twice\ndetect: [x]\ndetect: [y]\n")
    (tmp_path / "list.yaml").write_text("- kind: vllm\n")
    (tmp_path / "binary.yaml").write_bytes(b"kind: \xff\n")
    (tmp_path / "notes.txt").write_text("not a mapping")
    loaded, errors = load_mapping_dir(tmp_path)
    assert [mapping.kind for mapping in loaded] == ["vllm"]
    messages = sorted(str(error) for error in errors)
    assert len(messages) == 5
    assert "binary.yaml: not UTF-8 text" in messages[0]
    assert "broken.yaml: line 3" in messages[1]
    assert "list.yaml: expected a mapping" in messages[2]
    assert "twice.yaml: line 3: key 'detect' given twice" in messages[3]
    assert "typo.yaml: engine: unknown key 'runing'" in messages[4]


def test_a_kind_mapped_twice_keeps_the_first(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: toy\ndetect: [x]\nengine: {running: x}\n")
    (tmp_path / "b.yaml").write_text("kind: toy\ndetect: [y]\nengine: {running: y}\n")
    loaded, errors = load_mapping_dir(tmp_path)
    assert [mapping.detect for mapping in loaded] == [("x",)]
    assert len(errors) == 1 and "b.yaml: kind 'toy' is already mapped by" in str(errors[0])


def test_a_missing_folder_is_reported(tmp_path: Path) -> None:
    loaded, errors = load_mapping_dir(tmp_path / "absent")
    assert loaded == [] and len(errors) == 1 and "absent" in str(errors[0])


def with_changes(**changes: Any) -> dict[str, Any]:
    return {**MINIMAL, **changes}


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (with_changes(colour="red"), "mapping: unknown key 'colour'"),
        ({"kind": "toy", "engine": {"running": "x"}}, "detect: required"),
        (with_changes(kind="Toy Engine"), "kind:"),
        (with_changes(detect="toy_running"), "detect: expected a list"),
        (with_changes(priority="high"), "priority:"),
        (with_changes(engine=None), "engine:"),
        ({"kind": "toy", "detect": ["x"]}, "needs an 'engine' or a 'gpus' section"),
        (with_changes(engine={"queue": "x"}), "engine: unknown key 'queue'"),
        (with_changes(engine={"running": 3}), "engine.running:"),
        (with_changes(engine={"running": "bad name"}), "engine.running:"),
        (with_changes(engine={"running": []}), "engine.running: an empty list"),
        (with_changes(engine={"running": {"family": "x", "scal": 2}}), "unknown key 'scal'"),
        (with_changes(engine={"running": {"family": "x", "scale": "2"}}), "running.scale"),
        (with_changes(engine={"running": {"family": "x", "scale": 0}}), "running.scale"),
        (with_changes(engine={"running": {"family": "x", "match": "a=b"}}), "running.match"),
        (with_changes(engine={"running": {"family": "x", "match": {"a": True}}}), "match.a"),
        (with_changes(engine={"running": {"family": "x", "match": {"a": []}}}), "match.a"),
        (with_changes(engine={"running": {"family": "x", "suffix": "sum"}}), "running.suffix"),
        (with_changes(engine={"running": {"match": {"a": "b"}}}), "expected 'family' or 'sum'"),
        (with_changes(engine={"running": {"sum": ["x"]}}), "running.sum: expected a list"),
        (with_changes(engine={"running": ["x", {"family": 1}]}), "running[1].family"),
        (with_changes(engine={"ttft_seconds": {"family": "h", "suffix": "_sum"}}), "'suffix'"),
        (with_changes(engine={"ttft_seconds": {"sum": ["a", "b"]}}), "unknown key 'sum'"),
        (with_changes(model_label="model name"), "model_label:"),
        (with_changes(gpus={"util": "u"}), "gpus.device_label: required"),
        (with_changes(gpus={"device_label": "gpu"}), "gpus: maps no figure"),
        (with_changes(gpus={"device_label": "gpu", "fan": "f"}), "gpus: unknown key 'fan'"),
        (
            with_changes(gpus={"device_label": "gpu", "util": {"family": "u", "zero_with": "v"}}),
            "gpus.util: unknown key 'zero_with'",
        ),
    ],
)
def test_invalid_mappings_are_refused(data: dict[str, Any], where: str) -> None:
    with pytest.raises(PluginError) as refused:
        EngineMapping.from_dict(data, "toy.yaml")
    assert str(refused.value).startswith("toy.yaml: ")
    assert where in str(refused.value)
