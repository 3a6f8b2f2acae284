"""The process table: a DataTable keyed by process identity, updated in place.

Each tick `show()` diffs the new rows against what is drawn, inside one
`batch_update()`: changed cells are replaced (`update_width=False`, widths are fixed),
new rows added, gone rows removed, then one sort puts the rows in the model's order.
Once the user has picked a row (arrow keys, a click, a search), the cursor follows that
process across re-sorts; until then, and after ctrl+home, it stays on the top row, so a
fresh screen always has the busiest process selected.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from nettop_ui.tui.cells import Cell, make_cell
from nettop_ui.tui.model import (
    COLUMN_BY_KEY,
    INDEX,
    RowData,
    RowKind,
    ViewOptions,
    visible_columns,
)

REBUILD_ABOVE = 200  # removing more rows than this at once: clear and re-add (remove is O(n))


class ProcessTable(DataTable[Cell]):
    """One row per process (or user group, or the unattributed bytes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_process", "Open", id="open_process"),
    ]

    class OpenRequested(Message):
        """The user asked to open the process in `key` (enter, or a click on the cursor)."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            cursor_type="row",
            cell_padding=0,
            zebra_stripes=False,
            show_row_labels=False,
            **kwargs,
        )
        self._drawn: dict[str, tuple[RowKind, tuple[Any, ...]]] = {}
        self._columns: list[str] = []
        self._program_width = 0
        self._format: tuple[bool, bool] = (False, False)  # (bits, totals) the cells were made with
        self._labels: dict[str, str] = {}
        self.rows_data: list[RowData] = []
        self.follow = False  # follow the selected process (the user picked it)

    # -- columns --------------------------------------------------------------------

    @property
    def column_keys(self) -> list[str]:
        return list(self._columns)

    def layout_columns(self, width: int, has_gpu: bool, keep: tuple[str, ...] = ()) -> bool:
        """Choose the columns for `width`; True when they changed (the table was rebuilt)."""
        columns, program_width = visible_columns(width, has_gpu, keep)
        if columns == self._columns and program_width == self._program_width:
            return False
        self._columns, self._program_width = columns, program_width
        self.clear(columns=True)
        self._drawn.clear()
        self._labels.clear()
        for key in columns:
            col = COLUMN_BY_KEY[key]
            label = f"{col.label:>7} " if key == "pid" else col.label
            justify = "left" if key == "pid" else col.justify
            self.add_column(Text(label, justify=justify), width=col.width or program_width, key=key)
        return True

    def _set_labels(self, opts: ViewOptions) -> None:
        for key in self._columns:
            col = COLUMN_BY_KEY[key]
            label = col.total_label if opts.totals else col.label
            if key == opts.sort:
                label += "▼" if opts.descending else "▲"
            if key == "pid":
                label = f"{label:>7} "
            if self._labels.get(key) == label:
                continue
            self._labels[key] = label
            style = "bold underline" if key == opts.sort else "bold"
            justify = "left" if key == "pid" else col.justify
            self.columns[self._column_key(key)].label = Text(label, justify=justify, style=style)

    def _column_key(self, key: str) -> Any:
        for ck in self.columns:
            if ck.value == key:
                return ck
        raise KeyError(key)

    # -- rows -----------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    @property
    def selected_row(self) -> RowData | None:
        key = self.selected_key
        for row in self.rows_data:
            if row.key == key:
                return row
        return None

    def select_key(self, key: str | None) -> bool:
        """Put the cursor on `key` and follow that process from now on."""
        if key is None:
            return False
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return False
        self.follow = True
        self.move_cursor(row=index)
        return True

    def _cells(self, row: RowData, bits: bool) -> list[Cell]:
        return [make_cell(c, row.values[INDEX[c]], row.kind, bits, row.key) for c in self._columns]

    def show(self, rows: list[RowData], opts: ViewOptions) -> None:
        """Make the table show `rows` in this order, touching only what changed."""
        selected, cursor_row = self.selected_key, self.cursor_row
        fmt = (opts.bits, opts.totals)
        reformat = fmt != self._format
        self._format = fmt
        self.rows_data = rows
        new_keys = {r.key for r in rows}
        gone = [k for k in self._drawn if k not in new_keys]
        with self.app.batch_update():
            if len(gone) > REBUILD_ABOVE:
                self.clear()
                self._drawn.clear()
                gone = []
            for key in gone:
                self.remove_row(key)
                del self._drawn[key]
            indexes = [(c, INDEX[c]) for c in self._columns]
            for row in rows:
                drawn = self._drawn.get(row.key)
                if drawn is None:
                    self.add_row(*self._cells(row, opts.bits), key=row.key, height=1)
                elif reformat or drawn[0] != row.kind:
                    for col, cell in zip(self._columns, self._cells(row, opts.bits), strict=True):
                        self.update_cell(row.key, col, cell, update_width=False)
                else:
                    old = drawn[1]
                    for col, i in indexes:
                        value = row.values[i]
                        if value != old[i]:
                            cell = make_cell(col, value, row.kind, opts.bits, row.key)
                            self.update_cell(row.key, col, cell, update_width=False)
                self._drawn[row.key] = (row.kind, row.values)
            self._set_labels(opts)
            position = {r.key: i for i, r in enumerate(rows)}
            self.sort("pid", key=lambda cell: position.get(cell.row, len(position)))
            self._restore_cursor(selected, cursor_row)

    def _restore_cursor(self, selected: str | None, cursor_row: int) -> None:
        if not self.row_count:
            return
        if self.follow and selected is not None:
            try:
                self.move_cursor(row=self.get_row_index(selected))
                return
            except RowDoesNotExist:
                pass  # gone (filtered out, or dropped): stay at the same height
        self.move_cursor(row=min(cursor_row, self.row_count - 1), scroll=cursor_row != 0)

    # The user moving the cursor means: follow this process.
    def action_cursor_up(self) -> None:
        self.follow = True
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self.follow = True
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self.follow = True
        super().action_page_up()

    def action_page_down(self) -> None:
        self.follow = True
        super().action_page_down()

    def action_scroll_bottom(self) -> None:
        self.follow = True
        super().action_scroll_bottom()

    def action_scroll_top(self) -> None:
        self.follow = False  # back to "the top row, whatever it is"
        super().action_scroll_top()

    def on_click(self) -> None:
        self.follow = True

    # -- actions --------------------------------------------------------------------

    def action_open_process(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.OpenRequested(key))
