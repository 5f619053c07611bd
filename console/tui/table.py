"""A DataTable that takes whole snapshots and changes only what changed, where it shows.

Rows are keyed by name. Applying a snapshot removes and adds only the rows that left or came
(a filter) and reorders by sorting the existing rows. Cells are formatted, and rewritten where
their text changed, only for the rows in view: a row scrolled out of view keeps the status it
came with and is brought up to date when it scrolls back in. All of it happens inside one
batch update, so a 1,000-node snapshot costs one repaint of the ~50 rows a terminal shows.

DataTable keys its render caches by a count of every change to the table, so one changed
cell would render every visible row again; this table keeps each row's rendered line until
that row, its place or its look changes. The cursor stays on the same row (by key), and the
scroll position is left where the user put it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from console.model import NodeStatus, PoolStatus
from console.tui.rows import Cell, Column, cells

Status = NodeStatus | PoolStatus
RenderedRow = tuple[Any, Any]  # DataTable's (fixed cells, scrollable cells) lines of a row


class LiveTable(DataTable[Cell]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._columns: tuple[Column[Any], ...] = ()
        self._palette: Mapping[str, str] = {}
        self._statuses: dict[str, Status] = {}  # the newest status of each row
        # what each row shows, and the status it was drawn from (None: redraw when in view)
        self._drawn: dict[str, tuple[Status | None, tuple[Cell, ...]]] = {}
        self._order: list[str] = []
        self._wanted_cursor: str | None = None  # kept across a change of columns
        self._rendered: dict[RowKey, tuple[object, Hashable, RenderedRow]] = {}

    def set_columns(self, columns: Sequence[Column[Any]]) -> bool:
        """Show these columns; True when they changed (every row is then added again)."""
        if tuple(columns) == self._columns:
            return False
        cursor = self.cursor_key
        self.clear(columns=True)
        for column in columns:
            label = column.label.rjust(column.width) if column.right else column.label
            self.add_column(label, width=column.width, key=column.key)
        self._columns = tuple(columns)
        self._statuses, self._drawn, self._order = {}, {}, []
        self._wanted_cursor = cursor
        return True

    @property
    def cursor_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, rows: Sequence[Status], palette: Mapping[str, str]) -> None:
        """Make the table show exactly `rows`, in that order, in `palette`'s colours."""
        if palette is not self._palette:
            self._palette = palette
            self._drawn = {key: (None, shown) for key, (_, shown) in self._drawn.items()}
        cursor = self.cursor_key or self._wanted_cursor
        wanted = [row.name for row in rows]
        with self.app.batch_update():
            for key in self._statuses.keys() - set(wanted):
                self.remove_row(key)
                del self._statuses[key], self._drawn[key]
                self._rendered.pop(RowKey(key), None)
            for row in rows:
                if row.name not in self._drawn:  # a new row is drawn whether in view or not
                    drawn = cells(row, self._columns, palette)
                    self.add_row(*drawn, key=row.name)
                    self._drawn[row.name] = (row, drawn)
                self._statuses[row.name] = row
            if self._order != wanted:
                rank = {key: index for index, key in enumerate(wanted)}
                self.sort(self._columns[0].key, key=lambda name: rank[str(name)])
                self._order = wanted
            if cursor is not None and cursor in self._statuses:
                row_index = self.get_row_index(cursor)
                if row_index != self.cursor_row:
                    self.move_cursor(row=row_index, scroll=False)
            self._wanted_cursor = None
            self._draw_in_view()

    def _draw_in_view(self) -> None:
        """Bring the rows in view up to their newest status, changed cells only."""
        top = int(self.scroll_y)
        for key in self._order[top : top + self.size.height]:
            status = self._statuses[key]
            shown, old = self._drawn[key]
            if shown is status:
                continue
            new = cells(status, self._columns, self._palette)
            for column, before, after in zip(self._columns, old, new, strict=True):
                if before != after or _style(before) != _style(after):
                    self.update_cell(key, column.key, after)
            self._drawn[key] = (status, new)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._order:
            with self.app.batch_update():
                self._draw_in_view()

    def _on_resize(self, event: Any) -> None:
        super()._on_resize(event)
        self._draw_in_view()

    # --- rendering: each row's line kept until the row changes ------------------------

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> RenderedRow:
        drawn = self._drawn.get(str(row_key.value))
        if row_key is self._header_row_key or drawn is None:
            return super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        index = self._row_locations.get(row_key)
        assert index is not None  # a row drawn is a row placed
        shown = drawn[1]
        look = (
            index,  # cells carry their row index for the mouse
            self.size.width,
            base_style,
            index == cursor_location.row,
            index == hover_location.row and self._show_hover_cursor,
            self.show_cursor,
            self._pseudo_class_state,
        )
        kept = self._rendered.get(row_key)
        if kept is not None and kept[0] is shown and kept[1] == look:  # cells by identity
            return kept[2]
        rendered = self._render_row(shown, index, base_style, look[3], look[4])
        self._rendered[row_key] = (shown, look, rendered)
        return rendered

    def _render_row(
        self, shown: tuple[Cell, ...], index: int, base: Style, cursor: bool, hover: bool
    ) -> RenderedRow:
        """One body row as DataTable lays it out (padded cells, then the rest of the width),
        rendered straight to segments: Rich's generic cell rendering costs ~0.1 ms a cell,
        and a terminal shows some 600 cells that change every second."""
        component, post = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        console = self.app.console
        padding = " " * self.cell_padding
        cells: list[list[Segment]] = []
        used = 0
        for number, (cell, column) in enumerate(zip(shown, self._columns, strict=True)):
            width = self.ordered_columns[number].get_render_width(self)
            used += width
            text = cell.copy() if isinstance(cell, Text) else Text(cell)
            content = width - 2 * self.cell_padding
            if column.right:
                text.align("right", content)
            else:
                text.truncate(content, pad=True)
            meta = Style.from_meta({"row": index, "column": number})
            segments = [Segment(padding), *text.render(console), Segment(padding)]
            cells.append(list(Segment.apply_style(segments, base + component + meta, post)))
        rest = Style.from_meta({"row": index, "column": 0, "out_of_bounds": True})
        cells.append([Segment(" " * max(0, self.size.width - used), base + component + rest)])
        return [], cells

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._rendered.clear()


def _style(cell: Cell) -> object:
    return getattr(cell, "style", None)
