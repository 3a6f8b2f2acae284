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
refresh). Here a body line is drawn by `_body_line`, which keeps each row's finished
line until the row's cells, its position, the cursor/hover or the layout change, and
`_cell_line` keeps a cell's rendered segments for as long as that `Cell` object is on
display, whatever row it has moved to.
Once the user has picked a row (arrow keys, a click, a search), the cursor follows that
process across re-sorts; until then, and after ctrl+home, it stays on the top row, so a
fresh screen always has the busiest process selected.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from rich.console import ConsoleOptions
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
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

    __slots__ = ("cells", "fmt", "line", "line_for", "made", "row", "row_key")

    def __init__(self, row: RowData) -> None:
        self.row = row
        self.row_key = RowKey(row.key)
        self.made: RowData | None = None
        self.cells: list[Cell] = []
        self.fmt: tuple[Scale, bool] | None = None
        self.line: Strip | None = None  # the row's line as last drawn (`_body_line`)
        self.line_for: tuple[Any, ...] = ()  # what that line was drawn for


def _padded(col: Column, label: str) -> str:
    """The header's text: padded as the column's cells are (see `Column.pad`)."""
    return f"{label:>{col.pad}} " if col.pad else label


def _plain_key(key: StringKey | str) -> str:
    return key.value or "" if isinstance(key, StringKey) else key


def _marked(row: RowData) -> bool:
    """Whether the row's byte figures carry the backend's note (cells.NOTE_MARK)."""
    return row.process is not None and row.process.note is not None


def _runs(lines: list[int]) -> list[tuple[int, int]]:
    """(first, count) of each run of consecutive numbers in the sorted `lines`."""
    runs: list[tuple[int, int]] = []
    for line in lines:
        if runs and sum(runs[-1]) == line:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((line, 1))
    return runs


