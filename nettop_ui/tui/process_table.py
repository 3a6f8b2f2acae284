"""The process table: a DataTable keyed by process identity, updated in place.

Each tick `show()` diffs the new rows against what is drawn, inside one
`batch_update()`: new rows are added, gone rows removed, and the rows are put in the
model's order when that order changed. A row's cells are made only when the row is
drawn (or read, `get_cell`/`get_row`): `show` only notes the row it should now show, so
rows off screen cost no cells however often they change, and scrolling to one makes
its cells from its current values. Even then a cell is replaced (widths are fixed)
only when its text changed, not merely its raw value.

DataTable keys all its render caches on a counter that every `update_cell` and `sort`
bumps, so each tick it would render every visible cell anew (most of the CPU of a
refresh). `_render_cell` instead keeps a cell's rendered lines for as long as that
`Cell` object is on display, whatever row it has moved to.
Once the user has picked a row (arrow keys, a click, a search), the cursor follows that
process across re-sorts; until then, and after ctrl+home, it stays on the top row, so a
fresh screen always has the busiest process selected.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual._types import SegmentLines
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.geometry import Region, Size
from textual.message import Message
from textual.renderables.styled import Styled
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, Row, RowDoesNotExist, RowKey, StringKey

from nettop_ui.format import Scale
from nettop_ui.tui import columns
from nettop_ui.tui.bindings import TABLE_BINDINGS
from nettop_ui.tui.cells import Cell, make_cell
from nettop_ui.tui.columns import Column, ColumnSet
from nettop_ui.tui.model import RowData, ViewOptions, visible_columns

CELL_CACHE = 2048  # rendered cells kept: a couple of screens' worth
TICK_CACHE = 512  # lines kept by DataTable's caches, which every tick outdates


@lru_cache(maxsize=4096)
def _meta(row: int, column: int, out_of_bounds: bool = False) -> Style:
    """What DataTable puts on a cell's segments for mouse events to read."""
    if out_of_bounds:  # the blank right of the last column
        return Style.from_meta({"row": row, "column": column, "out_of_bounds": True})
    return Style.from_meta({"row": row, "column": column})


class _Drawn:
    """One row: the `RowData` it should show (`row`), its DataTable key, and the cells
    drawn from `made` (None: none made yet) in the (units, totals) `fmt`."""

    __slots__ = ("cells", "fmt", "made", "row", "row_key")

    def __init__(self, row: RowData) -> None:
        self.row = row
        self.row_key = RowKey(row.key)
        self.made: RowData | None = None
        self.cells: list[Cell] = []
        self.fmt: tuple[Scale, bool] | None = None


def _padded(col: Column, label: str) -> str:
    """The header's text: padded as the column's cells are (see `Column.pad`)."""
    return f"{label:>{col.pad}} " if col.pad else label


def _plain_key(key: StringKey | str) -> str:
    return key.value or "" if isinstance(key, StringKey) else key


def _marked(row: RowData) -> bool:
    """Whether the row's byte figures carry the backend's note (cells.NOTE_MARK)."""
    return row.process is not None and row.process.note is not None


