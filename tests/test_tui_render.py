"""The process table draws its cells straight, exactly as Rich's general path would,
keeps no more of what it drew than a couple of screens' worth, and makes cells only for
the rows on screen (scrolled to, they show their current values)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.strip import Strip

from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.format import Scale
from nettop_ui.tui import NettopApp, ScriptedSource, process_table
from nettop_ui.tui.cells import Cell, LineCell, ProgramCell, make_cell
from nettop_ui.tui.model import COLUMN_BY_KEY, Program
from nettop_ui.tui.process_table import CELL_CACHE, ProcessTable
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


# -- only the rows on screen are drawn --------------------------------------------------

MANY = range(1000, 1400)  # pids: far more rows than a screen holds


def busy(tick: int) -> Snapshot:
    """Tick `tick` of 400 processes that all change every tick: UP grows 50 kB/s a tick,
    so its text differs from one tick to the next; TOTAL/s orders them by pid."""
    procs = []
    for pid in MANY:
        state = ProcessState(pid, T0 + pid, f"kid{pid}")
        state.user, state.ppid, state.cmdline = "root", 1, [f"/bin/kid{pid}"]
        state.sent_bps, state.recv_bps = float(tick * 50_000 + pid * 7), float(pid)
        state.sent_bytes, state.recv_bytes = tick * pid, tick
        state.cpu_percent, state.rss_bytes = 1.0, pid * 4096
        procs.append(state)
    return Snapshot(T0 + tick, 1.0, procs, None, None)


def up_text(pid: int, tick: int) -> str:
    """What the UP cell of `pid` says at `tick`, from the column's own formatter."""
    return COLUMN_BY_KEY["up"].text(float(tick * 50_000 + pid * 7), Scale(), False)


def on_screen(table: ProcessTable) -> list[str]:
    """The table's body lines as rendered now (below the header)."""
    strips = table.render_lines(Region(0, 0, table.size.width, table.size.height))
    return [strip.text for strip in strips[table.header_height :]]


def visible_keys(table: ProcessTable) -> list[str]:
    top = round(table.scroll_y)
    height = table.size.height - table.header_height
    return [row.key for row in table.rows_data[top : top + height]]


def check_screen(table: ProcessTable, tick: int, up: Any = up_text) -> None:
    """Every line on screen is the row the model puts there, with its values of `tick`
    (`up(pid, tick)`: the UP text it should show)."""
    lines, keys = on_screen(table), visible_keys(table)
    assert len(keys) >= 10 and len(lines) >= len(keys)
    by_key = {row.key: row for row in table.rows_data}
    for line, key in zip(lines, keys, strict=False):
        pid = by_key[key].value("pid")
        assert line.split()[0] == str(pid), (line, key)
        assert up(pid, tick) in line, (line, up(pid, tick))


@pytest.mark.parametrize("view", [(), ("t",)], ids=["flat", "tree"])
async def test_rows_off_screen_build_no_cells(monkeypatch: Any, view: tuple[str, ...]) -> None:
    """A tick makes cells for the rows on screen only, though every row changed; scrolled
    down, the rows then on screen get theirs, with the values of the latest tick. In the
    tree view too, whose rows are all made anew each tick."""
    built: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> Cell:
        built.append(args[4] if len(args) > 4 else kwargs["row"])
        return make_cell(*args, **kwargs)

    monkeypatch.setattr(process_table, "make_cell", counting)
    source = ScriptedSource()
    app = NettopApp(source, host="test")
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.table
        await pilot.press(*view)
        assert app.opts.mode == ("tree" if view else "flat")
        for tick in range(1, 6):
            built.clear()
            app.on_frame(source.frame_of(busy(tick)))
            await pilot.pause()
            assert table.row_count == len(MANY)
            shown = set(visible_keys(table))
            assert set(built) <= shown, f"{len(set(built) - shown)} rows off screen built"
            assert set(built) == shown  # and every row on screen, all of them changed
            check_screen(table, tick)
        built.clear()
        await pilot.press("end")  # the bottom rows, changed five times, never drawn
        await pilot.pause()
        shown = set(visible_keys(table))
        assert table.rows_data[-1].key in shown
        assert set(built) == shown
        check_screen(table, 5)


async def test_scrolled_rows_show_current_values_after_sort_and_filter() -> None:
    """Rows that changed while off screen, a new sort and a filter: wherever the table is
    scrolled to, each line shows the row the model puts there, as of the latest tick."""
    source = ScriptedSource()
    app = NettopApp(source, host="test")
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.table
        app.on_frame(source.frame_of(busy(1)))
        await pilot.pause()
        check_screen(table, 1)
        await pilot.press("pagedown", "pagedown")
        for tick in range(2, 5):  # the top rows change while scrolled away
            app.on_frame(source.frame_of(busy(tick)))
            await pilot.pause()
            check_screen(table, tick)
        await pilot.press("N")  # by PID, ascending: the rows move under the cursor
        await pilot.pause()
        assert table.rows_data[0].value("pid") == MANY[0]
        check_screen(table, 4)
        await pilot.press("ctrl+home")
        await pilot.pause()
        assert visible_keys(table)[0] == table.rows_data[0].key
        check_screen(table, 4)
        await pilot.press("slash", *"kid13", "enter")
        app.on_frame(source.frame_of(busy(5)))
        await pilot.pause()
        assert {row.value("pid") for row in table.rows_data} == set(range(1300, 1400))
        check_screen(table, 5)
        await pilot.press("end")
        await pilot.pause()
        assert visible_keys(table)[-1] == table.rows_data[-1].key
        check_screen(table, 5)


