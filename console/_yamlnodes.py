"""YAML as a tree of marked nodes, read defensively, and typed reads that report line:col.

Nothing is constructed blindly: the file is size-capped and checked for text before the parser
sees it, nesting is capped, and alias expansion is measured on the node graph (without
expanding it) before anyone walks it, so a "billion laughs" file is refused at once.
`NodeReader` gives a schema walker typed reads (mappings with `<<` merges and unknown keys,
lists, text, numbers) that report each problem at its node. Nothing here knows the fleet
schema: `console.config` does.
"""

from __future__ import annotations

import codecs
import difflib
import math
import os
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TypeVar

import yaml
from yaml.composer import ComposerError
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 100  # nesting levels, counted through aliases too
MAX_ALIAS_EXPANSIONS = 1_000_000  # nodes that aliases add beyond the ones written in the file

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TEXT_LIKE_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp")  # a date: as written
_CONSTRUCTOR = SafeConstructor()
_VALUE_TAGS = ("null", "bool", "int", "float")

Report = Callable[[Node, str], None]  # (where, message)
T = TypeVar("T")
Read = Callable[[Node, str], T | None]  # reads a value at a path; None once it reported why
Entries = dict[str, tuple[Node, Node]]  # key -> (key node, value node)


class YamlProblem(Exception):
    """A file that yields no node tree: unreadable, too big, not text, or not YAML."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


def position(where: Node | Mark | None) -> tuple[int, int]:
    """1-based (line, column) of a node or mark; (1, 1) when the parser gave none."""
    mark = where.start_mark if isinstance(where, Node) else where
    if mark is None:
        return 1, 1
    return mark.line + 1, mark.column + 1


def load_tree(path: str | Path) -> Node | None:
    """The file's single YAML document as a node tree (None when it holds no document)."""
    root = _compose(_read_text(path))
    if root is not None:
        _check_expansion(root)
    return root


