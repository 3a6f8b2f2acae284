"""The process table repaints only the lines that changed, the panels and the header
only when their text changed, and what the terminal then shows is exactly what a full
repaint would draw.

`TerminalApp` keeps a screen the way a terminal does: it applies each update the app
would write (the compositor's partial updates, cursor moves and all) to the cells it
holds. After every step below (ticks in which one row changes, rows move, processes
start and exit, the table grows past the window and shrinks below it, sorting,
scrolling, filtering, the totals toggle, a resize) the table's part of that screen must
equal a repaint from empty caches, cell for cell: text, colours, and the row/column
meta that clicks read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.control import Control
from rich.segment import ControlType, Segment
from rich.style import Style
from textual._compositor import CompositorUpdate
from textual.geometry import Region
from textual.widget import Widget

from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.tui import NettopApp, ScriptedSource
from nettop_ui.tui.panels import Panel
from tests.tui_fixtures import T0, scripted_snapshots

Cells = list[list[tuple[str, Style | None]]]


def apply(cells: Cells, segments: Iterable[Segment]) -> None:
    """Write `segments`, as a terminal would, into `cells`."""
    x = y = 0
    for segment in segments:
        if segment.control:
            for code in segment.control:
                if code[0] == ControlType.CURSOR_MOVE_TO and len(code) == 3:
                    x, y = int(code[1]), int(code[2])
            continue
        if segment.text == "\n":
            continue
        for char in segment.text:
            if 0 <= y < len(cells) and 0 <= x < len(cells[y]):
                cells[y][x] = (char, segment.style)
            x += 1


class TerminalApp(NettopApp):
    """The real app, with a terminal's screen kept from what it writes (headless mode
    writes nothing)."""

    def __init__(self, source: ScriptedSource) -> None:
        super().__init__(source, host="test")
        self.screen_cells: Cells = []

    def _display(self, screen: Any, renderable: Any) -> None:
        super()._display(screen, renderable)
        if isinstance(renderable, CompositorUpdate) and not self._batch_count:
            width, height = self.size
            if len(self.screen_cells) != height or len(self.screen_cells[0]) != width:
                self.screen_cells = [[(" ", None)] * width for _ in range(height)]
            apply(self.screen_cells, self.console.render(renderable))  # type: ignore[arg-type]

    def table_part(self) -> Cells:
        """The cells of the table's content (not its scrollbar) on the screen."""
        (x, y), (width, height) = (
            self.main.table.scrollable_content_region.offset,
            self.main.table.scrollable_content_region.size,
        )
        return [row[x : x + width] for row in self.screen_cells[y : y + height]]

    def table_drawn_anew(self) -> Cells:
        """The table's content as a repaint from empty caches draws it."""
        table = self.main.table
        table._clear_caches()
        table._styles_cache.clear()
        width, height = table.scrollable_content_region.size
        fresh: Cells = [[(" ", None)] * width for _ in range(height)]
        for y, strip in enumerate(table.render_lines(Region(0, 0, width, height))):
            apply(fresh, [Control.move_to(0, y).segment, *strip])
        return fresh


def assert_same(shown: Cells, fresh: Cells, step: str) -> None:
    """`shown` (the terminal's) is `fresh` (a full repaint's), cell for cell."""
    for y, (line, want) in enumerate(zip(shown, fresh, strict=True)):
        text, want_text = "".join(c for c, _ in line), "".join(c for c, _ in want)
        assert text == want_text, (step, y, text, want_text)
        assert line == want, (step, y, "colours or click meta differ")


def procs(tick: int, pids: Iterable[int], rates: dict[int, float] | None = None) -> Snapshot:
    """Processes `pids`, ordered by TOTAL/s (pid * 1000 unless `rates` says otherwise),
    with figures that do not change from tick to tick."""
    states = []
    for pid in pids:
        state = ProcessState(pid, T0 + pid, f"kid{pid}")
        state.user, state.ppid, state.cmdline = "root", 1, [f"/bin/kid{pid}"]
        state.sent_bps = (rates or {}).get(pid, float(pid * 1000))
        state.recv_bps = 0.0
        state.sent_bytes, state.recv_bytes = pid, pid
        state.cpu_percent, state.rss_bytes = 1.0, pid * 4096
        states.append(state)
    return Snapshot(T0 + tick, 1.0, states, None, None)


