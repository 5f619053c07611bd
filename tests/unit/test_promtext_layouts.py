"""Layouts kept across pages: a block laid out as on the last page is read value by value, and
gives exactly what reading it line by line gives."""

from __future__ import annotations

import math

from console.promtext import MAX_ISSUES, BlockLayout, parse

WANTED = {"ttft", "running"}


def page(values: tuple[str, str, str, str], extra: str = "") -> str:
    running, low, high, total = values
    return (
        "# HELP running Running.\n"
        "# TYPE running gauge\n"
        f'running{{model="m"}} {running}\n'
        "# HELP other Other.\n"
        "# TYPE other gauge\n"
        "other 1\n"
        "# HELP ttft Time to first token.\n"
        "# TYPE ttft histogram\n"
        f'ttft_bucket{{le="0.1"}} {low}\n'
        f'ttft_bucket{{le="+Inf"}} {high}\n'
        f"ttft_count {high}\n"
        f"ttft_sum {total}\n"
        f"{extra}"
        "# HELP after After.\n"
        "after 2\n"
    )


def test_a_page_laid_out_alike_is_read_from_its_layouts() -> None:
    layouts: dict[str, BlockLayout | None] = {}
    first = page(("1", "2", "3", "0.5"))
    assert parse(first, WANTED, {}, layouts) == parse(first, WANTED)
    second = page(("4", "5", "+Inf", "1e3"))
    assert parse(second, WANTED, {}, layouts) == parse(second, WANTED)
    assert {name for name, layout in layouts.items() if layout is not None and layout.hit} == {
        "running",
        "ttft",
    }


def test_values_that_are_not_numbers_read_as_a_walk_reads_them() -> None:
    layouts: dict[str, BlockLayout | None] = {}
    parse(page(("1", "2", "3", "0.5")), WANTED, {}, layouts)
    for values in (("-Inf", "2", "3", "0.5"), ("1_0", "2", "3", "0.5"), ("1", "2", "x", "0.5")):
        text = page(values)
        assert parse(text, WANTED, {}, layouts) == parse(text, WANTED)
    nan = parse(page(("NaN", "2", "3", "0.5")), WANTED, {}, layouts)
    assert math.isnan(nan.families["running"].samples[0].value)


def test_a_block_laid_out_anew_reads_as_a_walk_reads_it() -> None:
    first = page(("1", "2", "3", "0.5"))
    for text in (
        page(("1", "2", "3", "0.5"), 'ttft_bucket{le="1"} 3\n'),
        page(("1", "2", "3", "0.5"), "ttft_sum 2\n"),
        page(("1", "2", "3", "0.5"), "# TYPE ttft gauge\n"),
        page(("1", "2", "3", "0.5"), "# HELP ttft Same block.\nttft_count 4\n"),
        page(("1", "2", "3", "0.5"), "\n# x\n"),
        first.replace("\n", "\r\n"),
        first + "# EOF\n",
    ):
        layouts: dict[str, BlockLayout | None] = {}
        parse(first, WANTED, {}, layouts)
        assert parse(text, WANTED, {}, layouts) == parse(text, WANTED)


def test_a_block_laid_out_anew_page_after_page_is_given_up() -> None:
    layouts: dict[str, BlockLayout | None] = {}
    for label in range(6):
        text = f'# TYPE running gauge\nrunning{{id="{label}"}} 1\n'
        assert parse(text, WANTED, {}, layouts) == parse(text, WANTED)
    assert "running" in layouts and layouts["running"] is None


def test_what_a_walk_reads_otherwise_is_not_kept_as_a_layout() -> None:
    pages = (
        # a bad line inside the block: an issue on every page
        'ttft_bucket{le="+Inf"} 1\nnot a sample!\nttft_count 1\n',
        # a sample of another name: a family of its own, and the block's name after it too
        'ttft_bucket{le="+Inf"} 1\ntypo 2\nttft_count 1\n',
    )
    for body in pages:
        layouts: dict[str, BlockLayout | None] = {}
        for value in ("1", "2"):
            text = "# TYPE ttft histogram\n" + body.replace(" 1\n", f" {value}\n") + "# EOF?\n"
            assert parse(text, {"ttft", "typo"}, {}, layouts) == parse(text, {"ttft", "typo"})


def test_the_same_block_in_a_page_of_the_other_format_is_read_anew() -> None:
    layouts: dict[str, BlockLayout | None] = {}
    block = '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\nh_created 5\n'
    body = block + "# TYPE other gauge\nother 1\n"
    for text in (body + "# EOF\n", body):  # `h_created` is part of `h` in OpenMetrics only
        assert parse(text, {"h", "h_created"}, {}, layouts) == parse(text, {"h", "h_created"})


def test_a_bad_line_beyond_the_issue_cap_is_not_kept_as_part_of_a_layout() -> None:
    layouts: dict[str, BlockLayout | None] = {}
    block = "# TYPE g gauge\ng 1\nnot a sample!\ng 2\n"
    crowded = "# TYPE j gauge\n" + "junk!\n" * (MAX_ISSUES + 1) + block  # g's goes unlisted
    assert parse(crowded, {"g", "j"}, {}, layouts) == parse(crowded, {"g", "j"})
    assert parse(block, {"g", "j"}, {}, layouts) == parse(block, {"g", "j"})