def _read_text(path: str | Path) -> str:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_BYTES:
                raise _too_big(size)
            data = handle.read(MAX_BYTES + 1)  # fstat may lie for special files
    except OSError as exc:
        raise YamlProblem(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise _too_big(len(data))
    nul = data.find(b"\x00")
    if nul >= 0:
        raise YamlProblem(f"not a text file: NUL byte at offset {nul}", *_byte_position(data, nul))
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise YamlProblem(
            f"not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset}",
            *_byte_position(data, offset),
        ) from None
    control = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if control is not None:
        index = control.start()
        offset = start + len(text[:index].encode("utf-8"))
        raise YamlProblem(
            f"not a text file: control character U+{ord(text[index]):04X} at offset {offset}",
            *_byte_position(data, offset),
        )
    return text


def _too_big(size: int) -> YamlProblem:
    return YamlProblem(
        f"file is {size} bytes, over the {MAX_BYTES // 2**20} MiB limit: refusing to read it"
    )


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


class _DepthCappedLoader(yaml.SafeLoader):
    """SafeLoader whose (recursive) composer refuses nesting deeper than MAX_DEPTH.

    Only used without libyaml, whose parser stops at 1,000 levels itself; the node graph's
    own depth check (`_check_expansion`) then applies MAX_DEPTH to both.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# libyaml composes a 5,000-node fleet about four times faster than the pure-Python parser
_LOADER: type[yaml.SafeLoader | yaml.CSafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else _DepthCappedLoader
)


def _compose(text: str) -> Node | None:
    loader = _LOADER(text)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or ""
        if exc.context and exc.context_mark and position(exc.context_mark) != position(mark):
            line, col = position(exc.context_mark)
            message = f"{exc.context} (line {line}, column {col}): {message}"
        elif exc.context:
            message = f"{exc.context}: {message}"
        if mark is not None and _char_at(text, mark) == "\t":
            message += " (a tab: indent YAML with spaces)"
        raise YamlProblem(message, *position(mark)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not YAML: {exc}") from None
    finally:
        loader.dispose()


def _char_at(text: str, mark: Mark) -> str:
    lines = text.split("\n", mark.line + 1)
    line = lines[mark.line] if mark.line < len(lines) else ""
    return line[mark.column] if mark.column < len(line) else ""


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _check_expansion(root: Node) -> None:
    """Refuse alias cycles, alias chains past MAX_DEPTH and more than MAX_ALIAS_EXPANSIONS.

    Counts, without expanding anything, how many nodes each node stands for once its aliases
    are followed (a memoised post-order walk over the distinct nodes, iterative so a deep
    graph cannot exhaust the stack).
    """
    expanded: dict[int, int] = {}  # id(node) -> nodes it stands for, aliases followed
    by_id: dict[int, Node] = {}
    path: list[tuple[Node, Iterator[Node]]] = [(root, _children(root))]
    on_path = {id(root)}
    while path:
        node, pending = path[-1]
        child = next(pending, None)
        if child is None:
            path.pop()
            on_path.discard(id(node))
            expanded[id(node)] = 1 + sum(expanded[id(each)] for each in _children(node))
            by_id[id(node)] = node
        elif id(child) in on_path:
            raise YamlProblem("recursive alias: a node contains itself", *position(child))
        elif id(child) not in expanded:
            if len(path) >= MAX_DEPTH:
                raise YamlProblem(f"nesting deeper than {MAX_DEPTH} levels", *position(child))
            path.append((child, _children(child)))
            on_path.add(id(child))
    added = expanded[id(root)] - len(expanded)
    if added > MAX_ALIAS_EXPANSIONS:
        # point at the innermost node that alone passes the cap: the start of the blow-up
        culprit = min(
            (by_id[key] for key, count in expanded.items() if count > MAX_ALIAS_EXPANSIONS),
            key=lambda each: expanded[id(each)],
        )
        raise YamlProblem(
            f"too many alias expansions (> {MAX_ALIAS_EXPANSIONS}): refusing a file whose "
            f"aliases expand to {_magnitude(expanded[id(root)])} nodes",
            *position(culprit),
        )


def _magnitude(count: int) -> str:
    digits = str(count)
    return digits if len(digits) <= 12 else f"about 10^{len(digits) - 1}"


def _mapping_entries(node: MappingNode, report: Report) -> list[tuple[str, Node, Node]]:
    """(key, key node, value node) in file order, with `<<` merge keys applied.

    Keys written in the mapping win over merged ones, and an earlier merged mapping wins over
    a later one (YAML's merge rule). Duplicate written keys and non-scalar keys are reported.
    """
    written: dict[str, tuple[Node, Node]] = {}
    merged: dict[str, tuple[Node, Node]] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            for source in _merge_sources(value_node, report):
                for key, merged_key, merged_value in _mapping_entries(source, report):
                    merged.setdefault(key, (merged_key, merged_value))
        elif not isinstance(key_node, ScalarNode):
            report(key_node, "a key must be plain text, not a list or mapping")
        elif key_node.value in written:
            first_line, _ = position(written[key_node.value][0])
            report(key_node, f"duplicate key '{key_node.value}' (first at line {first_line})")
        else:
            written[key_node.value] = (key_node, value_node)
    entries = [(key, *pair) for key, pair in written.items()]
    entries += [(key, *pair) for key, pair in merged.items() if key not in written]
    return entries


def _merge_sources(value: Node, report: Report) -> list[MappingNode]:
    sources: list[Node] = value.value if isinstance(value, SequenceNode) else [value]
    mappings = [source for source in sources if isinstance(source, MappingNode)]
    if len(mappings) < len(sources):
        report(value, "'<<' merges a mapping or a list of mappings (e.g. <<: *defaults)")
    return mappings


def _scalar_value(node: ScalarNode) -> object:
    """The plain value a scalar stands for: None, bool, int, float or str.

    Raises ValueError for any other tag (`!!binary`, `!custom`): config holds plain data only.
    """
    if node.tag in _TEXT_LIKE_TAGS:
        return node.value
    for name in _VALUE_TAGS:
        tag = f"tag:yaml.org,2002:{name}"
        if node.tag == tag:
            try:
                return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
            except (ValueError, KeyError):  # an explicit tag on text it cannot read: !!int x
                raise ValueError(f"'{node.value}' is not a valid {_short(node.tag)}") from None
    raise ValueError(f"unsupported tag '{_short(node.tag)}'")


def _short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def describe(node: Node) -> str:
    """What a node holds, for messages: "a mapping", "the number 3", "the string 'x'"."""
    if not isinstance(node, ScalarNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    try:
        value = _scalar_value(node)
    except ValueError:
        return f"{node.value!r} tagged {_short(node.tag)}"
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {text}"
    if isinstance(value, int | float):
        return f"the number {text}"
    return f"the string {text!r}"


def did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class NodeReader:
    """Typed reads from a node tree that report what is wrong where, for a schema walker.

    Each reader takes (node, path), reports a bad value with the node's position and returns
    None, so one walk finds every problem; `problems` holds (line, col, message), in order.
    Paths name the place for people: `pools[0].nodes[1].url`.
    """

    def __init__(self) -> None:
        self.problems: dict[tuple[int, int, str], None] = {}  # an ordered set

    def report(self, where: Node, message: str) -> None:
        self.report_at(*position(where), message)

    def report_at(self, line: int, col: int, message: str) -> None:
        self.problems[line, col, message] = None  # once: a merged mapping is read per use

    def entries(self, node: Node, path: str, known: Collection[str], what: str) -> Entries | None:
        """A mapping's known keys; unknown keys, duplicates and wrong types are reported."""
        if not isinstance(node, MappingNode):
            self.report(node, f"{path or 'top level'}: expected {what}, got {describe(node)}")
            return None
        found: Entries = {}
        for key, key_node, value_node in _mapping_entries(
            node, lambda where, message: self.report(where, f"{path or 'top level'}: {message}")
        ):
            if key in known:
                found[key] = (key_node, value_node)
            else:
                self.unknown_key(key, key_node, path, known)
        return found

    def unknown_key(self, key: str, key_node: Node, path: str, known: Collection[str]) -> None:
        where = f"in {path}" if path else "at top level"
        self.report(key_node, f"unknown key '{key}' {where}{did_you_mean(key, known)}")

    @staticmethod
    def given(entries: Entries, key: str) -> Node | None:
        """The value node of a key that is present and not null."""
        pair = entries.get(key)
        return None if pair is None or is_null(pair[1]) else pair[1]

    def optional(self, entries: Entries, path: str, key: str, read: Read[T]) -> T | None:
        value = self.given(entries, key)
        return None if value is None else read(value, f"{path}.{key}")

    def required(
        self, entries: Entries, node: Node, path: str, key: str, read: Read[T]
    ) -> T | None:
        if key not in entries:
            self.report(node, f"{path}: missing '{key}'")
            return None
        if is_null(entries[key][1]):
            self.report(entries[key][1], f"{path}.{key}: missing value")
            return None
        return read(entries[key][1], f"{path}.{key}")

    def items(self, entries: Entries, path: str, key: str, what: str) -> list[Node] | None:
        """The items of a list-valued key; None when absent, null or not a list (reported)."""
        value = self.given(entries, key)
        if value is None:
            return None
        if not isinstance(value, SequenceNode):
            self.report(
                value, f"{join_path(path, key)}: expected a list of {what}, got {describe(value)}"
            )
            return None
        return list(value.value)

    def required_items(
        self, entries: Entries, node: Node, path: str, key: str, need: str
    ) -> list[Node]:
        """The items of a list that must hold at least one; `need` says what it is for."""
        items = self.items(entries, path, key, key)
        if items is None and self.given(entries, key) is None:
            self.report(node, f"{path}: missing '{key}': {need}")
        elif items == []:
            self.report(entries[key][1], f"{path}.{key}: empty: {need}")
        return items or []

    def scalar(self, node: Node, path: str, expected: str) -> object:
        """A scalar's plain value, or None after reporting a list, mapping or odd tag."""
        if isinstance(node, ScalarNode):
            try:
                return _scalar_value(node)
            except ValueError as exc:
                self.report(node, f"{path}: {exc}")
                return None
        self.report(node, f"{path}: expected {expected}, got {describe(node)}")
        return None

    def text(self, node: Node, path: str) -> str | None:
        value = self.scalar(node, path, "text")
        if value is None:
            return None
        if isinstance(value, bool) or not node.value:  # `01` or `3.10` stays the text written
            self.report(node, f"{path}: expected text, got {describe(node)}")
            return None
        return str(node.value)

    def checked(self, node: Node, path: str, what: str, check: Callable[[str], str]) -> str | None:
        text = self.text(node, path)
        if text is None:
            return None
        try:
            return check(text)
        except ValueError as exc:
            self.report(node, f"{path}: bad {what} '{text}': {exc}")
            return None

    def number(self, node: Node, path: str) -> float | None:
        value = self.scalar(node, path, "a number")
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.report(node, f"{path}: expected a number, got {describe(node)}")
            return None
        return float(value)

    def within(
        self, node: Node, path: str, value: float | None, rule: str, ok: Callable[[float], bool]
    ) -> float | None:
        if value is not None and not ok(value):
            self.report(node, f"{path}: {value:g} is out of range: must be {rule}")
            return None
        return value

    def flag(self, node: Node, path: str) -> bool | None:
        value = self.scalar(node, path, "true or false")
        if value is not None and not isinstance(value, bool):
            self.report(node, f"{path}: expected true or false, got {describe(node)}")
            return None
        return None if value is None else bool(value)

    def count(self, node: Node, path: str) -> int | None:
        value = self.scalar(node, path, "a whole number >= 0")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.report(node, f"{path}: expected a whole number >= 0, got {describe(node)}")
            return None
        return value
