"""The process table draws its cells straight, exactly as Rich's general path would."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.renderables.styled import Styled

from nettop_ui.tui.cells import Cell, LineCell, ProgramCell
from nettop_ui.tui.model import Program

CONSOLE = Console(force_terminal=True, color_system="truecolor", width=200)
STYLES = [Style.null(), Style(color="white", bgcolor="black"), Style(bold=True, bgcolor="#102030")]
POSTS = [Style.null(), Style(bgcolor="blue"), Style(color="red")]
CHARS = st.text(alphabet=st.sampled_from("ab 12.KiB-▁█ 世é"), max_size=14)
OWN = st.sampled_from(["", "dim", "bold", "green", "italic"])


def reference(cell: Cell, width: int, style: Style, post: Style) -> list[Segment]:
    """How DataTable draws a cell: Styled(Padding(cell)) rendered one line high."""
    options = CONSOLE.options.update_dimensions(width, 1).update(no_wrap=True)
    lines = CONSOLE.render_lines(Styled(Padding(cell, (0, 0)), style, post), options)
    assert len(lines) == 1
    return lines[0]


def check(cell: Cell, width: int, style: Style, post: Style) -> None:
    options = CONSOLE.options.update_dimensions(width, 1).update(no_wrap=True)
    assert cell.line(CONSOLE, options, style, post) == reference(cell, width, style, post)


DRAW = {
    "width": st.integers(1, 16),
    "style": st.sampled_from(STYLES),
    "post": st.sampled_from(POSTS),
}


@given(
    **DRAW,
    plain=CHARS,
    own=OWN,
    justify=st.sampled_from([None, "left", "right"]),
    overflow=st.sampled_from([None, "ellipsis"]),
)
def test_line_cells(plain: str, own: str, justify: Any, overflow: Any, **kw: Any) -> None:
    check(LineCell(0, plain, own, justify=justify, overflow=overflow), **kw)


@given(**DRAW, prefix=st.sampled_from(["", "  ", "│  ├─"]), name=CHARS, args=CHARS, own=OWN)
def test_program_cells(prefix: str, name: str, args: str, own: str, **kw: Any) -> None:
    for marker in ("", "+"):
        check(ProgramCell(Program(prefix, name, args, marker), own), **kw)


@given(**DRAW, plain=CHARS, justify=st.sampled_from([None, "right"]))
def test_text_cells(plain: str, justify: Any, **kw: Any) -> None:
    check(Cell(0, Text(plain, justify=justify)), **kw)
