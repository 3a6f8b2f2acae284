"""The process table draws its cells straight, exactly as Rich's general path would, and
keeps no more of what it drew than a couple of screens' worth."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.renderables.styled import Styled

from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.tui import NettopApp, ScriptedSource
from nettop_ui.tui.cells import Cell, LineCell, ProgramCell
from nettop_ui.tui.model import Program
from nettop_ui.tui.process_table import CELL_CACHE
from tests.tui_fixtures import T0

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


def churning(tick: int, live: int = 60, churn: int = 5) -> Snapshot:
    """Tick `tick` of a machine where `churn` processes a tick come and go, each with
    values that never repeat."""
    first = 1000 + tick * churn
    procs = []
    for pid in range(first, first + live):
        state = ProcessState(pid, T0 + pid, f"kid{pid}")
        state.user, state.ppid, state.cmdline = "root", 1, [f"/bin/kid{pid}"]
        state.sent_bps, state.recv_bps = float(tick * 1000 + pid), float(pid)
        state.sent_bytes, state.recv_bytes = tick * pid, tick
        state.cpu_percent, state.rss_bytes = tick % 100 / 3, pid * 4096
        procs.append(state)
    return Snapshot(T0 + tick, 1.0, procs, None, None)


async def test_render_caches_stay_bounded_through_churn() -> None:
    """Hundreds of ticks of churn: each of the table's render caches keeps at most a
    couple of screens' worth (DataTable's own cell cache kept 10,000 entries)."""
    source = ScriptedSource()
    app = NettopApp(source, host="test")
    async with app.run_test(size=(160, 48)) as pilot:
        for tick in range(1, 301):
            app.on_frame(source.frame_of(churning(tick)))
            await pilot.pause()
        table = app.main.table
        assert table.row_count == 60
        caches = {k: len(v) for k, v in vars(table).items() if isinstance(v, LRUCache)}
        assert len(caches) >= 5, caches  # the table's own and DataTable's
        assert max(caches.values()) <= CELL_CACHE, caches