class ProcessTable(DataTable[Cell]):
    """One row per process (or user group, or the unattributed bytes); with the host
    table's columns (`hosts.HOST_TABLE`), one row per remote host."""

    BINDINGS: ClassVar[list[BindingType]] = TABLE_BINDINGS

    class OpenRequested(Message):
        """The user asked to open the process in `key` (enter, or a click on the cursor)."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, table: ColumnSet | None = None, **kwargs: Any) -> None:
        self._table = table  # None: the process table, `columns.TABLE` (tests swap it)
        # Before DataTable's __init__, which already clears the render caches.
        self._lines: LRUCache[tuple[Any, ...], tuple[Cell, SegmentLines]] = LRUCache(CELL_CACHE)
        super().__init__(
            cursor_type="row",
            cell_padding=0,
            zebra_stripes=False,
            show_row_labels=False,
            **kwargs,
        )
        # DataTable keys these on its update counter, so each tick outdates all they hold:
        # beyond a screenful they only keep garbage alive. Its cell cache (10,000 entries)
        # still gets the header's cells, a dozen new ones every tick: left at its size it
        # grew for a quarter of an hour at one tick a second.
        for cache in (
            self._row_render_cache,
            self._row_renderable_cache,
            self._line_cache,
            self._cell_render_cache,
        ):
            cache.maxsize = TICK_CACHE
        self._drawn: dict[str, _Drawn] = {}
        self._style_now: Style | None = None  # set while rendering: see render_lines
        self._widths_now: list[int] = []
        self._order: list[str] = []  # row keys in the order of the last sort
        self._columns: list[str] = []
        self._program_width = 0
        self._format: tuple[Scale, bool] = (Scale(), False)  # (units, totals) of the cells
        self._labels: dict[str, str] = {}
        self.rows_data: list[RowData] = []
        self.follow = False  # follow the selected process (the user picked it)

    # -- columns --------------------------------------------------------------------

    @property
    def column_keys(self) -> list[str]:
        return list(self._columns)

    @property
    def column_set(self) -> ColumnSet:
        return self._table or columns.TABLE

    def layout_columns(
        self,
        width: int,
        has_gpu: bool,
        keep: tuple[str, ...] = (),
        omit: tuple[str, ...] = (),
        extra: frozenset[str] = frozenset(),
    ) -> bool:
        """Choose the columns for `width`; True when they changed (the table was rebuilt)."""
        keys, program_width = visible_columns(width, has_gpu, keep, self._table, omit, extra)
        if keys == self._columns and program_width == self._program_width:
            return False
        self._columns, self._program_width = keys, program_width
        self.clear(columns=True)
        self._drawn.clear()
        self._order = []
        self._labels.clear()
        for key in keys:
            col = self.column_set.by_key[key]
            label = _padded(col, col.label)
            self.add_column(
                Text(label, justify=col.justify), width=col.width or program_width, key=key
            )
        return True

    def _set_labels(self, opts: ViewOptions) -> None:
        for key in self._columns:
            col = self.column_set.by_key[key]
            label = col.heading(opts.totals)
            if key == opts.sort:
                label += "▼" if opts.descending else "▲"
            label = _padded(col, label)
            if self._labels.get(key) == label:
                continue
            self._labels[key] = label
            style = "bold underline" if key == opts.sort else "bold"
            self.columns[self._column_key(key)].label = Text(
                label, justify=col.justify, style=style
            )

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

    def show(self, rows: list[RowData], opts: ViewOptions) -> None:
        """Make the table show `rows` in this order; cells are made when drawn (`_fresh`)."""
        selected, cursor_row = self.selected_key, self.cursor_row
        fmt = (opts.scale, opts.totals)
        changed = fmt != self._format
        self._format = fmt
        self.rows_data = rows
        new_keys = {r.key for r in rows}
        gone = [k for k in self._drawn if k not in new_keys]
        with self.app.batch_update():
            self._drop(gone)
            added: list[str] = []
            for row in rows:
                drawn = self._drawn.get(row.key)
                if drawn is None:
                    self._drawn[row.key] = _Drawn(row)
                    added.append(row.key)
                elif drawn.row is not row:
                    drawn.row = row
                    changed = True
            had_rows = bool(self.rows)
            self._add(added)
            if changed:  # what update_cell does: outdate every rendered line, once
                self._update_count += 1
                self.refresh()
            self._set_labels(opts)
            order = [r.key for r in rows]
            if added or gone or order != self._order:
                self._reorder(order, moved_only=not (added or gone))
            if gone:
                self.hover_coordinate = self.hover_coordinate  # back within the rows left
            if added and not had_rows and self.show_cursor and self.cursor_type != "none":
                self._highlight_cursor()  # as add_row does for a table's first row
            self._restore_cursor(selected, cursor_row)

    def _drop(self, gone: list[str]) -> None:
        """Forget the rows `gone`, all at once, before `_reorder` numbers the rest:
        `remove_row` re-indexes every row for each one it removes, and has the whole
        screen laid out again."""
        if not gone:
            return
        for key in gone:
            row_key = self._drawn.pop(key).row_key
            del self.rows[row_key], self._data[row_key]
        self._require_update_dimensions = True
        self.check_idle()

    def _add(self, added: list[str]) -> None:
        """Add the rows `added` at once, without cells (see `_fresh`), before `_reorder`
        numbers them: `add_row` would also list the columns and validate the cursor
        again for each, which made hundreds of new processes a tick costly."""
        if not added:
            return
        blank: dict[ColumnKey, Any] = dict.fromkeys(self.columns)  # no cells yet
        for key in added:
            row_key = self._drawn[key].row_key
            self._data[row_key] = dict(blank)
            self.rows[row_key] = Row(row_key, 1)
        self._update_count += 1
        self._require_update_dimensions = True
        self.check_idle()

    def _reorder(self, order: list[str], moved_only: bool = False) -> None:
        """What `DataTable.sort` leaves behind, with the positions given: the rows are
        those of `order` (added and removed before), so nothing needs comparing.

        `moved_only`: the same rows as the last order, reordered; then only the
        positions that changed are written (the busiest rows trade places at the top,
        while thousands of idle ones below keep theirs)."""
        drawn, locations = self._drawn, self._row_locations
        if moved_only and len(locations) == len(order) == len(self._order):
            for i, (key, was) in enumerate(zip(order, self._order, strict=True)):
                if key is not was and key != was:
                    locations[drawn[key].row_key] = i
        else:
            self._row_locations = TwoWayDict({drawn[key].row_key: i for i, key in enumerate(order)})
        self._order = order
        self._update_count += 1
        self.refresh()

    def _fresh(self, key: str) -> None:
        """Bring row `key`'s cells up to the row it should show: a cell is made only for
        a value that changed, and kept (with its rendered lines) when it looks the same.

        Writes DataTable's cell store directly: `update_cell` would also refresh the
        widget; `show` did that already when it took the new row.
        """
        drawn = self._drawn.get(key)
        if drawn is None or (drawn.made is drawn.row and drawn.fmt == self._format):
            return
        row, made, scale = drawn.row, drawn.made, self._format[0]
        marked = _marked(row)
        redo = (
            made is None
            or drawn.fmt != self._format
            or made.kind != row.kind
            or _marked(made) != marked
        )
        data = self._data[RowKey(key)]
        index, cells = self.column_set.index, drawn.cells
        if redo:
            cells.clear()
        for n, col in enumerate(self._columns):
            i = index[col]
            value = row.values[i]
            if not redo and made is not None and value == made.values[i]:
                continue
            cell = make_cell(col, value, row.kind, scale, key, marked, self._table)
            if redo:
                cells.append(cell)
            elif cell.looks_like(cells[n]):
                cells[n].value = value  # keep the drawn cell, and its rendered lines
                continue
            else:
                cells[n] = cell
            data[ColumnKey(col)] = cell
        drawn.made, drawn.fmt = row, self._format

    def get_cell(self, row_key: RowKey | str, column_key: ColumnKey | str) -> Cell:
        self._fresh(_plain_key(row_key))
        return super().get_cell(row_key, column_key)

    def get_row(self, row_key: RowKey | str) -> list[Cell]:
        self._fresh(_plain_key(row_key))
        return super().get_row(row_key)

    def _update_dimensions(self, new_rows: Any) -> None:
        """DataTable's, less measuring every cell of every new row (it makes them all):
        here every column has a fixed width and every row is one line high.

        When only the number of rows changed, and not whether they fit, the scrollbar is
        all there is to update: setting `virtual_size` would lay the whole screen out
        again, which processes coming and going would make happen every tick.
        """
        header = self.header_height if self.show_header else 0
        width = sum(column.get_render_width(self) for column in self.columns.values())
        size, old = Size(width, self.row_count + header), self.virtual_size
        window = self.container_size.height
        if size.width == old.width and (size.height > window) == (old.height > window):
            if size != old:
                self.set_reactive(DataTable.virtual_size, size)
                self._scroll_update(size)
                self.refresh()
        else:
            self.virtual_size = size

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

    # -- rendering ------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Looked up once per render instead of once per line (an ancestor walk each).
        self._style_now = self.rich_style
        self._widths_now = [c.get_render_width(self) for c in self.ordered_columns]
        try:
            return super().render_lines(crop)
        finally:
            self._style_now, self._widths_now = None, []

    def render_line(self, y: int) -> Strip:
        """DataTable's, with the widget's style from `render_lines`."""
        if self._style_now is None or self.fixed_rows:
            return super().render_line(y)
        scroll_x, scroll_y = self.scroll_offset
        if y >= (self.header_height if self.show_header else 0):
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + self.size.width, self._style_now)

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[SegmentLines, SegmentLines]:
        """DataTable's for a body row with a row cursor, less what it looked up for every
        line although it cannot change within a render (column widths, the background
        of the widget, the header's style). Its per-row cache is left out: the line
        cache above it already holds what it would."""
        if row_key is not self._header_row_key:
            self._fresh(row_key.value or "")
        if (
            not self._widths_now
            or row_key is self._header_row_key
            or self.cursor_type != "row"
            or self.fixed_columns
            or self.zebra_stripes
            or self._should_render_row_labels
        ):
            return super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        row = self._row_locations.get(row_key)
        if row is None:
            return super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        cursor, hover = row == cursor_location.row, row == hover_location.row
        cells = [
            self._render_cell(row, column, base_style, width, cursor, hover)[line_no]
            for column, width in enumerate(self._widths_now)
        ]
        extend, _ = self._body_styles(cursor, hover, css_priority=False)
        gap = max(0, self.size.width - sum(self._widths_now))
        cells.append([Segment(" " * gap, base_style + extend + _meta(row, 0, True))])
        return [], cells

    def _body_styles(self, cursor: bool, hover: bool, css_priority: bool) -> tuple[Style, Style]:
        """DataTable's (component, post) styles for a body cell; with `css_priority`, the
        cursor's colours give way to the cell's where the CSS asks for that."""
        return self._get_styles_to_render_cell(
            False,  # not a header
            False,  # not the row label
            False,  # not the label column
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            css_priority and self.cursor_foreground_priority == "css",
            css_priority and self.cursor_background_priority == "css",
        )

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        """DataTable's rendering of one cell, cached by the `Cell` object, not the tick.

        Mirrors `DataTable._render_cell` (Textual 8.2.8) for one-line body cells; the
        row/column meta that mouse clicks read is put on afterwards, since it changes
        whenever the rows are re-sorted while the rendered text does not.
        """
        if row_index < 0 or column_index < 0 or self.fixed_rows or self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None or self.rows[row_key].height != 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = self._data[row_key][column_key]
        key = (id(cell), base_style, width, cursor, hover, self._pseudo_class_state)
        hit = self._lines.get(key)
        if hit is not None and hit[0] is cell:
            lines = hit[1]
        else:
            lines = self._draw(cell, base_style, width, cursor, hover)
            self._lines[key] = (cell, lines)  # holding `cell` keeps its id from being reused
        meta = _meta(row_index, column_index)
        return [
            [Segment(text, style + meta if style else meta) for text, style, _ in line]
            for line in lines
        ]

    def _draw(
        self, cell: Cell, base_style: Style, width: int, cursor: bool, hover: bool
    ) -> SegmentLines:
        """One body cell, without meta: directly if it can, through Rich if not."""
        component_style, post_style = self._body_styles(cursor, hover, css_priority=True)
        style = base_style + component_style
        options = self.app.console_options.update_dimensions(width, 1).update(no_wrap=True)
        if width > 0 and not self.cell_padding:
            line = cell.line(self.app.console, options, style, post_style)
            if line is not None:
                return [line]
        styled = Styled(Padding(cell, (0, self.cell_padding)), style, post_style)
        return self.app.console.render_lines(styled, options)

    def _get_offsets(self, y: int) -> tuple[RowKey, int]:
        """DataTable's, without its list of every line of every row (rebuilt each tick):
        here every row is one line high, so line y is simply row y."""
        if self.show_header:
            if y < self.header_height:
                return self._header_row_key, y
            y -= self.header_height
        row_key = self._row_locations.get_key(y)
        if row_key is None:
            raise LookupError(f"no row at line {y}")
        return row_key, 0

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._lines.clear()

    def notify_style_update(self) -> None:
        self._lines.clear()
        super().notify_style_update()

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

    def action_open_process(self) -> None:  # a host, in the host view
        key = self.selected_key
        if key is not None:
            self.post_message(self.OpenRequested(key))