async def test_processes_coming_and_going_lay_nothing_out_again() -> None:
    """Ticks in which processes start and exit (and their number changes) update the
    rows and the scrollbar, not the layout of the whole screen; scrolled halfway down,
    every line still shows the right row with its latest values."""

    def up(pid: int, tick: int) -> str:  # churning()'s
        return COLUMN_BY_KEY["up"].text(float(tick * 1000 + pid), Scale(), False)

    source = ScriptedSource()
    app = NettopApp(source, host="test")
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.table
        app.on_frame(source.frame_of(churning(1, live=300)))
        await pilot.pause()
        await pilot.press("pagedown", "pagedown")
        layouts = 0
        refresh_layout = app.screen._refresh_layout

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal layouts
            layouts += 1
            return refresh_layout(*args, **kwargs)

        app.screen._refresh_layout = counted  # type: ignore[method-assign]
        counts = set()
        for tick in range(2, 12):
            app.on_frame(source.frame_of(churning(tick, live=300 + tick % 4)))
            await pilot.pause()
            counts.add(table.row_count)
            check_screen(table, tick, up)
            rows = table.vertical_scrollbar.window_virtual_size - table.header_height
            assert rows == table.row_count  # the scrollbar knows
        assert len(counts) > 1  # the number of rows did change
        assert layouts == 0


# -- each row's line is drawn again only when what it shows changed ---------------------


def steady(tick: int, moving: int) -> Snapshot:
    """40 processes whose figures stay put, but for `moving`'s DOWN, which grows 10 kB/s
    each tick (too little to change their order, by TOTAL/s)."""
    procs = []
    for pid in range(2000, 2040):
        state = ProcessState(pid, T0 + pid, f"kid{pid}")
        state.user, state.ppid, state.cmdline = "root", 1, [f"/bin/kid{pid}"]
        state.sent_bps, state.recv_bps = float(pid * 100_000), float(pid)
        if pid == moving:
            state.recv_bps = float(tick * 10_000)
        state.sent_bytes, state.recv_bytes = pid, pid
        state.cpu_percent, state.rss_bytes = 1.0, pid * 4096
        procs.append(state)
    return Snapshot(T0 + tick, 1.0, procs, None, None)


def drawn_now(table: ProcessTable) -> list[Strip]:
    return table.render_lines(Region(0, 0, table.size.width, table.size.height))


def check_as_drawn_anew(table: ProcessTable) -> list[Strip]:
    """The table's lines now, from its caches, are those it draws with no cache at all
    (segment for segment: text, colours, and the row/column meta clicks read)."""
    cached = drawn_now(table)
    table._clear_caches()
    fresh = drawn_now(table)
    assert [list(s) for s in cached] == [list(s) for s in fresh]
    return cached


async def test_cached_lines_are_the_lines_drawn_anew() -> None:
    """A changed figure, a cursor move, a re-sort, a new column and a resize each show
    on screen exactly as a table with no cached lines draws it; a tick in which one
    process changed draws that row's line again and keeps every other row's."""
    source = ScriptedSource()
    app = NettopApp(source, host="test")
    moving = 2020
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.table
        app.on_frame(source.frame_of(steady(1, moving)))
        await pilot.pause()
        before = check_as_drawn_anew(table)
        drawn_now(table)  # the caches filled again, as a tick leaves them
        lines = {key: drawn.line for key, drawn in table._drawn.items()}
        row = table.header_height + table.get_row_index(table.rows_data[0].key)
        at = table.header_height + table.get_row_index(f"{moving}:{T0 + moving}")

        app.on_frame(source.frame_of(steady(2, moving)))  # one figure changed
        await pilot.pause()
        kept = {key for key, drawn in table._drawn.items() if drawn.line is lines[key]}
        assert set(lines) - kept == {f"{moving}:{T0 + moving}"}  # all but the mover's
        after = check_as_drawn_anew(table)
        assert after[at].text != before[at].text
        down = COLUMN_BY_KEY["down"].text(20_000.0, Scale(), False)
        assert down in after[at].text

        await pilot.press("down")  # the cursor leaves the top row for the next one
        await pilot.pause()
        moved = check_as_drawn_anew(table)
        for y in (row, row + 1):  # the cursor's colours: off one row, on the other
            assert list(moved[y]) != list(after[y]) and moved[y].text == after[y].text

        await pilot.press("N")  # by PID: every row moves
        await pilot.pause()
        check_as_drawn_anew(table)
        await pilot.press("D")  # the disk columns added
        await pilot.pause()
        assert app.opts.extra_columns
        wider = check_as_drawn_anew(table)
        assert [s.text for s in wider[table.header_height :]] != [
            s.text for s in moved[table.header_height :]
        ]
        await pilot.resize_terminal(100, 24)
        await pilot.pause()
        check_as_drawn_anew(table)
        app.on_frame(source.frame_of(steady(3, moving)))
        await pilot.pause()
        check_as_drawn_anew(table)
