"""Fast parser for Prometheus text exposition (0.0.4) and the OpenMetrics subset engines emit.

`parse(text)` reads a whole page; `parse(text, wanted)` returns only the named families and
skips the rest of the page without looking at its labels or values.

Families, sample names, values and timestamps follow `prometheus_client`'s parsers: a counter
typed `foo_total` is family `foo` (in 0.0.4 its samples keep their names; a counter typed `foo`
has its samples renamed `foo_total`; an info typed `foo_info` is family `foo` too), a sample
that belongs to no typed family is an `unknown` family of its own, 0.0.4 timestamps are
milliseconds turned into seconds. A page whose last line is `# EOF` is OpenMetrics: timestamps
are seconds and a family's samples carry the OpenMetrics suffixes (`foo` counter ->
`foo_total`, `foo_created`; `foo` info -> `foo_info`). Where a family appears in several places
of a page its samples are joined under the first appearance's type and help.

Bad lines never raise: each is recorded as a `ParseIssue` with its line number and skipped, and
it changes nothing about the families around it. A sample line starts with its metric name
(after any blanks): quoted or braced names, Prometheus 3's UTF-8 syntax, are bad lines.

How the fast path stays exact: a block of lines starts at a header (`# HELP`/`# TYPE`) of a
new name, or at a sample that does not belong to the block before it (a family of its own), and
runs to the next. One compiled regex finds the headers of the blocks that can make up a wanted
family and the samples named exactly like a wanted family; the parser reads only from each such
header to the next header of another name. A wanted name found outside those blocks is read by
walking on, block by block, from where the last read stopped (always a header), so every line
read sees the same state as in a full parse. A caller that reads one target again and again
may keep each wanted block's layout (`BlockLayout`): a block whose text is unchanged but for
its values is then read value by value, with the same result as reading it line by line.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from sys import intern
from typing import NamedTuple

__all__ = ["MAX_ISSUES", "BlockLayout", "Family", "Page", "ParseIssue", "Sample", "parse"]

MAX_ISSUES = 100  # issues listed per page; past it, one last entry says the rest were left out


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None  # seconds


@dataclass(slots=True)
class Family:
    name: str
    type: str  # counter, gauge, histogram, summary, unknown, info, stateset, gaugehistogram
    help: str
    samples: list[Sample]


class ParseIssue(NamedTuple):
    line: int  # 1-based
    message: str


@dataclass(slots=True)
class Page:
    families: dict[str, Family]
    issues: list[ParseIssue]


# --- line syntax ---------------------------------------------------------------------------
# Possessive quantifiers keep every pattern linear on hostile input (huge or junk lines).

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*+"
_LABEL_VALUE = r'"(?:[^"\\]++|\\.)*+"'
_PAIR = rf"{_LABEL_NAME}[ \t]*+=[ \t]*+{_LABEL_VALUE}"
# Exactly what float() accepts among ASCII numerals, NaN and infinities, so float() never fails.
_NUMBER = (
    r"[+-]?+(?:[0-9]++(?:\.[0-9]*+)?+(?:[eE][+-]?+[0-9]++)?+"
    r"|\.[0-9]++(?:[eE][+-]?+[0-9]++)?+|(?i:nan|inf(?:inity)?+))"
)
_LABELS = rf"\{{[ \t]*+((?:{_PAIR}(?:[ \t]*+,[ \t]*+{_PAIR})*+)?+[ \t]*+,?+)[ \t]*+\}}"
_VALUE_AND_REST = (
    rf"({_NUMBER})(?:[ \t]++({_NUMBER}))?+"
    r"(?:[ \t]++#(?:[ \t].*+)?+)?+"  # an exemplar (or any trailing comment): skipped
    r"[ \t\r]*+"
)
# Groups: name, label pairs (None without braces), value, timestamp.
_SAMPLE_RE = re.compile(rf"[ \t]*+({_NAME})(?:[ \t]*+{_LABELS}[ \t]*+|[ \t]++){_VALUE_AND_REST}")
# What follows a sample's label set. Groups: value, timestamp.
_VALUE_RE = re.compile(rf"[ \t]*+{_VALUE_AND_REST}")
_NO_LABELS: dict[str, str] = {}  # copied into each sample without labels, never handed out
_PAIR_RE = re.compile(rf'({_LABEL_NAME})[ \t]*+=[ \t]*+"((?:[^"\\]++|\\.)*+)"')

_TYPES = ("counter", "gauge", "histogram", "summary", "untyped", "unknown", "info", "stateset")
_TYPE_ALTERNATION = "|".join(("gaugehistogram", *_TYPES))  # longest first


def _header_pattern(name: str) -> str:
    """A valid `# HELP`/`# TYPE` line for metric names matching `name`, as a search pattern
    (each branch stops where a line may end). Groups: HELP name, TYPE name, type."""
    help_head = rf"#[ \t]++HELP[ \t]++({name})"
    type_head = rf"#[ \t]++TYPE[ \t]++({name})[ \t]++({_TYPE_ALTERNATION})"
    return rf"{help_head}(?=[ \t]|\r*+(?:\n|\Z))|{type_head}(?=[ \t\r]*+(?:\n|\Z))"


# Groups: HELP name, TYPE name, type, HELP text (unstripped; meaningless on TYPE lines).
_HEADER_RE = re.compile(rf"[ \t]*+(?:{_header_pattern(_NAME)})(?:[ \t]++(.*+))?[ \t\r]*+")
_HEADERISH_RE = re.compile(r"[ \t]*+#[ \t]++(?:HELP|TYPE)(?:[ \t\r]|\Z)")

_ESCAPE_RE = re.compile(r'\\[\\n"]')
_HELP_ESCAPE_RE = re.compile(r"\\[\\n]")  # 0.0.4 HELP text does not escape quotes
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}


def _unescape(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: _UNESCAPED[m[0]], text) if "\\" in text else text


def _help(text: str | None, openmetrics: bool) -> str:
    """A HELP line's text as the family carries it."""
    escapes = _ESCAPE_RE if openmetrics else _HELP_ESCAPE_RE
    return _unescape(escapes, (text or "").rstrip(" \t\r"))


