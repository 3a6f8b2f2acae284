"""Table cells: a raw, sortable value that renders as a `rich.text.Text`.

A plain `str` in a DataTable cell is parsed as markup (`[kworker/0:1]` breaks it), so
every cell is a `Cell`, whose text is built with `Text(...)` from `safe_text`.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text

from nettop_ui.format import human_bytes
from nettop_ui.tui.model import Program, RowKind
from nettop_ui.tui.safe import safe_text

BLOCKS = " ▁▂▃▄▅▆▇█"
SPARK_WIDTH = 10
UNKNOWN = "-"

ROW_STYLES: dict[RowKind, str] = {
    "proc": "",
    "exited": "dim",
    "group": "bold",
    "unattributed": "italic",
}


class Cell:
    """A table cell: `value` (raw, for sorting and diffing) and `text` (what is drawn)."""

    __slots__ = ("row", "text", "value")

    def __init__(self, value: Any, text: Text, row: str = "") -> None:
        self.value = value
        self.text = text
        self.row = row  # set on the PID cell: the row key, for positional sorting

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


def sparkline(
    values: tuple[float, ...] | list[float], width: int = SPARK_WIDTH, peak: float | None = None
) -> str:
    """Unicode blocks, newest on the right, scaled to `peak` (default: the series' own).

    Each character is the peak of its share of the points; an all-zero series is blank,
    any traffic at all shows at least the lowest block.
    """
    if not values or width <= 0:
        return " " * max(width, 0)
    n = len(values)
    per = max(1, math.ceil(n / width))
    buckets: list[float] = []
    end = n
    while end > 0 and len(buckets) < width:
        chunk = [v for v in values[max(0, end - per) : end] if v == v]
        buckets.append(max(chunk) if chunk else 0.0)
        end -= per
    buckets.reverse()
    peak = peak if peak is not None else max(buckets)
    if peak <= 0:
        return " " * width
    chars = []
    for b in buckets:
        if b <= 0:
            chars.append(" ")
        else:
            chars.append(BLOCKS[max(1, min(8, round(8 * min(b, peak) / peak)))])
    return " " * (width - len(chars)) + "".join(chars)


def _number(value: Any, text: str, style: str) -> Cell:
    return Cell(value, Text(text, style=style, justify="right", no_wrap=True, end=""))


def fmt_bytes(value: float | None, bits: bool = False) -> str:
    return human_bytes(value, bits)


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


def make_cell(column: str, value: Any, kind: RowKind, bits: bool, row: str = "") -> Cell:
    """The cell for one raw value in one column (`row`: the row key, for the PID cell)."""
    style = ROW_STYLES[kind]
    if value is None and (kind == "unattributed" or (kind == "group" and column == "pid")):
        return Cell(None, Text("", end=""), row)  # not applicable rather than unknown
    if column == "program":
        return Cell(value, program_text(value, style))
    if column == "user":
        text = Text(
            safe_text(value, 8) if value is not None else UNKNOWN,
            style=style,
            no_wrap=True,
            overflow="ellipsis",
            end="",
        )
        if kind == "unattributed":
            text = Text("", end="")
        return Cell(value, text)
    if column == "pid":
        # Padded by hand: the trailing gap before the left-aligned columns must survive.
        text = Text(f"{value:>7} ", style=style, no_wrap=True, end="")
        return Cell(value, text, row)
    if column in ("up", "down", "total"):
        return _number(value, fmt_bytes(value, bits), style)
    if column == "spark":
        text = Text(sparkline(value), style=style or "green", justify="right", no_wrap=True, end="")
        return Cell(None, text)
    if column == "cpu":
        return _number(value, f"{value:.1f}" if value is not None else UNKNOWN, style)
    if column in ("mem", "gpu", "read", "write"):
        return _number(value, fmt_bytes(value), style)
    if column == "conns":
        return _number(value, str(value) if value is not None else UNKNOWN, style)
    raise KeyError(column)
