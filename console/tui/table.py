"""A DataTable that takes whole snapshots and changes only what changed.

Rows are keyed by name. Applying a snapshot removes and adds only the rows that left or came
(a filter), rewrites only the cells whose text changed, and reorders by sorting the existing
rows; all of it inside one batch update, so a 1,000-node snapshot costs one repaint. The
cursor stays on the same row (by key), and the scroll position is left where the user put it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable

from console.tui.rows import Cell, Column

RowCells = tuple[str, tuple[Cell, ...]]  # (key, cells in column order)


class LiveTable(DataTable[Cell]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._keys: tuple[str, ...] = ()  # the columns shown
        self._rows: dict[str, tuple[Cell, ...]] = {}
        self._order: list[str] = []
        self._wanted_cursor: str | None = None  # kept across a change of columns

    def set_columns(self, columns: Sequence[Column[Any]]) -> bool:
        """Show these columns; True when they changed (every row is then added again)."""
        keys = tuple(c.key for c in columns)
        if keys == self._keys:
            return False
        cursor = self.cursor_key
        self.clear(columns=True)
        for column in columns:
            label = column.label.rjust(column.width) if column.right else column.label
            self.add_column(label, width=column.width, key=column.key)
        self._keys, self._rows, self._order = keys, {}, []
        self._wanted_cursor = cursor
        return True

    @property
    def cursor_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, rows: Sequence[RowCells]) -> None:
        """Make the table show exactly `rows`, in that order."""
        cursor = self.cursor_key or self._wanted_cursor
        wanted = [key for key, _ in rows]
        with self.app.batch_update():
            for key in set(self._rows) - set(wanted):
                self.remove_row(key)
                del self._rows[key]
            for key, cells in rows:
                old = self._rows.get(key)
                if old is None:
                    self.add_row(*cells, key=key)
                else:
                    for column, before, after in zip(self._keys, old, cells, strict=True):
                        if before != after or getattr(before, "style", None) != getattr(
                            after, "style", None
                        ):
                            self.update_cell(key, column, after)
                self._rows[key] = cells
            if self._order != wanted:
                rank = {key: index for index, key in enumerate(wanted)}
                self.sort(self._keys[0], key=lambda name: rank[str(name)])
                self._order = wanted
            if cursor is not None and cursor in self._rows:
                row = self.get_row_index(cursor)
                if row != self.cursor_row:
                    self.move_cursor(row=row, scroll=False)
            self._wanted_cursor = None