async def test_the_terminal_shows_what_a_full_repaint_draws() -> None:
    source = ScriptedSource()
    app = TerminalApp(source)
    steps: list[str] = []

    async def settle(step: str) -> None:
        await pilot.pause()
        await pilot.pause()
        steps.append(step)
        assert_same(app.table_part(), app.table_drawn_anew(), step)
        # (that repaint left the caches holding what the terminal holds)

    def tick(n: int, pids: Iterable[int], rates: dict[int, float] | None = None) -> int:
        """Apply tick `n`."""
        app.on_frame(source.frame_of(procs(n, pids, rates)))
        return n

    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.table
        drawn: list[int] = []
        render_line = table.render_line

        def counted(y: int) -> Any:
            drawn.append(y)
            return render_line(y)

        table.render_line = counted  # type: ignore[method-assign]
        many = range(100, 160)  # 60 rows: more than the window holds
        tick(1, many)
        await settle("first tick")

        drawn.clear()
        tick(2, many)  # nothing changed
        await pilot.pause()
        await pilot.pause()
        assert drawn == [], "a tick that changed nothing repainted table lines"
        await settle("a tick that changed nothing")

        drawn.clear()
        tick(3, many, {150: 150_500.0})  # one figure changed, the order did not
        await pilot.pause()
        await pilot.pause()
        row = table.get_row_index(f"150:{T0 + 150}")
        assert set(drawn) == {table.header_height + row}, drawn
        await settle("one row changed")

        tick(4, many, {120: 10_000_000.0})  # 120 jumps to the top: rows move down
        await settle("a row moved to the top")
        tick(5, range(100, 115))  # most exit: the table is shorter than the window
        await settle("rows exited")
        tick(6, range(100, 112))
        await settle("fewer rows again")
        tick(7, range(100, 190))  # many start
        await settle("rows started")
        await pilot.press("pagedown")
        await settle("scrolled down")
        tick(8, range(100, 190), {105: 1e9, 180: 2e9})
        await settle("rows moved while scrolled")
        tick(9, range(100, 140))  # shorter: the scroll position is clamped
        await settle("rows exited while scrolled")
        await pilot.press("down", "down", "up")
        await settle("cursor moved")
        await pilot.press("N")  # sort by PID
        await settle("sorted by pid")
        tick(10, range(90, 140))  # new rows at the top of that order
        await settle("rows started above")
        await pilot.press("m")  # totals instead of rates: every figure is another
        await settle("totals")
        await pilot.press("slash", *"kid12", "enter")
        await settle("filtered")
        tick(11, range(90, 140))
        await settle("filtered tick")
        await pilot.press("slash", "ctrl+u", "enter")
        await settle("filter cleared")
        await pilot.resize_terminal(100, 24)
        await settle("resized")
        tick(12, range(95, 145), {130: 5e9})
        await settle("tick after resize")
        await pilot.resize_terminal(20, 5)
        tick(13, range(95, 145), {131: 5e9})
        await pilot.pause()
        await pilot.resize_terminal(160, 48)
        await settle("back from a tiny terminal")
        tick(14, range(95, 145), {132: 5e9})
        await settle("tick after the tiny terminal")
        assert len(steps) == 21


async def test_only_rows_near_the_screen_hold_their_cells() -> None:
    """Rows scrolled far away give up their cells and lines, and draw the same when
    they come back: memory follows the screen, not the thousands of rows listed."""
    source = ScriptedSource()
    app = TerminalApp(source)
    many = range(100, 700)

    def holding() -> int:
        return sum(d.made is not None or d.line is not None for d in app.main.table._drawn.values())

    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.table
        app.on_frame(source.frame_of(procs(1, many)))
        await pilot.pause()
        for _ in range(40):  # every row on screen once
            await pilot.press("pagedown")
        height = table.scrollable_content_region.height
        app.on_frame(source.frame_of(procs(2, many)))
        await pilot.pause()
        await pilot.pause()
        assert 0 < holding() <= 3 * height, (holding(), height)
        await pilot.press("home")
        await pilot.pause()
        await pilot.pause()
        assert_same(app.table_part(), app.table_drawn_anew(), "back at the top")
        app.on_frame(source.frame_of(procs(3, many, {650: 1e9})))
        await pilot.pause()
        await pilot.pause()
        assert_same(app.table_part(), app.table_drawn_anew(), "a far row moved to the top")
        assert 0 < holding() <= 3 * height, (holding(), height)