class _Pass:
    """What one render of the table looks up once, not for every line or cell: the
    widget's style, scroll offset, column widths, cursor and hover rows."""

    __slots__ = (
        "_options",
        "_styles",
        "base",
        "column_keys",
        "cursor",
        "gap",
        "hover",
        "key",
        "pseudo",
        "scroll_y",
        "table",
        "top",
        "width",
        "widths",
        "x1",
        "x2",
    )

    def __init__(self, table: ProcessTable) -> None:
        self.table = table
        self.base = table.rich_style
        self.pseudo = table._pseudo_class_state  # set by DataTable.render_lines
        ordered = table.ordered_columns
        self.column_keys = tuple(c.key for c in ordered)
        self.widths = tuple(c.get_render_width(table) for c in ordered)
        scroll_x, self.scroll_y = table.scroll_offset
        self.width = table.size.width
        self.x1, self.x2 = scroll_x, scroll_x + self.width
        self.top = table.header_height if table.show_header else 0
        self.cursor = table.cursor_coordinate.row
        self.hover = table.hover_coordinate.row
        self.gap = max(0, self.width - sum(self.widths))
        self._styles: dict[tuple[bool, bool, bool], tuple[Style, Style]] = {}
        self._options: dict[int, ConsoleOptions] = {}
        # Everything but the row's own position, cursor and hover that a line shows.
        self.key = (
            self.base,
            self.pseudo,
            self.column_keys,
            self.widths,
            self.x1,
            self.width,
            table.show_cursor,
            table._show_hover_cursor,
            table.cursor_foreground_priority,
            table.cursor_background_priority,
            table._style_gen,
        )

    def styles(self, cursor: bool, hover: bool, css_priority: bool) -> tuple[Style, Style]:
        """DataTable's (component, post) styles for a body cell; with `css_priority`, the
        cursor's colours give way to the cell's where the CSS asks for that."""
        key = (cursor, hover, css_priority)
        found = self._styles.get(key)
        if found is None:
            t = self.table
            found = self._styles[key] = t._get_styles_to_render_cell(
                False,  # not a header
                False,  # not the row label
                False,  # not the label column
                hover,
                cursor,
                t.show_cursor,
                t._show_hover_cursor,
                css_priority and t.cursor_foreground_priority == "css",
                css_priority and t.cursor_background_priority == "css",
            )
        return found

    def options(self, width: int) -> ConsoleOptions:
        """The console options of a one-line cell `width` wide."""
        found = self._options.get(width)
        if found is None:
            found = self.table.app.console_options.update_dimensions(width, 1)
            found = self._options[width] = found.update(no_wrap=True)
        return found


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
        self._lines: LRUCache[tuple[Any, ...], tuple[Cell, list[Segment]]] = LRUCache(CELL_CACHE)
        self._style_gen = 0  # bumped when styles changed: the lines drawn before are stale
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
        self._holding: set[str] = set()  # rows whose cells are made (see `_let_go`)
        self._pass: _Pass | None = None  # set while rendering: see render_lines
        self._order: list[str] = []  # row keys in the order of the last sort
        self._columns: list[str] = []
        self._program_width = 0
        self._format: tuple[Scale, bool] = (Scale(), False)  # (units, totals) of the cells
        self._labels: dict[str, str] = {}
        self._labels_gen = 0  # bumped when a column or its label changed
        self._header: tuple[tuple[Any, ...], Strip | None] = ((), None)  # see _header_line
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
        self._labels_gen += 1
        self.clear(columns=True)
        self._drawn.clear()
        self._holding.clear()
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
            self._labels_gen += 1
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
        """Make the table show `rows` in this order; cells are made when drawn (`_fresh`).

        Only the lines on screen that show something else than before are repainted:
        a row whose values changed, a position that now holds another row (or none),
        the header when a label changed. The rest of the screen is left as it is
        drawn, which on a quiet machine is nearly all of it."""
        selected, cursor_row = self.selected_key, self.cursor_row
        fmt = (opts.scale, opts.totals)
        everything = fmt != self._format
        self._format = fmt
        self.rows_data = rows
        added: list[str] = []
        changed: list[int] = []  # positions of rows that now show other values
        for index, row in enumerate(rows):
            drawn = self._drawn.get(row.key)
            if drawn is None:
                self._drawn[row.key] = _Drawn(row)
                added.append(row.key)
            elif drawn.row is not row:
                drawn.row = row
                changed.append(index)
        gone: list[str] = []
        if len(self._drawn) != len(rows):  # (row keys are unique) some rows went
            new_keys = {r.key for r in rows}
            gone = [k for k in self._drawn if k not in new_keys]
        with self.app.batch_update():
            self._drop(gone)
            had_rows = bool(self.rows)
            self._add(added)
            labels = self._labels_gen
            self._set_labels(opts)
            before, order = self._order, [r.key for r in rows]
            if added or gone or order != before:
                self._reorder(order, moved_only=not (added or gone))
            if everything:  # what update_cell does: outdate every rendered line, once
                self._update_count += 1
                self.refresh()
            else:
                self._repaint(changed, before, order, labels != self._labels_gen)
            self._let_go()
            if gone:
                self.hover_coordinate = self.hover_coordinate  # back within the rows left
            if added and not had_rows and self.show_cursor and self.cursor_type != "none":
                self._highlight_cursor()  # as add_row does for a table's first row
            self._restore_cursor(selected, cursor_row)

    def _repaint(
        self, changed: list[int], before: list[str], order: list[str], header: bool
    ) -> None:
        """Mark dirty the lines on screen that `show` changed: the rows at `changed`
        positions, the positions whose row is not the one `before` put there, and the
        header if its labels changed. Runs of lines go as one region each."""
        top = self.header_height if self.show_header else 0
        first = round(self.scroll_y)
        last = first + max(0, self.scrollable_content_region.height - top)
        dirty = {i for i in changed if first <= i < last and self._looks_different(order[i])}
        for i in range(first, min(last, max(len(order), len(before)))):
            if i >= len(order) or i >= len(before) or order[i] != before[i]:
                dirty.add(i)
        width = self.size.width
        if header and top:
            self.refresh(Region(0, 0, width, top))
        for start, count in _runs(sorted(dirty)):
            self.refresh(Region(0, top + start - first, width, count))

    def _let_go(self) -> None:
        """Drop the cells and the line of the rows now more than a screenful away from
        the screen: they are made again if the rows come back. Only the rows near the
        screen cost memory, however many processes the table lists (exited talkers
        scroll by in thousands)."""
        height = max(1, self.scrollable_content_region.height)
        first = round(self.scroll_y) - height
        last = first + 3 * height
        for key in list(self._holding):
            drawn = self._drawn.get(key)
            at = None if drawn is None else self._row_locations.get(drawn.row_key)
            if at is not None and first <= at < last:
                continue
            self._holding.discard(key)
            if drawn is not None:
                drawn.made = drawn.fmt = drawn.line = None
                drawn.cells = []
                self._data[drawn.row_key] = {}

    def _looks_different(self, key: str) -> bool:
        """Whether row `key`, given new values, draws another line than it did: its
        cells are brought up to date now (as drawing it would), keeping those that look
        the same (`_fresh`). A new `RowData` often shows what the last one did."""
        drawn = self._drawn[key]
        if drawn.line is None:
            return True
        self._fresh(key)
        return drawn.line is None

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
        data = self._data[drawn.row_key]
        index, cells = self.column_set.index, drawn.cells
        if redo:
            cells.clear()
            drawn.line = None
            self._holding.add(key)
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
                drawn.line = None  # the row looks different now
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
            if size != old:  # the lines the rows changed on screen, `show` repainted
                self.set_reactive(DataTable.virtual_size, size)
                self._scroll_update(size)
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
        self._pass = None  # made by the first body line: see `_pass_now`
        try:
            return super().render_lines(crop)
        finally:
            self._pass = None

    def _pass_now(self) -> _Pass | None:
        """This render's `_Pass`, or None when the table is one `_body_line` cannot draw."""
        if self._pass is None:
            if (
                self.fixed_rows
                or self.fixed_columns
                or self.cursor_type != "row"
                or self.zebra_stripes
                or self.cell_padding
                or self._should_render_row_labels
            ):
                return None
            self._pass = _Pass(self)
        return self._pass

    def render_line(self, y: int) -> Strip:
        """A body line from `_body_line`; the header, and lines outside `render_lines`,
        as DataTable draws them."""
        now = self._pass_now()
        if now is None:
            return super().render_line(y)
        if y < now.top:
            return self._header_line(now, y)
        return self._body_line(now, y - now.top + now.scroll_y)

    def _header_line(self, now: _Pass, y: int) -> Strip:
        """DataTable's header line, drawn again only when a label, the layout, or the
        cursor or hover (which may light the header up) changed."""
        drawn_for = (y, self._labels_gen, now.cursor, now.hover, now.key)
        was_for, line = self._header
        if line is None or was_for != drawn_for:
            line = self._render_line(y, now.x1, now.x2, now.base)
            self._header = (drawn_for, line)
        return line

    def _body_line(self, now: _Pass, index: int) -> Strip:
        """Row `index`'s line, as DataTable's `_render_line` makes it for a one-line row
        with a row cursor, drawn again only when what it shows changed.

        The finished line is kept on the row (`_Drawn.line`) with what it was drawn
        for: its position (the mouse meta on its segments holds the row number), cursor
        and hover, and this render's `_Pass.key`; `_fresh` drops it when a cell changes.
        DataTable's own line cache cannot do this: its key holds a counter that every
        tick bumps.
        """
        row_key = self._row_locations.get_key(index)
        if row_key is None:
            return Strip.blank(now.width, now.base)
        key = row_key.value or ""
        self._fresh(key)
        drawn = self._drawn.get(key)
        if drawn is None or self.rows[row_key].height != 1:
            return self._render_line(index + now.top, now.x1, now.x2, now.base)
        cursor, hover = index == now.cursor, index == now.hover
        drawn_for = (index, cursor, hover, now.key)
        if drawn.line is not None and drawn.line_for == drawn_for:
            return drawn.line
        cells = self._data[row_key]
        segments: list[Segment] = []
        for column, (column_key, width) in enumerate(zip(now.column_keys, now.widths, strict=True)):
            segments += self._cell_line(now, cells[column_key], index, column, width, cursor, hover)
        extend = now.base + now.styles(cursor, hover, css_priority=False)[0]
        segments.append(Segment(" " * now.gap, extend + _meta(index, 0, True)))
        line = line_crop(segments, now.x1, now.x2, now.width)
        drawn.line = Strip(line).adjust_cell_length(now.width, now.base).simplify()
        drawn.line_for = drawn_for
        return drawn.line

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[SegmentLines, SegmentLines]:
        """DataTable's, with the row's cells brought up to date first (the header, and
        any line `_body_line` does not draw)."""
        if row_key is not self._header_row_key:
            self._fresh(row_key.value or "")
        return super()._render_line_in_row(
            row_key, line_no, base_style, cursor_location, hover_location
        )

    def _cell_line(
        self,
        now: _Pass,
        cell: Cell,
        row_index: int,
        column_index: int,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> list[Segment]:
        """One body cell's line, cached by the `Cell` object, not the tick.

        Mirrors `DataTable._render_cell` (Textual 8.2.8) for one-line body cells; the
        row/column meta that mouse clicks read is put on afterwards, since it changes
        whenever the rows are re-sorted while the rendered text does not.
        """
        key = (id(cell), now.base, width, cursor, hover, now.pseudo)
        hit = self._lines.get(key)
        if hit is not None and hit[0] is cell:
            line = hit[1]
        else:
            line = self._draw(now, cell, width, cursor, hover)
            self._lines[key] = (cell, line)  # holding `cell` keeps its id from being reused
        meta = _meta(row_index, column_index)
        return [Segment(text, style + meta if style else meta) for text, style, _ in line]

    def _draw(self, now: _Pass, cell: Cell, width: int, cursor: bool, hover: bool) -> list[Segment]:
        """One body cell, without meta: directly if it can, through Rich if not."""
        component_style, post_style = now.styles(cursor, hover, css_priority=True)
        style = now.base + component_style
        options = now.options(width)
        if width > 0:
            line = cell.line(self.app.console, options, style, post_style)
            if line is not None:
                return line
        styled = Styled(Padding(cell, (0, 0)), style, post_style)
        lines = self.app.console.render_lines(styled, options)
        return lines[0] if lines else []

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
        self._style_gen += 1

    def notify_style_update(self) -> None:
        self._lines.clear()
        self._style_gen += 1
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
