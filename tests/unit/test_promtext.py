"""The text parser: each format feature, bad lines as issues, and the wanted-families fast path
giving exactly the full parse's families."""

from __future__ import annotations

import math
import random

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from console.promtext import MAX_ISSUES, Family, Page, ParseIssue, Sample, parse


def samples(page: Page, family: str) -> list[tuple[str, dict[str, str], float, float | None]]:
    return [(s.name, s.labels, s.value, s.timestamp) for s in page.families[family].samples]


def wanted_part(page: Page, wanted: set[str]) -> list[tuple[str, Family]]:
    return [(name, family) for name, family in page.families.items() if name in wanted]


# --- format features -----------------------------------------------------------------------


def test_gauge_with_help_and_type() -> None:
    page = parse(
        "# HELP vllm:num_requests_running Number of requests running.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="m",engine="0"} 3.0\n'
        'vllm:num_requests_running{model_name="m",engine="1"} 4\n'
    )
    assert page.issues == []
    assert page.families == {
        "vllm:num_requests_running": Family(
            "vllm:num_requests_running",
            "gauge",
            "Number of requests running.",
            [
                Sample("vllm:num_requests_running", {"model_name": "m", "engine": "0"}, 3.0, None),
                Sample("vllm:num_requests_running", {"model_name": "m", "engine": "1"}, 4.0, None),
            ],
        )
    }


def test_counter_family_names_follow_prometheus_client() -> None:
    page = parse(
        "# TYPE vllm:prompt_tokens_total counter\n"
        'vllm:prompt_tokens_total{engine="0"} 10\n'
        "# TYPE tgi_request_count counter\n"
        "tgi_request_count 5\n"
    )
    assert page.families["vllm:prompt_tokens"].type == "counter"
    assert samples(page, "vllm:prompt_tokens") == [
        ("vllm:prompt_tokens_total", {"engine": "0"}, 10.0, None)
    ]
    # A 0.0.4 counter typed without `_total` keeps its family name; its samples get the suffix.
    assert samples(page, "tgi_request_count") == [("tgi_request_count_total", {}, 5.0, None)]


def test_histogram_and_summary_samples_belong_to_their_family() -> None:
    page = parse(
        "# TYPE ttft histogram\n"
        'ttft_bucket{le="0.1"} 1\n'
        'ttft_bucket{le="+Inf"} 2\n'
        "ttft_count 2\n"
        "ttft_sum 0.25\n"
        "# TYPE latency summary\n"
        'latency{quantile="0.5"} 0.2\n'
        "latency_count 9\n"
        "latency_sum 3\n"
    )
    assert [s.name for s in page.families["ttft"].samples] == [
        "ttft_bucket",
        "ttft_bucket",
        "ttft_count",
        "ttft_sum",
    ]
    assert page.families["ttft"].samples[1].labels == {"le": "+Inf"}
    assert [s.name for s in page.families["latency"].samples] == [
        "latency",
        "latency_count",
        "latency_sum",
    ]
    assert list(page.families) == ["ttft", "latency"]


def test_sample_without_type_is_a_family_of_its_own() -> None:
    page = parse("# HELP documented Some help.\ndocumented 1\nloose 2\nloose 3\n")
    assert page.families["documented"] == Family(
        "documented", "unknown", "Some help.", [Sample("documented", {}, 1.0, None)]
    )
    assert page.families["loose"].type == "unknown"
    assert [s.value for s in page.families["loose"].samples] == [2.0, 3.0]


def test_a_foreign_sample_ends_a_family_and_later_ones_stand_alone() -> None:
    # As prometheus_client reads it: after `typo_bucket` the histogram is over.
    page = parse(
        "# TYPE h histogram\n"
        'h_bucket{le="1"} 1\n'
        'typo_bucket{le="2"} 1\n'
        'h_bucket{le="+Inf"} 1\n'
        "h_count 1\n"
    )
    assert [s.labels for s in page.families["h"].samples] == [{"le": "1"}]
    assert page.families["h_bucket"].type == "unknown"
    assert list(page.families) == ["h", "typo_bucket", "h_bucket", "h_count"]