def screen_drawn_anew(app: TerminalApp) -> Cells:
    """The whole screen as a repaint from empty caches draws it."""
    for widget in app.screen.walk_children(Widget, with_self=True):
        widget._styles_cache.clear()
    app.main.table._clear_caches()
    width, height = app.size
    fresh: Cells = [[(" ", None)] * width for _ in range(height)]
    update = app.screen._compositor.render_full_update()
    apply(fresh, app.console.render(update))
    return fresh


async def test_panels_and_header_repaint_only_when_their_text_changed() -> None:
    """Each tick tells every panel and the header the new state; a panel whose text is
    the same (the GPU panel without a GPU) is not repainted, one whose figures moved
    is, and the whole screen is then what a full repaint draws."""
    snaps = scripted_snapshots(6)
    source = ScriptedSource()
    app = TerminalApp(source)
    async with app.run_test(size=(160, 48)) as pilot:
        panels = {panel.id: panel for panel in app.main.query(Panel)}
        repainted: dict[str | None, int] = dict.fromkeys(panels, 0)
        for panel in panels.values():
            refresh = panel.refresh

            def counted(
                *args: Any, _id: str | None = panel.id, _r: Any = refresh, **kw: Any
            ) -> Any:
                repainted[_id] += 1
                return _r(*args, **kw)

            panel.refresh = counted  # type: ignore[method-assign]
        app.on_frame(source.frame_of(snaps[0]))
        await pilot.pause()
        for snap in snaps[1:]:
            for key in repainted:
                repainted[key] = 0
            app.on_frame(source.frame_of(snap))
            await pilot.pause()
            await pilot.pause()
            assert repainted["panel-gpu"] == 0, "the GPU panel, unchanged, was repainted"
            assert repainted["panel-cpu"] >= 1, "the CPU panel's new figures were not drawn"
            assert "no NVIDIA GPU" in "".join(c for c, _ in app.screen_cells[2])
            assert_same(app.screen_cells, screen_drawn_anew(app), f"tick at {snap.ts}")


async def test_a_panel_repaints_only_the_lines_of_it_that_changed() -> None:
    """The CPU and MEM panels' figures move every tick, but their borders, blank lines
    and most rows do not: only the lines whose text changed are marked for repainting
    (each a one-line region), and the screen is then what a full repaint draws."""
    snaps = scripted_snapshots(6)
    source = ScriptedSource()
    app = TerminalApp(source)
    async with app.run_test(size=(160, 48)) as pilot:
        panels = {panel.id: panel for panel in app.main.query(Panel)}
        asked: dict[str | None, list[tuple[Region, ...]]] = {key: [] for key in panels}
        for panel in panels.values():
            refresh = panel.refresh

            def recorded(
                *regions: Any, _id: str | None = panel.id, _r: Any = refresh, **kw: Any
            ) -> Any:
                asked[_id].append(regions)
                return _r(*regions, **kw)

            panel.refresh = recorded  # type: ignore[method-assign]
        app.on_frame(source.frame_of(snaps[0]))
        await pilot.pause()
        for snap in snaps[1:]:
            for calls in asked.values():
                calls.clear()
            app.on_frame(source.frame_of(snap))
            await pilot.pause()
            await pilot.pause()
            cpu = panels["panel-cpu"]
            assert asked["panel-cpu"], "the CPU panel's new figures were not drawn"
            for regions in asked["panel-cpu"]:
                assert regions, "the whole CPU panel was repainted"
                assert all(r.height == 1 and r.width == cpu.size.width for r in regions)
                assert len(regions) < cpu.size.height, "every line was repainted"
            assert_same(app.screen_cells, screen_drawn_anew(app), f"tick at {snap.ts}")
