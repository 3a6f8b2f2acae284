"""Table cells: a raw, sortable value that renders as a `rich.text.Text`.

A plain `str` in a DataTable cell is parsed as markup (`[kworker/0:1]` breaks it), so
every cell is a `Cell`, whose text is built with `Text(...)` from `safe_text`. What a
cell says comes from its column's formatter (columns.py); this module draws it.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, OverflowMethod
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from nettop_ui.format import Scale
from nettop_ui.tui import columns
from nettop_ui.tui.columns import NOTE_MARK as NOTE_MARK
from nettop_ui.tui.columns import Program
from nettop_ui.tui.columns import sparkline as sparkline
from nettop_ui.tui.model import RowKind
from nettop_ui.tui.safe import safe_text

ROW_STYLES: dict[RowKind, str] = {
    "proc": "",
    "exited": "dim",
    "group": "bold",
    "unattributed": "italic",
    "host": "",
    "local": "dim",  # the host view's loopback and own addresses (`L`)
    "folded": "italic",
}


class Cell:
    """A table cell: `value` (raw, for sorting and diffing) and `text` (what is drawn)."""

    __slots__ = ("_text", "row", "value")

    def __init__(self, value: Any, text: Text | None, row: str = "") -> None:
        self.value = value
        self._text = text
        self.row = row  # set on the PID cell: the row key, for positional sorting

    @property
    def text(self) -> Text:
        assert self._text is not None
        return self._text

    def looks_like(self, other: Cell) -> bool:
        """True when `other` is known to draw exactly as this cell does."""
        return False

    def line(
        self, console: Console, options: ConsoleOptions, style: Style, post: Style
    ) -> list[Segment] | None:
        """The cell drawn on one line as DataTable draws it; None if it would take more.

        The segments `console.render_lines(Styled(Padding(cell, 0), style, post))` gives
        for one line `options.max_width` wide (tests/test_tui_render.py checks), with
        the Text rendered straight rather than through Padding, Styled and two passes
        of line splitting: several times cheaper.
        """
        text = self.text
        if "\n" in text.plain or "\t" in text.plain or text.end not in ("", "\n"):
            return None
        segments = list(console.render(text, options))
        if text.end:
            segments.pop()  # the "\n" that ends the line
        line = Segment.adjust_line_length(segments, options.max_width, Style.null(), pad=True)
        return _styled(line, style, post)

    def __rich__(self) -> Text:
        return self.text

    def __str__(self) -> str:
        return self.text.plain

    def __repr__(self) -> str:
        return f"Cell({self.value!r}, {self.text.plain!r})"

    def _key(self) -> tuple[bool, Any]:
        return (self.value is None, self.value if self.value is not None else 0)

    def __lt__(self, other: Cell) -> bool:
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value) if not isinstance(self.value, tuple | list) else 0


class LineCell(Cell):
    """A one-line cell held as a plain string and a style; its `Text` is made when drawn.

    The process table holds a cell for every column of every process, but draws only the
    rows on screen (and caches those renders): a `Text` kept per cell would be thousands
    more objects to build each tick and for the garbage collector to walk.
    """

    __slots__ = ("justify", "overflow", "plain", "style")

    def __init__(
        self,
        value: Any,
        plain: str,
        style: str = "",
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        row: str = "",
    ) -> None:
        super().__init__(value, None, row)
        self.plain, self.style, self.justify, self.overflow = plain, style, justify, overflow

    @property
    def text(self) -> Text:
        return Text(
            self.plain,
            style=self.style,
            justify=self.justify,
            overflow=self.overflow,
            no_wrap=True,
            end="",
        )

    def looks_like(self, other: Cell) -> bool:
        return (
            isinstance(other, LineCell)
            and self.plain == other.plain
            and self.style == other.style
            and self.justify == other.justify
            and self.overflow == other.overflow
        )

    def __str__(self) -> str:
        return self.plain

    def line(
        self, console: Console, options: ConsoleOptions, style: Style, post: Style
    ) -> list[Segment] | None:
        """As `Cell.line`, without making a Text: about ten times cheaper than Rich."""
        plain, justify, width = self.plain, self.justify, options.max_width
        if width <= 0 or "\t" in plain or "\n" in plain or max(len(plain), cell_len(plain)) > width:
            return super().line(console, options, style, post)  # to be cropped: Rich's way
        if justify == "right":
            plain = plain.rstrip()
            plain = " " * (width - cell_len(plain)) + plain
        elif justify == "left":
            plain += " " * (width - cell_len(plain))
        elif justify not in (None, "default"):
            return super().line(console, options, style, post)
        own = console.get_style(self.style) if self.style else None
        segments = [Segment(plain, own)] if plain or own is None else []  # as Text.render
        gap = width - cell_len(plain)
        if gap:
            segments.append(Segment(" " * gap, Style.null()))
        return _styled(segments, style, post)


class ProgramCell(Cell):
    """The PROGRAM cell: its `Text` (tree prefix, bold name, dim arguments) made when drawn."""

    __slots__ = ("style",)

    def __init__(self, value: Program, style: str) -> None:
        super().__init__(value, None)
        self.style = style

    @property
    def text(self) -> Text:
        return program_text(self.value, self.style)

    def looks_like(self, other: Cell) -> bool:
        return (
            isinstance(other, ProgramCell)
            and self.value == other.value
            and self.style == other.style
        )


def _styled(segments: list[Segment], style: Style, post: Style) -> list[Segment]:
    """What textual's Styled does to each segment: `style` under it, `post` over it."""
    if style:
        segments = [Segment(text, style + s) for text, s, _ in segments]
    if post:
        segments = [Segment(text, s + post if s else post) for text, s, _ in segments]
    return segments


def program_text(program: Program, style: str) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis", end="", style=style)
    if program.prefix:
        text.append(program.prefix, style="dim")
        if program.prefix.strip():
            text.append(program.marker or " ", style="bold")
    elif program.marker:
        text.append(program.marker, style="bold")
    text.append(safe_text(program.name, 120), style="bold" if not style else "")
    if program.args:
        text.append(" ")
        text.append(safe_text(program.args, 240), style="dim")
    return text


def make_cell(
    column: str,
    value: Any,
    kind: RowKind,
    scale: Scale,
    row: str = "",
    marked: bool = False,
    table: columns.ColumnSet | None = None,
) -> Cell:
    """The cell for one raw value in `column` of `table` (default: the process table;
    `row`: the row key, which sorting reads; `marked`: the row's byte figures carry a
    backend's note)."""
    col = (table or columns.TABLE).by_key[column]
    apart = kind in ("unattributed", "folded")  # rows that are no process or host
    if value is None and (apart or (kind == "group" and col.combine is None)):
        return LineCell(None, "", row=row)  # not applicable rather than unknown
    style = ROW_STYLES[kind]
    if isinstance(value, Program):
        return ProgramCell(value, style)
    text = col.text(value, scale, marked)
    if col.pad:  # padded by hand: the trailing gap before left-aligned columns must survive
        return LineCell(value, f"{text:>{col.pad}} ", style or col.style, row=row)
    if col.justify == "right":
        return LineCell(value, text, style or col.style, justify="right", row=row)
    return LineCell(value, text, style or col.style, overflow="ellipsis", row=row)