def test_a_family_split_over_the_page_is_joined() -> None:
    page = parse("# TYPE g gauge\ng 1\n# TYPE other gauge\nother 0\n# TYPE g gauge\ng 2\n")
    assert [s.value for s in page.families["g"].samples] == [1.0, 2.0]


def test_label_value_escapes_and_special_characters() -> None:
    page = parse(
        r'm{path="C:\\dir",quote="say \"hi\"",nl="a\nb",brace="}{,=",odd="\t",uni="ünï"} 1'
    )
    assert page.issues == []
    assert page.families["m"].samples[0].labels == {
        "path": "C:\\dir",
        "quote": 'say "hi"',
        "nl": "a\nb",
        "brace": "}{,=",
        "odd": "\\t",  # unknown escapes stay as written, as in prometheus_client
        "uni": "ünï",
    }


def test_label_sets_with_spaces_and_trailing_commas() -> None:
    page = parse(
        'a{x="1", y="2"} 1\nb{x="1",} 2\nc{ x = "1" ,y="2" , } 3\nd{} 4\ne {x="1"} 5\nf{x="1"}6\n'
    )
    assert page.issues == []
    labels = {name: family.samples[0].labels for name, family in page.families.items()}
    assert labels == {
        "a": {"x": "1", "y": "2"},
        "b": {"x": "1"},
        "c": {"x": "1", "y": "2"},
        "d": {},
        "e": {"x": "1"},
        "f": {"x": "1"},
    }


def test_special_values() -> None:
    page = parse("a NaN\nb +Inf\nc -Inf\nd 1.5e+09\ne -0.25\nf .5\ng Inf\n")
    values = {name: family.samples[0].value for name, family in page.families.items()}
    assert math.isnan(values.pop("a"))
    assert values == {
        "b": math.inf,
        "c": -math.inf,
        "d": 1.5e9,
        "e": -0.25,
        "f": 0.5,
        "g": math.inf,
    }


def test_underscore_in_a_number_is_rejected_like_prometheus_client() -> None:
    page = parse("a 1_000\n")
    assert page.families == {}
    assert page.issues == [ParseIssue(1, "bad value '1_000'")]


def test_text_format_timestamps_are_milliseconds() -> None:
    page = parse('a 1 1395066363000\nb{x="1"} 2 -5\n')
    assert page.families["a"].samples[0].timestamp == 1395066363.0
    assert page.families["b"].samples[0].timestamp == -0.005


def test_exemplars_are_skipped() -> None:
    page = parse(
        "# TYPE h histogram\n"
        'h_bucket{le="1"} 2 # {trace_id="abc"} 0.5 1600000000.1\n'
        'h_bucket{le="+Inf"} 3 1600000000000 # {trace_id="def"} 4\n'
    )
    assert page.issues == []
    assert [(s.value, s.timestamp) for s in page.families["h"].samples] == [
        (2.0, None),
        (3.0, 1600000000.0),
    ]


def test_openmetrics_page() -> None:
    page = parse(
        "# TYPE requests counter\n"
        "# UNIT requests requests\n"
        '# HELP requests Requests \\"served\\".\n'
        'requests_total{code="200"} 5 1600000000.5 # {trace_id="x"} 1\n'
        'requests_created{code="200"} 1590000000\n'
        "# TYPE build info\n"
        'build_info{version="1.2"} 1\n'
        "# TYPE hist histogram\n"
        'hist_bucket{le="+Inf"} 1\n'
        "hist_count 1\n"
        "hist_sum 2\n"
        "hist_created 1590000000\n"
        "# TYPE queue gaugehistogram\n"
        'queue_bucket{le="+Inf"} 4\n'
        "queue_gcount 4\n"
        "queue_gsum 7\n"
        "# TYPE state stateset\n"
        'state{state="a"} 1\n'
        "# EOF\n"
    )
    assert page.issues == []
    assert {name: family.type for name, family in page.families.items()} == {
        "requests": "counter",
        "build": "info",
        "hist": "histogram",
        "queue": "gaugehistogram",
        "state": "stateset",
    }
    assert page.families["requests"].help == 'Requests "served".'
    assert samples(page, "requests") == [
        ("requests_total", {"code": "200"}, 5.0, 1600000000.5),  # seconds in OpenMetrics
        ("requests_created", {"code": "200"}, 1590000000.0, None),
    ]
    assert [s.name for s in page.families["hist"].samples][-1] == "hist_created"
    assert [s.name for s in page.families["queue"].samples] == [
        "queue_bucket",
        "queue_gcount",
        "queue_gsum",
    ]


