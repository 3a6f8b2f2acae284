"""A small keyed table for the drill-down and host screens (connections, processes).

Columns are declared once per use (`ConnColumn`); the widths follow the box, the columns
marked `narrow=False` left out below `WIDE` cells. `show(rows)` updates the rows in
place each frame: a row is rewritten only when one of its texts changed, gone rows are
removed, and one positional sort puts them in the order given. Heading rows (a remote
host above its connections) are ordinary rows with their own key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.widgets import DataTable

from nettop_ui.format import Scale
from nettop_ui.remotes import split_endpoint
from nettop_ui.tui.cells import Cell
from nettop_ui.tui.safe import safe_text

WIDE = 60  # cells: narrower, only the columns marked narrow
FLEX_MIN = 8


@dataclass(frozen=True, slots=True)
class ConnColumn:
    key: str
    label: str
    width: int  # cells; 0: shares what the fixed columns leave
    justify: Literal["left", "right"] = "left"
    narrow: bool = True  # kept in a box narrower than WIDE


@dataclass(frozen=True, slots=True)
class ConnRow:
    """One row: its key, and the text of each column by column key (missing: blank)."""

    key: str
    cells: dict[str, Text]


def figure(value: float | int | None, scale: Scale) -> Text:
    """A right-aligned byte figure (rate or total); `-` when unknown."""
    return Text(scale.traffic(value), justify="right")


def plain(text: str | None, width: int = 80, style: str = "") -> Text:
    """Untrusted text (a process name, an address) as one literal, cut line."""
    return Text(safe_text(text or "", width), style=style, no_wrap=True, overflow="ellipsis")


def host_text(address: str, name: str | None, scope: str, numeric: bool = False) -> Text:
    """A remote host as a heading: its name (unless `numeric`), then its address."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if not address:
        return text.append("(no remote address)", style="bold")
    if name and not numeric:
        text.append(safe_text(name, 80), style="bold").append("  ")
    text.append(safe_text(address, 60), style="bold" if not name or numeric else "")
    if scope == "local":
        text.append("  (local)", style="dim")
    return text


def port_of(endpoint: str) -> str:
    """The port of "10.0.0.5:443" / "[fd00::1]:443"; "" when it has none (ICMP, raw)."""
    port = split_endpoint(endpoint)[1]
    return str(port) if port is not None else ""


class ConnTable(DataTable[Cell]):
    """Rows keyed by the caller, drawn in the order given, columns fitted to the width."""

    def __init__(self, columns: Sequence[ConnColumn], **kwargs: object) -> None:
        super().__init__(
            cursor_type="row",
            cell_padding=0,
            show_row_labels=False,
            **kwargs,  # type: ignore[arg-type]
        )
        self.spec = tuple(columns)
        self._widths: dict[str, int] = {}  # the left-aligned columns' widths
        self._width = 0
        self._shown: dict[str, tuple[tuple[str, str], ...]] = {}  # key -> what it shows
        self.order: list[str] = []

    def _layout(self) -> None:
        width = self.size.width - 1  # the scrollbar
        if width <= 0 or width == self._width:
            return
        self._width = width
        cols = [c for c in self.spec if c.narrow or width >= WIDE]
        fixed = sum(c.width for c in cols)
        flex = [c for c in cols if not c.width]
        share = max((width - fixed) // max(len(flex), 1), FLEX_MIN)
        self.clear(columns=True)
        self._shown.clear()
        self.order = []
        self._widths = {c.key: c.width or share for c in cols if c.justify == "left"}
        for c in cols:
            label = Text(c.label, justify=c.justify)
            self.add_column(label, width=c.width or share, key=c.key)

    def show(self, rows: Sequence[ConnRow]) -> None:
        """Make the table show `rows`, in this order, touching only what changed."""
        self._layout()
        if not self.columns:
            return
        keys = [k.value for k in self.columns if k.value is not None]
        wanted = {r.key: r for r in rows}
        with self.app.batch_update():
            for key in [k for k in self._shown if k not in wanted]:
                self.remove_row(key)
                del self._shown[key]
            for row in rows:
                texts = [self._fit(k, row.cells.get(k) or Text("")) for k in keys]
                sig = tuple((t.plain, str(t.style)) for t in texts)
                old = self._shown.get(row.key)
                if old == sig:
                    continue
                cells = [Cell(t.plain, t, row.key) for t in texts]
                if old is None:
                    self.add_row(*cells, key=row.key)
                else:
                    for key, cell in zip(keys, cells, strict=True):
                        self.update_cell(row.key, key, cell, update_width=False)
                self._shown[row.key] = sig
            order = list(wanted)
            if order != self.order:
                position = {k: i for i, k in enumerate(order)}
                self.sort(keys[0], key=lambda cell: position.get(cell.row, len(position)))
                self.order = order

    def _fit(self, key: str, text: Text) -> Text:
        """A left-aligned text cut one cell short of its column, with an ellipsis: a long
        address never runs into the next column."""
        width = self._widths.get(key)
        if width is None or text.cell_len < width:
            return text
        text = text.copy()
        text.truncate(width - 1, overflow="ellipsis")
        return text

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