# Sample names that belong to a family typed NAME, per format ("" stands for NAME itself).
_TEXT_SUFFIXES = {"summary": ("", "_count", "_sum"), "histogram": ("_count", "_sum", "_bucket")}
_OPENMETRICS_SUFFIXES = {
    "counter": ("_total", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_count", "_sum", "_bucket", "_created"),
    "gaugehistogram": ("_gcount", "_gsum", "_bucket"),
    "info": ("_info",),
}
# Header names whose family drops a suffix: a 0.0.4 counter `foo_total` is family `foo`.
_FAMILY_SUFFIX = {"counter": "_total", "info": "_info"}


@lru_cache(maxsize=1024)
def _sample_names(block: str, kind: str, openmetrics: bool) -> tuple[str, ...]:
    """The sample names that belong to a block typed `kind`."""
    suffixes = (_OPENMETRICS_SUFFIXES if openmetrics else _TEXT_SUFFIXES).get(kind, ("",))
    return tuple(block + suffix for suffix in suffixes)


def _family_name(block: str, kind: str, openmetrics: bool) -> str:
    suffix = _FAMILY_SUFFIX.get(kind)
    if suffix and not openmetrics and block.endswith(suffix):
        return block[: -len(suffix)]
    return block


def _block_names(family: str) -> tuple[str, ...]:
    """Every header (block) name that can make up `family`."""
    return (family, *(family + suffix for suffix in _FAMILY_SUFFIX.values()))


_Trie = dict[str, "_Trie"]


def _alternation(names: Collection[str]) -> str:
    """A regex matching exactly `names`, as a trie: the engine tries each character once
    instead of each name in turn."""
    trie: _Trie = {}
    for name in names:
        node = trie
        for char in name:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: _Trie) -> str:
        branches = [re.escape(char) + render(child) for char, child in node.items() if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{body})?" if "" in node else body

    return render(trie)