def test_blank_lines_comments_crlf_and_missing_final_newline_change_nothing() -> None:
    plain = (
        "# A comment.\n"
        "#\n"
        "# HELP g Help with \\\\ and \\n.\n"
        "# TYPE g gauge\n"
        "g 1\n"
        "\n"
        "   \n"
        "# TYPE c counter\n"
        "c_total 2"
    )
    page = parse(plain)
    assert page.issues == []
    assert page.families["g"].help == "Help with \\ and \n."
    assert parse(plain.replace("\n", "\r\n")) == page
    assert parse(plain + "\n\n") == page


def test_metric_names_may_contain_colons() -> None:
    page = parse('# TYPE a:b:c gauge\na:b:c{x="y"} 1\n:leading 2\n')
    assert list(page.families) == ["a:b:c", ":leading"]


def test_empty_page() -> None:
    assert parse("") == Page({}, [])
    assert parse("\n\n# only a comment\n") == Page({}, [])


# --- bad lines ---------------------------------------------------------------------------


def test_bad_lines_are_issues_with_line_numbers_and_do_not_break_families() -> None:
    page = parse(
        "# TYPE h histogram\n"  # 1
        'h_bucket{le="1"} 1\n'  # 2
        'h_bucket{le="2"} abc\n'  # 3
        'h_bucket{le="3" 1\n'  # 4
        "\x00\x01binary\n"  # 5
        'h_bucket{le="4",le="5"} 1\n'  # 6
        'h_bucket{le="+Inf"} 2 3 4\n'  # 7
        "# TYPE h\n"  # 8
        "# TYPE h hist\n"  # 9
        "# HELP 9h bad name\n"  # 10
        "h_bucket{le=1} 2\n"  # 11
        "h_count 2\n"  # 12
        "h_sum 1 x\n"  # 13
        "h-sum 1\n"  # 14
        "h_sum\n"  # 15
        "h_sum 3\n"  # 16
    )
    assert page.issues == [
        ParseIssue(3, "bad value 'abc'"),
        ParseIssue(4, "unterminated label set in 'h_bucket{le=\"3\" 1'"),
        ParseIssue(5, "not a sample, comment or header: '\\x00\\x01binary'"),
        ParseIssue(6, "duplicate label 'le'"),
        ParseIssue(7, "unexpected text after the value: '3 4'"),
        ParseIssue(8, "TYPE line without a type"),
        ParseIssue(9, "unknown metric type 'hist'"),
        ParseIssue(10, "bad metric name '9h' in HELP line"),
        ParseIssue(11, "bad label set '{le=1}'"),
        ParseIssue(13, "bad timestamp 'x'"),
        ParseIssue(14, "bad metric name in 'h-sum 1'"),
        ParseIssue(15, "missing value after 'h_sum'"),
    ]
    assert list(page.families) == ["h"]
    assert [(s.name, s.value) for s in page.families["h"].samples] == [
        ("h_bucket", 1.0),
        ("h_count", 2.0),
        ("h_sum", 3.0),
    ]


def test_issue_messages_stay_on_one_line_and_short() -> None:
    page = parse("x" * 10_000 + " nope\n" + 'y{a="' + "\n" * 3 + "z 1\n")
    assert [issue.line for issue in page.issues] == [1, 2]
    assert all("\n" not in issue.message and len(issue.message) < 120 for issue in page.issues)
    assert samples(page, "z") == [("z", {}, 1.0, None)]


def test_issues_are_capped() -> None:
    page = parse("junk!\n" * 5000 + "ok 1\n")
    assert len(page.issues) == MAX_ISSUES + 1
    assert page.issues[MAX_ISSUES - 1] == ParseIssue(MAX_ISSUES, "bad metric name in 'junk!'")
    assert page.issues[-1].message == f"more than {MAX_ISSUES} issues; the rest are not listed"
    assert samples(page, "ok") == [("ok", {}, 1.0, None)]


# --- the fast path -----------------------------------------------------------------------


def exposition_page() -> str:
    """A page as prometheus_client writes it (the library vLLM serves its metrics with)."""
    registry = CollectorRegistry()
    labels = ("model_name", "engine")
    running = Gauge("vllm:num_requests_running", "Running.", labels, registry=registry)
    waiting = Gauge("vllm:num_requests_waiting", "Waiting.", labels, registry=registry)
    tokens = Counter("vllm:prompt_tokens", "Prompt tokens.", labels, registry=registry)
    success = Counter(
        "vllm:request_success", "Finished.", (*labels, "finished_reason"), registry=registry
    )
    ttft = Histogram("vllm:time_to_first_token_seconds", "TTFT.", labels, registry=registry)
    size = Summary("http_request_size_bytes", "Sizes.", ("handler",), registry=registry)
    for engine in ("0", "1"):
        running.labels("m", engine).set(3)
        waiting.labels("m", engine).set(1)
        tokens.labels("m", engine).inc(100)
        success.labels("m", engine, "stop").inc(7)
        ttft.labels("m", engine).observe(0.3)
        size.labels(f"/v1/{engine}").observe(1000)
    return generate_latest(registry).decode()


def test_wanted_families_equal_the_full_parse() -> None:
    text = exposition_page()
    full = parse(text)
    assert full.issues == []
    for wanted in (
        {"vllm:num_requests_running"},
        {"vllm:prompt_tokens", "vllm:time_to_first_token_seconds", "absent"},
        {"vllm:request_success", "vllm:prompt_tokens_created", "http_request_size_bytes"},
        set(full.families),
    ):
        fast = parse(text, wanted)
        assert list(fast.families.items()) == wanted_part(full, wanted)
        assert fast.issues == []
    assert len(
        parse(text, ["vllm:time_to_first_token_seconds"])
        .families["vllm:time_to_first_token_seconds"]
        .samples
    ) == 2 * (15 + 2)  # 14 bounds and +Inf, count and sum, per engine


def test_wanted_finds_families_without_headers_and_after_a_broken_block() -> None:
    text = (
        "loose 1\n"
        "# TYPE other gauge\n"
        "other 1\n"
        "loose 2\n"
        "# TYPE h histogram\n"
        'h_bucket{le="1"} 1\n'
        'typo_bucket{le="1"} 1\n'
        'h_bucket{le="+Inf"} 1\n'
        "loose 3\n"
    )
    fast = parse(text, {"loose", "h", "h_bucket", "typo_bucket"})
    assert list(fast.families.items()) == wanted_part(
        parse(text), {"loose", "h", "h_bucket", "typo_bucket"}
    )
    assert [s.value for s in fast.families["loose"].samples] == [1.0, 2.0, 3.0]


def test_wanted_leaves_other_families_unread() -> None:
    text = (
        "# TYPE other gauge\n"
        'other{x="1",x="2"} 1\n'
        "other nope\n"
        "# TYPE wanted gauge\n"
        "wanted 1\n"
        "# TYPE more gauge\n"
        "more{ 2\n"
    )
    assert [issue.line for issue in parse(text).issues] == [2, 3, 7]
    assert parse(text, {"wanted"}) == Page(
        {"wanted": Family("wanted", "gauge", "", [Sample("wanted", {}, 1.0, None)])}, []
    )


def test_wanted_empty_or_absent() -> None:
    assert parse("a 1\n", set()) == Page({}, [])
    assert parse("a 1\n", {"b"}) == Page({}, [])


# A small vocabulary of lines whose names collide on purpose, so that random pages exercise
# block boundaries: suffixes, counters with and without `_total`, foreign samples, bad lines.
NAMES = ("a", "a_total", "a_bucket", "a_count", "a_sum", "a_created", "a_info", "b", "b_total")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped", "gaugehistogram", "stateset")
LABELS = ("", "{}", '{x="1"}', '{le="0.5", x="2",}', '{x="a\\"b"}')
VALUES = ("1", "2.5", "+Inf", "-1e3", "3 1600000000000")
BAD_LINES = ("a{", "%$#", "# TYPE", "# TYPE a nope", 'a{x="1",x="2"} 1', "a bad", "a 1 2 3")
ODD_LINES = ("", "# comment", "#", "  ", " a 1", '\ta{x="1"}\t2', "#\tTYPE\tb  gauge ")