class _Finder(NamedTuple):
    """Finds the header lines of wanted families' blocks and the samples named like a wanted
    family (group 4: that name). `later` searches for such a line after a newline; `first`
    matches the page's first line, which follows none."""

    first: re.Pattern[str]
    later: re.Pattern[str]
    blocks: frozenset[str]  # the names of those blocks


@lru_cache(maxsize=64)
def _finder(wanted: frozenset[str]) -> _Finder:
    blocks = frozenset(block for family in wanted for block in _block_names(family))
    header = _header_pattern(rf"{_alternation(blocks)}(?![a-zA-Z0-9_:])")
    line = rf"[ \t]*+(?:{header}|({_alternation(wanted)})[ \t{{])"
    return _Finder(re.compile(line), re.compile(rf"\n{line}"), blocks)


def _pairs(pairs: str) -> dict[str, str] | None:
    """The labels a label set's text names; None when a label name repeats."""
    found = _PAIR_RE.findall(pairs)
    labels = dict(found)
    if len(labels) != len(found):
        return None
    if "\\" in pairs:
        labels = {name: _unescape(_ESCAPE_RE, value) for name, value in labels.items()}
    return labels


def _excerpt(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


_NAME_RE = re.compile(rf"[ \t]*+({_NAME})")
_LABELS_RE = re.compile(_LABELS)
_BRACED_RE = re.compile(rf"\{{(?:[^\"}}]++|{_LABEL_VALUE})*+\}}")  # braces closed, pairs unchecked
_NUMBER_RE = re.compile(_NUMBER)
_BLANKS_RE = re.compile(r"[ \t]+")


def _diagnose_sample(line: str) -> str:
    """Why a line that is not blank, a comment or a header is not a sample either."""
    name = _NAME_RE.match(line)
    if name is None:
        return f"not a sample, comment or header: {_excerpt(line.strip())}"
    rest = line[name.end() :].lstrip(" \t")
    if rest.startswith("{"):
        labels = _LABELS_RE.match(rest)
        if labels is None:
            braced = _BRACED_RE.match(rest)
            if braced is None:
                return f"unterminated label set in {_excerpt(line.strip())}"
            return f"bad label set {_excerpt(braced[0])}"
        rest = rest[labels.end() :]
    elif rest and rest == line[name.end() :]:
        return f"bad metric name in {_excerpt(line.strip())}"
    tokens = _BLANKS_RE.split(rest.split(" #", 1)[0].strip(" \t\r"))
    tokens = [token for token in tokens if token]
    if not tokens:
        return f"missing value after {_excerpt(name[1])}"
    if _NUMBER_RE.fullmatch(tokens[0]) is None:
        return f"bad value {_excerpt(tokens[0])}"
    if len(tokens) > 1 and _NUMBER_RE.fullmatch(tokens[1]) is None:
        return f"bad timestamp {_excerpt(tokens[1])}"
    return f"unexpected text after the value: {_excerpt(' '.join(tokens[1:]))}"


def _problem(line: str) -> str | None:
    """What is wrong with a line that is neither a sample nor a header; None for a comment or
    a blank line."""
    stripped = line.strip(" \t\r")
    if not stripped:
        return None
    if stripped[0] != "#":
        return _diagnose_sample(line)
    if _HEADERISH_RE.match(line):
        return _diagnose_header(line)
    return None


def _diagnose_header(line: str) -> str:
    """Why a `# HELP` or `# TYPE` line is not a valid header."""
    parts = _BLANKS_RE.split(line.strip(" \t\r"), maxsplit=3)
    keyword = parts[1]
    if len(parts) < 3:
        return f"{keyword} line without a metric name"
    if re.fullmatch(_NAME, parts[2]) is None:
        return f"bad metric name {_excerpt(parts[2])} in {keyword} line"
    if len(parts) < 4:
        return "TYPE line without a type"
    return f"unknown metric type {_excerpt(parts[3])}"


# --- reading lines into families -----------------------------------------------------------


class _Walker:
    """Reads lines into families, keeping the state of the block being read.

    A block starts at a header (`# HELP`/`# TYPE` of a name other than the current block's) or
    at a sample that does not belong to the current block (a family of its own). Samples are
    built only for blocks that may make up a wanted family; the others are only checked.
    """

    __slots__ = (
        "allowed",
        "block",
        "collect",
        "collecting",
        "counted_lines",
        "counted_pos",
        "families",
        "header",
        "help",
        "issues",
        "kind",
        "known_labels",
        "layouts",
        "openmetrics",
        "samples",
        "text",
        "time_unit",
        "wanted",
    )

    def __init__(
        self,
        text: str,
        wanted: frozenset[str] | None,
        collect: frozenset[str] | None,
        known_labels: dict[str, dict[str, str]],
        layouts: dict[str, BlockLayout | None] | None = None,
    ) -> None:
        self.text = text
        tail = text[-64:].rstrip()
        self.openmetrics = tail.endswith("\n# EOF") or (tail == "# EOF" and len(text) < 64)
        self.time_unit = 1.0 if self.openmetrics else 1000.0  # 0.0.4 timestamps are in ms
        self.wanted = wanted
        self.collect = collect  # names of the blocks to build samples for; None: all
        self.families: dict[str, Family] = {}
        self.issues: list[ParseIssue] = []
        self.known_labels = known_labels  # label text -> labels, never handed out
        self.layouts = layouts  # block name -> its layout on the last page; None: not kept
        self.counted_pos, self.counted_lines = 0, 1  # line 1 starts at 0
        self.block: str | None = None  # the open block's name; None before the first
        self.header: str | None = None  # the open block's name when a header opened it
        self.kind = "unknown"
        self.help = ""
        self.allowed: tuple[str, ...] = ()
        self.samples: list[Sample] = []
        self.collecting = False

    def walk(self, pos: int, stop: bool) -> int:
        """Reads lines from `pos` (a line start) to the end of the page, or with `stop` up to
        the first header after the first line that opens another block. Returns where it
        stopped, with the last block read closed."""
        text = self.text
        text_end = len(text)
        find = text.find
        match_sample = _SAMPLE_RE.fullmatch
        match_value = _VALUE_RE.fullmatch
        known_labels = self.known_labels
        new = tuple.__new__
        time_unit = self.time_unit
        allowed, samples, collecting = self.allowed, self.samples, self.collecting
        first = pos
        while pos < text_end:
            end = find("\n", pos)
            if end < 0:
                end = text_end
            if text[pos] == "#":
                if self._other_line(pos, end, stop and pos != first):
                    return pos
                allowed, samples, collecting = self.allowed, self.samples, self.collecting
                pos = end + 1
                continue
            # A line that starts like one read before, `name{labels}`, is known up to its first
            # `}`: only its value is left to read (see _remember).
            brace = find("}", pos, end) + 1
            labels = known_labels.get(text[pos:brace]) if brace else None
            rest = None if labels is None else match_value(text, brace, end)
            if labels is not None and rest is not None:
                name = text[pos : find("{", pos, brace)]
                value, stamp = rest.groups()
            else:
                line = match_sample(text, pos, end)
                if line is None:
                    if self._other_line(pos, end, stop and pos != first):
                        return pos
                    allowed, samples, collecting = self.allowed, self.samples, self.collecting
                    pos = end + 1
                    continue
                name, pairs, value, stamp = line.groups()
                if pairs:
                    labels = known_labels.get(pairs) or self._labels(pairs, pos)
                    if labels is None:  # a bad line: it changes nothing
                        pos = end + 1
                        continue
                    self._remember(line, pos, brace, labels)
                else:
                    labels = _NO_LABELS
            if name not in allowed:
                self._open(name, header=False)
                allowed, samples, collecting = self.allowed, self.samples, self.collecting
            if collecting:
                timestamp = None if stamp is None else float(stamp) / time_unit
                samples.append(new(Sample, (name, labels.copy(), float(value), timestamp)))
            pos = end + 1
        self._close()
        return text_end

    def _remember(self, line: re.Match[str], pos: int, brace: int, labels: dict[str, str]) -> None:
        """Keeps a sample line's `name{labels}` (ending at `brace`, the line's first `}`) with
        its labels, when the name starts the line and the braces follow it at once. A later
        line starting with that text has the same name and labels (the label set ends at the
        first `}` outside quotes, and no `}` comes before it here), so whether it is a sample
        depends only on what follows. Such keys end with `}`, label texts never do."""
        if line.start(1) == pos and brace > line.end(2) and self.text[line.end(1)] == "{":
            self.known_labels[self.text[pos:brace]] = labels

    def read_block(self, pos: int, block: str) -> int:
        """Reads the block whose header is at `pos` like `walk(pos, stop=True)`: by its layout
        on the last page when the page lays it out alike, else line by line, learning the
        layout for the next page. A block laid out anew page after page is read line by line
        for good."""
        layouts = self.layouts
        if layouts is None:
            return self.walk(pos, stop=True)
        layout = layouts.get(block)
        if layout is None and block in layouts:  # given up on
            return self.walk(pos, stop=True)
        if layout is not None:
            end = layout.replay(self, pos)
            if end >= 0:
                return end
        strikes = 0 if layout is None or layout.hit else layout.strikes + 1
        end = self.walk(pos, stop=True)
        learned = _learn(self, pos, end, block)
        if learned is not None and strikes < _MAX_STRIKES:
            learned.strikes = strikes
        else:
            learned = None
        layouts[block] = learned
        return end

    def close_replayed(self, block: str, kind: str, help_text: str, samples: list[Sample]) -> None:
        """Closes a block read by its layout, exactly as a walk would have left it."""
        self._open(block, header=True)
        self.kind, self.help, self.samples = kind, help_text, samples
        self._close()

    def _other_line(self, pos: int, end: int, may_stop: bool) -> bool:
        """A line that is not a sample: a header, a comment, blank or garbage. True when it is a
        header that opens another block and `may_stop`: the block read so far is closed."""
        header = _HEADER_RE.fullmatch(self.text, pos, end)
        if header is None:
            self._not_a_header(pos, end)
            return False
        help_name, type_name, kind, help_text = header.groups()
        name = help_name or type_name
        if name != self.header:
            if may_stop:
                self._close()
                return True
            self._open(name, header=True)
        if help_name is None:
            self.kind = "unknown" if kind == "untyped" else kind
            self.allowed = _sample_names(name, kind, self.openmetrics)
        else:
            self.help = _help(help_text, self.openmetrics)
        return False

    def _not_a_header(self, pos: int, end: int) -> None:
        """A comment or blank line is fine; garbage is an issue."""
        line = self.text[pos:end]
        problem = _problem(line)
        if problem is not None:
            self._issue(pos, problem)

    def _open(self, name: str, header: bool) -> None:
        if self.block is not None:
            self._close()
        self.block = name
        self.header = name if header else None
        self.kind = "unknown"
        self.help = ""
        self.allowed = (name,)
        self.samples = []
        self.collecting = self.collect is None or name in self.collect

    def _close(self) -> None:
        block, kind = self.block, self.kind
        if block is None:
            return
        self.block = self.header = None
        self.allowed = ()
        if not self.collecting:
            return
        self.collecting = False
        family = _family_name(block, kind, self.openmetrics)
        if self.wanted is not None and family not in self.wanted:
            return
        samples = self.samples
        if kind == "counter" and not self.openmetrics and block == family:
            # A 0.0.4 counter typed without `_total`: its samples get the suffix.
            total = block + "_total"
            samples = [Sample(total, *sample[1:]) for sample in samples]
        known = self.families.get(family)
        if known is None:
            self.families[family] = Family(family, kind, self.help, samples)
        else:
            known.samples.extend(samples)
            known.help = known.help or self.help

    def _labels(self, pairs: str, pos: int) -> dict[str, str] | None:
        """The labels of a sample, remembered for the rest of the page (label sets repeat
        across families); None, with an issue, when a label name repeats."""
        labels = _pairs(pairs)
        if labels is None:
            names = [name for name, _ in _PAIR_RE.findall(pairs)]
            repeated = next(name for name in names if names.count(name) > 1)
            self._issue(pos, f"duplicate label {_excerpt(repeated)}")
            return None
        self.known_labels[pairs] = labels
        return labels

    def _issue(self, pos: int, message: str) -> None:
        issues = self.issues
        if len(issues) > MAX_ISSUES:
            return
        line = self.counted_lines + self.text.count("\n", self.counted_pos, pos)
        self.counted_pos, self.counted_lines = pos, line
        if len(issues) == MAX_ISSUES:
            message = f"more than {MAX_ISSUES} issues; the rest are not listed"
        issues.append(ParseIssue(line, message))


_MAX_STRIKES = 3  # layouts learned in a row that never served before a block is walked for good


class BlockLayout:
    """One wanted block of a target's page as it was laid out: its text cut at each sample's
    value, and what the walk read there (one block of header and sample lines, no issue).

    A later page whose block has the same text between values that are numbers again reads
    the same way line by line: every line keeps its kind, name, labels and help, and the
    walk stops at the same line, so only the values are new. A number is read as the sample
    pattern reads it (possessively, to its longest), so the text after it is compared exactly
    where the walk would look. Pages of one target rarely change layout, only values."""

    __slots__ = ("block", "help", "hit", "kind", "literals", "openmetrics", "samples", "strikes")

    def __init__(
        self,
        block: str,
        kind: str,
        help_text: str,
        openmetrics: bool,
        literals: tuple[str, ...],
        samples: tuple[tuple[str, dict[str, str]], ...],
    ) -> None:
        self.block = block
        self.kind = kind
        self.help = help_text
        self.openmetrics = openmetrics
        self.literals = literals  # the text around the values: one more than samples
        self.samples = samples  # (name, labels) of each value, labels never handed out
        self.hit = False  # served a page since it was learned
        self.strikes = 0  # layouts learned in a row before this one that never served

    def replay(self, walker: _Walker, pos: int) -> int:
        """Reads the block at `pos` if it is laid out alike; where it ends, or -1."""
        text = walker.text
        if walker.openmetrics != self.openmetrics:
            return -1
        startswith = text.startswith
        match_number = _NUMBER_RE.match
        literals = iter(self.literals)
        head = next(literals)
        if not startswith(head, pos):
            return -1
        pos += len(head)
        values = []
        for literal in literals:
            number = match_number(text, pos)
            if number is None:
                return -1
            pos = number.end()
            if not startswith(literal, pos):
                return -1
            values.append(number[0])
            pos += len(literal)
        if not _ends_block(text, pos, self.block):
            return -1
        new = tuple.__new__
        samples = [
            new(Sample, (name, labels.copy(), float(value), None))
            for (name, labels), value in zip(self.samples, values, strict=True)
        ]
        walker.close_replayed(self.block, self.kind, self.help, samples)
        self.hit = True
        return pos


def _ends_block(text: str, pos: int, block: str) -> bool:
    """Whether a walk of `block` stops at `pos`: the page's end, or a header of another name."""
    if pos >= len(text):
        return True
    end = text.find("\n", pos)
    header = _HEADER_RE.fullmatch(text, pos, len(text) if end < 0 else end)
    return header is not None and (header[1] or header[2]) != block


def _learn(walker: _Walker, start: int, end: int, block: str) -> BlockLayout | None:
    """The layout of `block` as just walked from its header at `start` to `end`; None unless
    the lines are its headers, its samples (without timestamps) and comments or blank lines."""
    text = walker.text
    openmetrics = walker.openmetrics
    collect = walker.collect
    if end <= start or text[end - 1] != "\n" or (collect is not None and block not in collect):
        return None
    allowed: tuple[str, ...] = (block,)
    kind, help_text = "unknown", ""
    literals: list[str] = []  # interned: the nodes of one engine serve the same text
    samples: list[tuple[str, dict[str, str]]] = []
    cut = pos = start
    while pos < end:
        line_end = text.find("\n", pos)
        header = _HEADER_RE.fullmatch(text, pos, line_end)
        sample = None if header is not None else _SAMPLE_RE.fullmatch(text, pos, line_end)
        if header is not None:  # one of the block's own: the walk stops at any other
            help_name, _, type_text, raw_help = header.groups()
            if help_name is None:
                kind = "unknown" if type_text == "untyped" else type_text
                allowed = _sample_names(block, type_text, openmetrics)
            else:
                help_text = _help(raw_help, openmetrics)
        elif sample is not None:
            name, pairs, _, stamp = sample.groups()
            labels = (walker.known_labels.get(pairs) or _pairs(pairs)) if pairs else _NO_LABELS
            if name not in allowed or stamp is not None or labels is None:
                return None
            value_start, value_end = sample.span(3)
            literals.append(intern(text[cut:value_start]))
            samples.append((name, labels))
            cut = value_end
        elif _problem(text[pos:line_end]) is not None:
            return None
        pos = line_end + 1
    literals.append(intern(text[cut:end]))
    return BlockLayout(block, kind, help_text, openmetrics, tuple(literals), tuple(samples))


def _walk_wanted(walker: _Walker, finder: _Finder) -> None:
    """Reads only the blocks that can hold wanted samples (see the module docstring)."""
    text = walker.text
    text_end = len(text)
    search = finder.later.search
    walked_until = 0  # every line before this position has been read; walks stop at headers
    found = finder.first.match(text)
    line = 0
    while True:
        if found is None:
            # from the newline before the first line unread
            found = search(text, max(walked_until - 1, 0))
            if found is None:
                return
            line = found.start() + 1
        if found[4] is None:  # a header of a block that may make up a wanted family
            walked_until = walker.read_block(line, found[1] or found[2])
        else:
            # A wanted family's name outside its blocks: read up to it, block by block, to
            # learn whether the sample stands alone or belongs to the block around it.
            while walked_until <= line:
                walked_until = walker.walk(walked_until, stop=True)
        if walked_until >= text_end:
            return
        found = None


def parse(
    text: str,
    wanted: Collection[str] | None = None,
    label_cache: dict[str, dict[str, str]] | None = None,
    layouts: dict[str, BlockLayout | None] | None = None,
) -> Page:
    """Parses a Prometheus or OpenMetrics text page; with `wanted` (family names), only those
    families are read and returned. Never raises: bad lines are listed in `Page.issues`.

    `label_cache` lets a caller that reads the same target again and again keep the parsed
    label sets across pages (a target's label sets rarely change); the caller bounds its size.
    `layouts` (with `wanted`) lets it keep how the wanted blocks were laid out, so a page laid
    out as the last one is read value by value (see `BlockLayout`); it holds a few entries per
    wanted family at most.
    """
    known_labels = {} if label_cache is None else label_cache
    if wanted is not None and not isinstance(wanted, frozenset):
        wanted = frozenset(wanted)
    if wanted is not None and not wanted:
        return Page({}, [])
    if wanted is None:
        walker = _Walker(text, None, None, known_labels)
        walker.walk(0, stop=False)
    else:
        finder = _finder(wanted)
        walker = _Walker(text, wanted, finder.blocks, known_labels, layouts)
        _walk_wanted(walker, finder)
    return Page(walker.families, walker.issues)