def random_line(rng: random.Random, openmetrics: bool = True, bad: bool = True) -> str:
    """A header, sample, comment, oddly spaced or (with `bad`) broken line. OpenMetrics-only
    syntax (`# EOF`, exemplars, info families) only with `openmetrics`: prometheus_client's
    0.0.4 reader, the reference for the others, reads it differently."""
    name = rng.choice(NAMES)
    roll = rng.random()
    if roll < 0.25:
        kinds = (*TYPES, "info") if openmetrics else TYPES
        return f"# {rng.choice(('HELP', 'TYPE'))} {name} {rng.choice(kinds)}"
    if roll < 0.35:
        extra = ("# EOF",) if openmetrics else ()
        return rng.choice((*ODD_LINES, *extra, *(BAD_LINES if bad else ())))
    values = (*VALUES, '4 # {t="1"} 1') if openmetrics else VALUES
    return f"{name}{rng.choice(LABELS)} {rng.choice(values)}"


def test_fast_path_equals_full_parse_on_random_pages() -> None:
    rng = random.Random(20240601)
    families = ("a", "b", "a_bucket", "a_total", "a_info", "c")
    for _ in range(3000):
        lines = [random_line(rng) for _ in range(rng.randrange(0, 30))]
        text = rng.choice(("\n", "\r\n")).join(lines)
        if rng.random() < 0.2:
            text += "\n# EOF\n"
        full = parse(text)
        wanted = set(rng.sample(families, rng.randrange(1, len(families) + 1)))
        assert list(parse(text, wanted).families.items()) == wanted_part(full, wanted), text


def test_never_raises_on_junk() -> None:
    rng = random.Random(7)
    text = exposition_page()
    wanted = {"vllm:prompt_tokens", "vllm:time_to_first_token_seconds", "vllm:num_requests_running"}
    for _ in range(300):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
        for page_text in (
            junk.decode("utf-8", errors="replace"),
            text[: rng.randrange(len(text))],  # truncated anywhere, even inside a label value
            text[: rng.randrange(len(text))] + junk.decode("latin-1") + text,
        ):
            for page in (parse(page_text), parse(page_text, wanted)):
                assert len(page.issues) <= MAX_ISSUES + 1
    huge = 'x{a="' + "\\" * 200_000 + "b" * 200_000 + "}" * 1000
    assert parse(huge + "\nok 1").issues[0].line == 1
    assert samples(parse(huge + "\nok 1", {"ok"}), "ok") == [("ok", {}, 1.0, None)]


def reference_families(text: str) -> list[tuple[str, str, list[tuple[object, ...]]]] | None:
    """prometheus_client's reading of a page, families of one name joined as ours are; None
    when it rejects the page."""
    joined: dict[str, tuple[str, list[tuple[object, ...]]]] = {}
    try:
        for metric in text_string_to_metric_families(text):
            _, found = joined.setdefault(metric.name, (metric.type, []))
            found.extend((s.name, s.labels, float(s.value), s.timestamp) for s in metric.samples)
    except ValueError:
        return None
    return [(name, kind, found) for name, (kind, found) in joined.items()]


def test_full_parse_agrees_with_prometheus_client_on_random_pages() -> None:
    rng = random.Random(1234)
    compared = 0
    for _ in range(2000):
        lines = [random_line(rng, openmetrics=False, bad=False) for _ in range(rng.randrange(25))]
        text = "\n".join(lines)
        reference = reference_families(text)
        page = parse(text)
        if reference is None:
            continue
        assert page.issues == [], text
        ours = [
            (name, family.type, [tuple(sample) for sample in family.samples])
            for name, family in page.families.items()
        ]
        assert ours == reference, text
        compared += 1
    assert compared > 500  # the comparison must not become vacuous
