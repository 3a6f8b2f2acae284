"""Every key of the TUI, driven by Pilot against a scripted backend and real processes.

The backend (`tests.tui_fixtures.ScriptedBackend`) reports fixed byte rates for
processes the test spawned; the real collector joins them with /proc facts, so the
table shows real PIDs, names and users with known traffic.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static
from textual.widgets._footer import FooterKey
from textual.widgets.data_table import RowKey

from backends.psutil_backend import PsutilBackend
from nettop_ui.core import ProcessTraffic
from nettop_ui.format import human_bytes
from nettop_ui.tui import MonitorSource, NettopApp, ScriptedSource
from nettop_ui.tui.detail_screen import DetailScreen
from nettop_ui.tui.filter_bar import FilterBar
from nettop_ui.tui.frame import row_key
from nettop_ui.tui.help_screen import HelpScreen
from nettop_ui.tui.kill_dialog import KillDialog
from nettop_ui.tui.model import PROGRAM_MAX_WIDTH
from nettop_ui.tui.panels import Panel
from nettop_ui.tui.process_table import ProcessTable
from nettop_ui.tui.source import HOLD_S, QUIET_S
from nettop_ui.tui.user_picker import UserPicker
from tests.netenv import Network, require_root
from tests.tmuxterm import parse_rate
from tests.tui_fixtures import (
    KIB,
    MIB,
    Child,
    ScriptedBackend,
    capture_notices,
    pick_user,
    pid_order,
    screen_lines,
    scripted_snapshots,
    spawn_named,
    steady,
    table_order,
    wait_for,
)

INTERVAL = 0.2
# Markup, an escape sequence, a bidi override and a byte that is not UTF-8 (0xff).
HOSTILE = "[b]x\x1b[31m\u202ez\udcff"


@pytest.fixture(scope="module")
def kids() -> Iterator[dict[str, Child]]:
    """alpha sends most, beta receives most, hostile has a name that attacks terminals."""
    children = {
        "alpha": spawn_named("ntu-alpha", "--role", "alpha"),
        "beta": spawn_named("ntu-beta", "--role", "beta"),
        "hostile": spawn_named(HOSTILE, "--title", "[red]x[/red]\nline2\tTAB", "B" * 100_000),
    }
    yield children
    for child in children.values():
        child.stop()


def rates(kids: dict[str, Child]) -> dict[int, tuple[int, int]]:
    fixed = {
        "alpha": (5 * MIB, 100 * KIB),  # total 5.1 MiB/s, most sent
        "beta": (10 * KIB, 2 * MIB),  # total 2 MiB/s, most received
        "hostile": (1 * KIB, 1 * KIB),
    }
    return {child.pid: fixed.get(name, (50 * KIB, 50 * KIB)) for name, child in kids.items()}


@asynccontextmanager
async def running(
    kids: dict[str, Child], size: tuple[int, int] = (100, 30), **kwargs: Any
) -> AsyncIterator[tuple[NettopApp, Pilot[int]]]:
    backend = ScriptedBackend(steady(rates(kids), INTERVAL), fail_at=kwargs.pop("fail_at", None))
    source = MonitorSource(backend, INTERVAL, kwargs.pop("fallbacks", ()))
    app = NettopApp(source, host="test", **kwargs)
    app.notes = capture_notices(app)  # type: ignore[attr-defined]
    async with app.run_test(size=size) as pilot:
        pids = [c.pid for c in kids.values()]
        filtered = bool(app.opts.filter_text)  # then not every child is in the table
        await wait_for(
            pilot,
            lambda: (
                (filtered or len(pid_order(app, pids)) == len(pids)) and app.frames_received >= 3
            ),
            "the first look's frame and two samples'",
        )
        yield app, pilot


def key_of(app: NettopApp, pid: int) -> str:
    return next(k for k in table_order(app) if k.startswith(f"{pid}:"))


def select(app: NettopApp, pid: int) -> None:
    assert app.main.table.select_key(key_of(app, pid))


async def press(pilot: Pilot[int], *keys: str) -> None:
    await pilot.press(*keys)
    await pilot.pause()


# -- what is drawn ------------------------------------------------------------------------


async def test_rows_trading_places_are_renumbered_as_a_full_sort_would(
    kids: dict[str, Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the same rows reordered, only the positions that changed are rewritten
    (`ProcessTable._reorder`): the table's row positions, both ways, still say exactly
    the order shown, tick after tick (the filter keeps other processes out)."""
    pids = [c.pid for c in kids.values()]

    def rotating(tick: int) -> list[ProcessTraffic]:  # the busiest changes every tick
        ranks = [(tick + i) % len(pids) + 1 for i in range(len(pids))]
        return [ProcessTraffic(pid, r * MIB, r * KIB) for pid, r in zip(pids, ranks, strict=True)]

    calls: list[bool] = []
    reorder = ProcessTable._reorder

    def spy(self: ProcessTable, order: list[str], moved_only: bool = False) -> None:
        calls.append(moved_only)
        reorder(self, order, moved_only)

    monkeypatch.setattr(ProcessTable, "_reorder", spy)
    source = MonitorSource(ScriptedBackend(rotating), INTERVAL)
    app = NettopApp(source, host="test", filter_text="ntu-")
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.main.table
        orders: list[list[int]] = []
        while len(orders) < 5:
            seen = app.frames_received
            await wait_for(pilot, lambda: app.frames_received > seen, "a frame")  # noqa: B023
            await pilot.pause()
            shown = [r.key for r in table.rows_data]
            assert table_order(app) == shown
            assert [table._row_locations.get(RowKey(k)) for k in shown] == list(range(len(shown)))
            orders.append(pid_order(app, pids))
        assert len({tuple(o) for o in orders}) > 1, orders  # the rows did trade places
        assert True in calls, "no reorder of the same rows: the incremental path never ran"


async def test_rows_keyed_by_identity_and_busiest_first(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, _pilot):
        alpha, beta = kids["alpha"].pid, kids["beta"].pid
        assert pid_order(app, [alpha, beta]) == [alpha, beta]
        assert app.opts.sort == "total" and app.opts.descending
        import psutil

        create_time = psutil.Process(alpha).create_time()
        assert abs(float(key_of(app, alpha).split(":")[1]) - create_time) < 0.01
        assert row_key(alpha, create_time).split(":")[0] == str(alpha)
        table = app.main.table
        cell = table.get_cell(key_of(app, alpha), "up")
        assert cell.value == pytest.approx(5 * MIB, rel=0.2)  # a raw, sortable value
        assert "unattributed" in table_order(app)


async def test_hostile_names_render_literally_on_one_row(kids: dict[str, Child]) -> None:
    async with running(kids, size=(160, 48)) as (app, _pilot):
        lines = screen_lines(app)
        row = next(line for line in lines if str(kids["hostile"].pid) in line)
        assert "[b]x\\e[31m\\u202ez\\xff" in row  # markup as text, escapes made visible
        # The newlines and tabs of its argv, shown as \n and \t in the one cell (which the
        # row may cut: how much of the command line fits depends on the venv's path).
        program = app.main.table.get_cell(key_of(app, kids["hostile"].pid), "program")
        assert "\\n" in program.text.plain and "\\t" in program.text.plain
        assert "\n" not in program.text.plain and "\t" not in program.text.plain
        assert "\x1b" not in "".join(lines) and "\u202e" not in "".join(lines)
        assert len(lines) == 48


async def test_psutil_header_total_agrees_with_the_net_panel(net: Network) -> None:
    """Under psutil the header sums the interfaces; loopback traffic is in both or neither."""
    require_root()
    rate = 2 * MIB
    client = net.client("ntu-lo-up", "tcp", "lo", up=rate * 120, rate=rate)
    app = NettopApp(MonitorSource(PsutilBackend(), INTERVAL), host="test")
    try:
        async with app.run_test(size=(160, 48)) as pilot:

            def lo_busy() -> bool:
                system = app.shown.system if app.shown else None
                lo = system.interfaces.get("lo") if system else None
                return lo is not None and (lo.sent_bps or 0) > rate / 2

            await wait_for(pilot, lo_busy, "loopback traffic in a frame", timeout=30)
            await press(pilot, "space")  # hold this frame on screen
            lines = screen_lines(app)
            header = re.search(r"↑(\S+)/s ↓\S+/s \(interfaces\)", lines[0])
            assert header, lines[0]
            lo = next(m for line in lines[1:] if (m := re.search(r"\blo\s+↑\s*(\S+)/s", line)))
            assert app.shown is not None and app.shown.system is not None
            every_nic = sum(i.sent_bps or 0 for i in app.shown.system.interfaces.values())
            shown_total, shown_lo = parse_rate(header[1]), parse_rate(lo[1])
            assert shown_total >= 0.95 * shown_lo, (lines[0], lo[0])
            assert abs(shown_total - every_nic) <= 0.05 * every_nic, (lines[0], every_nic)
    finally:
        client.proc.kill()
        client.proc.wait()


# -- sorting ------------------------------------------------------------------------------


async def test_sort_keys(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        alpha, beta = kids["alpha"].pid, kids["beta"].pid
        await press(pilot, "s")
        assert app.opts.sort == "up" and pid_order(app, [alpha, beta]) == [alpha, beta]
        await press(pilot, "r")
        assert app.opts.sort == "down" and pid_order(app, [alpha, beta]) == [beta, alpha]
        await press(pilot, "B")
        assert app.opts.sort == "total" and pid_order(app, [alpha, beta]) == [alpha, beta]
        await press(pilot, "I")
        assert not app.opts.descending
        assert pid_order(app, [alpha, beta]) == [beta, alpha]
        await press(pilot, "P")
        assert (app.opts.sort, app.opts.descending) == ("cpu", True)
        await press(pilot, "M")
        assert app.opts.sort == "mem"
        mems = [r.value("mem") for r in app.main.rows if r.value("mem") is not None]
        assert mems == sorted(mems, reverse=True)
        await press(pilot, "N")
        assert (app.opts.sort, app.opts.descending) == ("pid", False)
        pids = [r.value("pid") for r in app.main.rows if r.value("pid") is not None]
        assert pids == sorted(pids)
        await press(pilot, "greater_than_sign")
        assert app.opts.sort == "user"
        await press(pilot, "less_than_sign")
        assert app.opts.sort == "pid"
        await press(pilot, "f6")
        assert app.opts.sort == "user"


async def test_header_click_sorts_and_click_again_reverses(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        table = app.main.table
        x = sum(c.get_render_width(table) for c in list(table.columns.values())[:3])
        await pilot.click(ProcessTable, offset=(x + 2, 0))  # the UP/s header
        await pilot.pause()
        assert (app.opts.sort, app.opts.descending) == ("up", True)
        await pilot.click(ProcessTable, offset=(x + 2, 0))
        await pilot.pause()
        assert (app.opts.sort, app.opts.descending) == ("up", False)


async def test_selection_follows_the_process_across_resorts(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        beta = kids["beta"].pid
        select(app, beta)
        await press(pilot, "r")
        assert app.main.table.selected_key == key_of(app, beta)
        await press(pilot, "N")
        assert app.main.table.selected_key == key_of(app, beta)
        ticks = app.frames_received
        await wait_for(pilot, lambda: app.frames_received >= ticks + 2, "two more ticks")
        assert app.main.table.selected_key == key_of(app, beta)


# -- filtering ----------------------------------------------------------------------------


async def test_filter_box(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        alpha, beta = kids["alpha"].pid, kids["beta"].pid
        bar = app.main.query_one(FilterBar)
        await press(pilot, "slash", *"ntu-al")
        assert bar.has_class("-shown") and bar.input.has_focus
        procs = [r for r in app.main.rows if r.process is not None]
        assert [r.value("pid") for r in procs] == [alpha]
        assert app.opts.sort == "total"  # letters typed in the box are not keys
        await press(pilot, "escape")  # closes the box, keeps the filter
        assert not bar.input.has_focus and bar.has_class("-shown")
        assert app.opts.filter_text == "ntu-al"
        await press(pilot, "backslash", "delete")  # `\` opens it too; delete clears
        assert app.opts.filter_text == "" and not bar.has_class("-shown")
        await press(pilot, "slash", *"!ntu-(al|be)", "enter")
        shown = {r.value("pid") for r in app.main.rows if r.process is not None}
        assert shown == {alpha, beta}
        await press(pilot, "delete")  # on the table, delete clears too
        assert app.opts.filter_text == ""
        await press(pilot, "slash", *"![", "escape")  # a bad regex filters nothing
        assert bar.has_class("-error")
        assert len(app.main.rows) > 3
        await press(pilot, "delete", "slash", *str(beta))  # by PID
        assert beta in {r.value("pid") for r in app.main.rows}
        await press(pilot, "escape", "delete", "slash", "root")  # by user
        assert all(r.value("user") == "root" for r in app.main.rows if r.process)


async def test_filter_field_terms(kids: dict[str, Child]) -> None:
    """Field terms in the box; the scripted backend gives alpha two connections from
    local port 5000 (the real traffic is in tests/test_filter_e2e.py)."""
    async with running(kids) as (app, pilot):
        alpha, beta, hostile = (kids[k].pid for k in ("alpha", "beta", "hostile"))
        bar = app.main.query_one(FilterBar)

        async def shows(expr: str) -> set[int]:
            await press(pilot, "delete", "slash", *expr, "escape")
            assert app.opts.filter_text == expr and not bar.has_class("-error")
            # Of the test's processes: others on the machine may have such names too.
            return {r.value("pid") for r in app.main.rows} & {alpha, beta, hostile}

        assert await shows(f"pid:{beta}") == {beta}
        assert await shows(f"pid:{alpha},{beta}") == {alpha, beta}
        assert await shows("user:root ntu-al") == {alpha}
        assert await shows("port:5000") == {alpha}
        assert await shows("port:5000 proto:tcp host:127.0.0.0/8") == {alpha}
        assert await shows("port:5000 proto:udp") == set()
        assert await shows("-port:5000 ntu-") == {beta}
        assert "unattributed" not in {r.key for r in app.main.rows}  # it has no port
        await shows("unattr")
        assert "unattributed" in {r.key for r in app.main.rows}


async def test_a_bad_filter_term_says_what_is_wrong_and_filters_nothing(
    kids: dict[str, Child],
) -> None:
    async with running(kids) as (app, pilot):
        bar = app.main.query_one(FilterBar)
        everyone = len(app.main.rows)
        for expr, says in [
            ("ntu-al foo:1", 'unknown field "foo:"'),
            ("port:http2x", "port:http2x: not a port"),
            ("host:10.0.0.0/33", "not a network"),
        ]:
            await press(pilot, "delete", "slash", *expr)
            hint = str(bar.query_one("#filter-hint", Static).render())
            assert bar.has_class("-error") and says in hint, hint
            assert len(app.main.rows) >= everyone - 1  # nothing filtered (a process may end)
            await press(pilot, "escape")
        await press(pilot, "delete", "slash", *"ntu-al")  # and it goes on working
        assert not bar.has_class("-error")
        shown = {r.value("pid") for r in app.main.rows if r.process}
        assert kids["alpha"].pid in shown and kids["beta"].pid not in shown


async def test_connection_terms_on_a_backend_without_connections_say_so() -> None:
    app = NettopApp(MonitorSource(PsutilBackend(), INTERVAL), host="test")
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.frames_received >= 1, "a frame")
        bar = app.main.query_one(FilterBar)
        await press(pilot, "slash", *"host:10.0.0.5")
        hint = str(bar.query_one("#filter-hint", Static).render())
        assert bar.has_class("-warning") and not bar.has_class("-error")
        assert "host: needs a backend with connections (ebpf, sockdiag), not psutil" in hint
        assert not [r for r in app.main.rows if r.process is not None]
        await press(pilot, "delete", "slash", *"python")
        assert not bar.has_class("-warning")


async def test_filter_given_at_start_is_in_the_box_and_applied(kids: dict[str, Child]) -> None:
    async with running(kids, filter_text="ntu-be") as (app, _pilot):
        bar = app.main.query_one(FilterBar)
        assert bar.has_class("-shown") and bar.input.value == "ntu-be"
        shown = {r.value("pid") for r in app.main.rows if r.process}
        assert kids["beta"].pid in shown and kids["alpha"].pid not in shown


# -- views --------------------------------------------------------------------------------


async def test_tree_view_rolls_children_up_and_folds(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        parent = os.getpid()  # pytest: the parent of every spawned child
        await press(pilot, "t")
        assert app.opts.mode == "tree"
        rows = {r.key: r for r in app.main.rows}
        me = rows[key_of(app, parent)]
        # The children's traffic is rolled in (rates in one frame: a busy machine's longer
        # ticks lower them all alike, so compare within the frame, not to a fixed figure).
        children = sum(rows[key_of(app, c.pid)].value("total") for c in kids.values())
        assert children > 0 and me.value("total") >= children
        order = table_order(app)
        assert order.index(key_of(app, parent)) < order.index(key_of(app, kids["alpha"].pid))
        select(app, parent)
        await press(pilot, "minus")
        assert key_of(app, parent) in app.opts.collapsed
        assert not any(k.startswith(f"{kids['alpha'].pid}:") for k in table_order(app))
        await press(pilot, "plus")
        assert any(k.startswith(f"{kids['alpha'].pid}:") for k in table_order(app))
        await press(pilot, "f5")
        assert app.opts.mode == "flat"


async def test_group_by_user(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        await press(pilot, "U")
        assert app.opts.mode == "user"
        groups = [r for r in app.main.rows if r.kind == "group"]
        assert "user:root" in [g.key for g in groups]
        assert not any(r.kind == "proc" for r in app.main.rows)  # folded by default
        app.main.table.select_key("user:root")
        await press(pilot, "plus")
        assert any(r.kind == "proc" for r in app.main.rows)
        await press(pilot, "minus")
        assert not any(r.kind == "proc" for r in app.main.rows)
        await press(pilot, "enter")  # enter opens a group too
        assert "user:root" in app.opts.expanded_groups
        await press(pilot, "U")
        assert app.opts.mode == "flat"


async def test_only_active(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        before = len(app.main.rows)
        await press(pilot, "a")
        pids = {r.value("pid") for r in app.main.rows if r.process}
        assert pids == {c.pid for c in kids.values()}
        assert len(app.main.rows) < before
        await press(pilot, "a")
        assert len(app.main.rows) == before or len(app.main.rows) > len(pids)


async def test_rates_totals_and_bits(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        table = app.main.table
        alpha = key_of(app, kids["alpha"].pid)
        await press(pilot, "m")
        assert app.opts.totals
        labels = [c.label.plain.strip() for c in table.columns.values()]
        assert "UP" in labels and "UP/s" not in labels
        sent = table.get_cell(alpha, "up").value
        assert isinstance(sent, int) and sent > 0  # cumulative bytes
        await press(pilot, "b")
        assert app.opts.bits
        assert table.get_cell(alpha, "up").text.plain.endswith("ib")  # e.g. "12.0Mib"
        await press(pilot, "m", "b")
        assert not app.opts.totals and not app.opts.bits
        assert table.get_cell(alpha, "up").text.plain.endswith("iB")


IEC_FIGURE = re.compile(r"\d(?:KiB|MiB|GiB|Kib|Mib|Gib)\b")
SI_FIGURE = re.compile(r"\d(?:kB|MB|GB|kbit|Mbit|Gbit)\b")


async def test_units_key_writes_every_figure_in_decimal_units(kids: dict[str, Child]) -> None:
    async with running(kids, size=(160, 48)) as (app, pilot):
        table = app.main.table
        alpha = key_of(app, kids["alpha"].pid)
        screen = "\n".join(screen_lines(app))
        assert IEC_FIGURE.search(screen) and not SI_FIGURE.search(screen)
        await press(pilot, "i")
        assert app.opts.units == "si"
        up = table.get_cell(alpha, "up")
        assert up.text.plain == human_bytes(up.value, units="si")  # 5 MiB/s: "5.2MB"
        assert SI_FIGURE.search(up.text.plain)
        screen = "\n".join(screen_lines(app))
        # Table, header, panels: no binary figure left anywhere.
        assert SI_FIGURE.search(screen) and not IEC_FIGURE.search(screen), screen
        await press(pilot, "b")
        assert re.fullmatch(r"[0-9.]+[kMG]bit", table.get_cell(alpha, "up").text.plain)
        assert re.search(r"\d[kMG]bit/s", screen_lines(app)[0])  # the header: never "Mib"
        select(app, kids["alpha"].pid)
        await press(pilot, "enter")  # the drill-down too
        assert isinstance(app.screen, DetailScreen)
        detail = "\n".join(screen_lines(app))
        assert "bit/s" in detail and not IEC_FIGURE.search(detail), detail
        await press(pilot, "escape", "i")
        assert app.opts.units == "iec"
        assert re.fullmatch(r"[0-9.]+[KMG]ib", table.get_cell(alpha, "up").text.plain)


async def test_units_given_at_start(kids: dict[str, Child]) -> None:
    async with running(kids, units="si") as (app, _pilot):
        alpha = key_of(app, kids["alpha"].pid)
        assert SI_FIGURE.search(app.main.table.get_cell(alpha, "up").text.plain)


async def test_panel_keys(kids: dict[str, Child]) -> None:
    async with running(kids, size=(80, 24)) as (app, pilot):
        for key, panel in zip("12345", ("cpu", "mem", "net", "disk", "gpu"), strict=True):
            widget = app.main.query_one(f"#panel-{panel}", Panel)
            assert widget.display
            await press(pilot, key)
            assert not widget.display
        assert not app.main.query_one("#panels").display  # all hidden: no empty strip
        await press(pilot, "3")
        assert app.main.query_one("#panel-net", Panel).display
        text = "\n".join(screen_lines(app))
        assert "GPU" not in text.split("PID")[0]


async def test_the_uptime_goes_on_while_paused(kids: dict[str, Child]) -> None:
    """While frames come, they show the uptime; paused, the header's own second timer
    does (it skips its repaint only while a frame showed the header within a second)."""
    async with running(kids) as (app, pilot):
        await press(pilot, "space")
        assert "PAUSED" in screen_lines(app)[0]

        def uptime() -> str:
            found = re.search(r"up (\d+:\d\d:\d\d)", screen_lines(app)[0])
            assert found is not None
            return found.group(1)

        first = uptime()
        await wait_for(pilot, lambda: uptime() != first, "the uptime to move on", timeout=3.5)


async def test_pause_freezes_the_display_while_sampling_goes_on(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        await press(pilot, "space")
        assert app.paused
        shown, received = app.shown, app.frames_received
        await wait_for(pilot, lambda: app.frames_received >= received + 2, "sampling")
        assert app.shown is shown
        assert "PAUSED" in screen_lines(app)[0]
        await press(pilot, "Z")
        assert not app.paused and app.shown is app.latest


# -- drill-down ---------------------------------------------------------------------------


async def test_enter_opens_the_process_and_escape_returns(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        alpha = kids["alpha"].pid
        await press(pilot, "slash", *"ntu", "escape", "s")
        select(app, alpha)
        await press(pilot, "enter")
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.process_key == key_of(app, alpha)
        await wait_for(
            pilot,
            lambda: app.latest is not None and key_of(app, alpha) in app.latest.histories,
            "the process history",
        )
        text = "\n".join(screen_lines(app))
        assert f"PID {alpha}" in text and "ntu-alpha" in text
        assert "127.0.0.1:40000" in text  # its connections (scripted per-connection view)
        assert "traffic" in text and "CPU %" in text  # the two charts
        await press(pilot, "escape")
        assert app.screen is app.main
        assert app.main.table.selected_key == key_of(app, alpha)
        assert (app.opts.sort, app.opts.filter_text) == ("up", "ntu")


async def test_drill_down_shows_syscall_bytes_and_page_faults(kids: dict[str, Child]) -> None:
    """The stats line carries denet's other disk signals, as the collector read them."""
    async with running(kids, size=(220, 40)) as (app, pilot):  # the stats line unwrapped
        alpha = kids["alpha"].pid
        select(app, alpha)
        await press(pilot, "enter")
        assert isinstance(app.screen, DetailScreen)
        key, scale = key_of(app, alpha), app.opts.scale

        def shows_its_figures() -> bool:
            shown = app.shown.by_key().get(key) if app.shown else None
            if shown is None or shown.page_faults_cached is None:
                return False
            text = "\n".join(screen_lines(app))
            syscalls = f"syscalls R {scale.size(shown.syscall_read_bytes)}"
            faults = f"faults {shown.page_faults_cached} cached {shown.page_faults_disk} disk"
            return syscalls in text and faults in text

        await wait_for(pilot, shows_its_figures, "the syscall bytes and page faults")


async def test_D_adds_and_removes_the_disk_signal_columns(kids: dict[str, Child]) -> None:
    """Hidden by default; `D` shows SYS RD, SYS WR, MINFLT, MAJFLT with the process's
    figures, `D` again hides them."""
    added = ["sysread", "syswrite", "minflt", "majflt"]
    async with running(kids, size=(220, 40)) as (app, pilot):
        table = app.main.table
        assert not set(added) & set(table.column_keys)
        await press(pilot, "D")
        assert [k for k in table.column_keys if k in added] == added
        key = key_of(app, kids["alpha"].pid)

        def shows_its_faults() -> bool:
            shown = app.shown.by_key().get(key) if app.shown else None
            if shown is None or shown.page_faults_cached is None:
                return False
            cell = table.get_cell(key, "minflt")
            return cell.value == shown.page_faults_cached and cell.text.plain.strip() == str(
                shown.page_faults_cached
            )

        await wait_for(pilot, shows_its_faults, "alpha's page faults in MINFLT")
        await press(pilot, "D")
        assert not set(added) & set(table.column_keys)


async def test_drill_down_tree_lists_children_live(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        select(app, os.getpid())
        await press(pilot, "enter")
        assert isinstance(app.screen, DetailScreen)
        text = "\n".join(screen_lines(app))
        for name in ("ntu-alpha", "ntu-beta"):
            assert name in text
        assert "Σ" in text  # the subtree's rates next to the parent's own


# -- kill ---------------------------------------------------------------------------------


async def test_kill_dialog_sends_sigterm_by_default(kids: dict[str, Child]) -> None:
    victim = spawn_named("ntu-victim")
    local = {**kids, "victim": victim}
    try:
        async with running(local) as (app, pilot):
            select(app, victim.pid)
            await press(pilot, "k")
            assert isinstance(app.screen, KillDialog)
            assert "ntu-victim" in "\n".join(screen_lines(app))
            await press(pilot, "escape")
            assert app.screen is app.main and victim.proc.poll() is None
            await press(pilot, "f9")
            assert isinstance(app.screen, KillDialog)
            await press(pilot, "enter")
            assert victim.proc.wait(5) == -signal.SIGTERM
    finally:
        victim.stop()


async def test_kill_refuses_pid_1_and_itself(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        select(app, 1)
        await press(pilot, "k")
        assert app.screen is app.main  # no dialog
        assert any("never signalled" in n for n in app.notes)  # type: ignore[attr-defined]
        select(app, os.getpid())  # in the test, nettop-ui runs inside pytest
        await press(pilot, "k")
        assert app.screen is app.main
        assert any("nettop-ui itself" in n for n in app.notes)  # type: ignore[attr-defined]


# -- help, quit, failure, keymap ------------------------------------------------------------


async def test_help_lists_every_key(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = {row[2] for row in app.screen.rows}
        assert {"sort_sent", "filter", "tree", "kill", "pause", "panel_gpu", "quit"} <= ids
        await press(pilot, "escape", "f1")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape")
        assert app.screen is app.main


@pytest.mark.parametrize("key", ["q", "f10", "ctrl+c"])
async def test_quit_keys(kids: dict[str, Child], key: str) -> None:
    async with running(kids) as (app, pilot):
        await pilot.press(key)
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", timeout=5)
        assert app.return_value == 0
        assert app.source.stopped


async def test_backend_failure_shows_a_banner_and_the_rest_keeps_running(
    kids: dict[str, Child],
) -> None:
    async with running(kids, fail_at=3) as (app, pilot):
        await wait_for(
            pilot, lambda: app.shown is not None and app.shown.failure is not None, "the failure"
        )
        await pilot.pause()
        banner = "\n".join(screen_lines(app)[:4])
        assert "backend scripted failed" in banner and "capture process died" in banner
        ticks = app.frames_received
        await wait_for(pilot, lambda: app.frames_received >= ticks + 2, "frames after failure")
        alpha = app.main.table.get_cell(key_of(app, kids["alpha"].pid), "up")
        assert alpha.value is None and alpha.text.plain.strip() == "-"  # unknown, not 0
        await press(pilot, "s")  # keys still work
        assert app.opts.sort == "up"


class FallbackBackend(ScriptedBackend):
    """What `--backend auto` would pick next: sees no traffic at all."""

    name = "fallback"
    layer = "wire frames"

    def __init__(self) -> None:
        super().__init__(lambda _tick: [])


async def test_backend_failure_with_a_fallback_says_so_and_switches(
    kids: dict[str, Child],
) -> None:
    async with running(kids, fail_at=3, fallbacks=[FallbackBackend]) as (app, pilot):
        await wait_for(pilot, lambda: app.source.backend_name == "fallback", "the switch")
        ticks = app.frames_received
        await wait_for(pilot, lambda: app.frames_received >= ticks + 2, "the fallback's frames")
        top = "\n".join(screen_lines(app)[:4])
        assert "continuing with fallback" in top and "fallback · wire frames" in top
        alpha = app.main.table.get_cell(key_of(app, kids["alpha"].pid), "up")
        assert alpha.value == 0  # the new backend saw nothing from it: known zero


async def test_keys_are_remappable_by_binding_id(kids: dict[str, Child]) -> None:
    async with running(kids, keymap={"sort_sent": "x"}) as (app, pilot):
        await press(pilot, "s")
        assert app.opts.sort == "total"
        await press(pilot, "x")
        assert app.opts.sort == "up"


@pytest.mark.parametrize(
    ("toml", "sort_up_key", "notice"),
    [
        ('[keys]\nsort_sent = "x"\n', "x", None),
        ("[keys\n", "s", "keymap.toml"),
        ('[keys]\nsort_sent = "x"\nsort_sentt = "y"\n', "x", "unknown binding id 'sort_sentt'"),
    ],
    ids=["valid", "broken", "unknown-id"],
)
async def test_the_users_keymap_file_applies_or_says_why_not(
    toml: str, sort_up_key: str, notice: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NettopApp.for_user, as `nettop-ui` starts it: the keymap under XDG_CONFIG_HOME is
    used; a broken one is a notice naming the file while the defaults stay; an id that
    is no binding's is named (the valid entries still apply)."""
    (tmp_path / "nettop-ui").mkdir()
    (tmp_path / "nettop-ui" / "keymap.toml").write_text(toml)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    source = ScriptedSource(scripted_snapshots(3))
    notes: list[str] = []
    notify = NettopApp.notify

    def capture(app: NettopApp, message: str, *args: Any, **kw: Any) -> None:
        notes.append(message)
        notify(app, message, *args, **kw)

    monkeypatch.setattr(NettopApp, "notify", capture)  # for_user binds it before we could
    app = NettopApp.for_user(source, why="test")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await press(pilot, sort_up_key)
        assert app.opts.sort == "up"
        if notice is None:
            assert not any("keymap.toml" in n for n in notes), notes
        else:
            assert any("keymap.toml" in n and notice in n for n in notes), notes


async def test_exited_process_stays_dimmed_with_its_totals(kids: dict[str, Child]) -> None:
    gone = spawn_named("ntu-gone")
    async with running({**kids, "gone": gone}) as (app, pilot):
        key = key_of(app, gone.pid)
        gone.stop()
        await wait_for(
            pilot,
            lambda: any(r.key == key and r.kind == "exited" for r in app.main.rows),
            "the exit",
        )
        cell = app.main.table.get_cell(key, "pid")
        assert "dim" in str(cell.text.style)
        for column in ("cpu", "mem"):  # live-only figures: unknown once it has exited
            assert app.main.table.get_cell(key, column).text.plain.strip() == "-", column
        await press(pilot, "m")
        assert app.main.table.get_cell(key, "total").value > 0


# -- issue #11: keys a daily htop user reaches for -----------------------------------------


async def test_home_and_end_jump_to_the_first_and_last_row(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        table = app.main.table
        assert table.row_count > table.size.height  # more rows than the screen shows
        await press(pilot, "end")
        assert table.cursor_row == table.row_count - 1
        await press(pilot, "home")
        assert table.cursor_row == 0
        await press(pilot, "end", "ctrl+home")  # still works
        assert table.cursor_row == 0


@pytest.mark.parametrize("key", ["f3", "f4"])
async def test_f3_and_f4_open_the_filter_box(kids: dict[str, Child], key: str) -> None:
    async with running(kids) as (app, pilot):
        bar = app.main.query_one(FilterBar)
        await press(pilot, key, *"ntu-be")
        assert bar.editing
        assert [r.value("pid") for r in app.main.rows if r.process] == [kids["beta"].pid]


async def test_u_shows_only_the_processes_of_the_user_picked(kids: dict[str, Child]) -> None:
    other = spawn_named("ntu-nobody", "--role", "other", user="nobody")
    try:
        async with running({**kids, "other": other}) as (app, pilot):
            await press(pilot, "u")
            picker = app.screen
            assert isinstance(picker, UserPicker)
            assert picker.choices[0] is None  # "all users" comes first
            assert {"root", "nobody"} <= set(picker.choices[1:])
            text = "\n".join(screen_lines(app))
            assert "all users" in text and "nobody" in text
            await press(pilot, "escape")  # changes nothing
            assert app.screen is app.main and app.opts.user is None
            await pick_user(app, pilot, "nobody")
            assert app.opts.user == "nobody"
            # Only nobody's rows (other tests on the machine may run more as nobody).
            assert {r.value("user") for r in app.main.rows} == {"nobody"}
            assert other.pid in {r.value("pid") for r in app.main.rows}
            assert "user nobody" in screen_lines(app)[0]  # the header says whose
            await pick_user(app, pilot, None)
            assert app.opts.user is None and "user nobody" not in screen_lines(app)[0]
            pids = {r.value("pid") for r in app.main.rows}
            assert {other.pid, kids["alpha"].pid} <= pids
    finally:
        other.stop()


async def test_new_keys_are_in_help_and_remappable(kids: dict[str, Child]) -> None:
    async with running(kids) as (app, pilot):
        await press(pilot, "question_mark")
        rows = {row[2]: row[0] for row in app.screen.rows}  # type: ignore[attr-defined]
        assert {"pick_user", "cursor_first", "cursor_last"} <= set(rows)
        assert "f3" in rows["filter"].lower() and "f4" in rows["filter"].lower()


async def test_footer_shows_every_key_it_lists_at_160_columns(kids: dict[str, Child]) -> None:
    async with running(kids, size=(160, 48)) as (app, _pilot):
        footer = screen_lines(app)[-1]
        shown = [a.binding for a in app.screen.active_bindings.values() if a.binding.show]
        assert shown
        for binding in shown:
            assert binding.description in footer, (binding.description, footer)


async def test_wide_terminal_keeps_numbers_near_the_program(kids: dict[str, Child]) -> None:
    """At 220 columns a short command line is not followed by ~130 blank cells: PROGRAM
    is no wider than PROGRAM_MAX_WIDTH, and every column is there."""
    short = subprocess.Popen(["sleep", "3600"])
    try:
        async with running(kids, size=(220, 50)) as (app, pilot):
            await press(pilot, "slash", *"sleep 3600", "enter")
            await wait_for(
                pilot, lambda: any(f" {short.pid} " in line for line in screen_lines(app)), "it"
            )
            lines = screen_lines(app)
            head = next(line for line in lines if "PROGRAM" in line and "UP/s" in line)
            assert all(label in head for label in ("CPU%", "MEM", "DISK R/s", "CONNS"))
            row = next(line for line in lines if line.lstrip().startswith(f"{short.pid} "))
            gap = re.search(r"sleep 3600( +)\S", row)
            assert gap is not None, row
            assert len(gap.group(1)) < PROGRAM_MAX_WIDTH, row
    finally:
        short.kill()
        short.wait()


async def test_keys_typed_right_after_slash_land_in_the_filter_box(
    kids: dict[str, Child],
) -> None:
    """A fast typist's `/ntu-be` arrives as one burst: every key after `/` is queued
    before the box could take the focus, and must still land in it (before, `n`, `t`,
    `u`... went to the table as commands and the box stayed empty)."""
    async with running(kids) as (app, pilot):
        for char in "/ntu-be":
            key = {"/": "slash", "-": "minus"}.get(char, char)
            app.post_message(events.Key(key, char))  # queued together, no pause between
        await pilot.pause()
        await pilot.pause()
        bar = app.main.query_one(FilterBar)
        assert bar.editing and bar.input.value == "ntu-be"
        assert [r.value("pid") for r in app.main.rows if r.process] == [kids["beta"].pid]


# -- issue #15: keys before sampling --------------------------------------------------------


async def type_for(pilot: Pilot[int], seconds: float, key: str = "x") -> None:
    """One key every 0.1 s, a quick typist, for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await pilot.press(key)
        await asyncio.sleep(0.1)


async def test_no_sample_is_taken_while_keys_come_in() -> None:
    """Sampling every 0.1 s with the real psutil backend: while keys come in (into the
    filter box) no new sample starts, so none competes with them for the CPU; a tick
    already under way may still land. Typing on past source.HOLD_S lets one through,
    and sampling goes on once the keys pause."""
    app = NettopApp(MonitorSource(PsutilBackend(), 0.1), host="test")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.frames_received >= 2, "the first frames")
        await press(pilot, "slash")
        start = app.frames_received
        await type_for(pilot, HOLD_S * 0.6)
        while_typing = app.frames_received - start
        await type_for(pilot, HOLD_S * 0.8)
        held_long = app.frames_received - start
        paused = app.frames_received
        await wait_for(pilot, lambda: app.frames_received >= paused + 3, "sampling again")
    assert while_typing <= 1, while_typing
    assert held_long > while_typing, (while_typing, held_long)


def footer_keys(app: NettopApp) -> list[Widget]:
    return list(app.main.query(FooterKey))


async def test_the_footer_follows_the_focus_once_the_keys_pause(kids: dict[str, Child]) -> None:
    """`/`, a letter and Enter typed at a typist's pace end with the footer's keys as they
    began: it is not mounted anew meanwhile (Textual's footer did so at every change of
    focus, ~50 ms at 2,000 processes each time). Once the keys pause it shows the
    filter box's keys (not `q Quit`, which the box takes as text), and the table's again
    after Enter."""
    async with running(kids, size=(160, 48)) as (app, pilot):
        before = footer_keys(app)
        assert "q Quit" in screen_lines(app)[-1]
        for key in ("slash", "b", "enter"):
            await press(pilot, key)
            await asyncio.sleep(0.1)
        await asyncio.sleep(QUIET_S * 2)
        await pilot.pause()
        assert footer_keys(app) == before  # the same widgets: not mounted again
        await press(pilot, "slash")
        await wait_for(pilot, lambda: "q Quit" not in screen_lines(app)[-1], "the box's keys")
        await press(pilot, "enter")
        await wait_for(pilot, lambda: "q Quit" in screen_lines(app)[-1], "the table's keys")


async def test_clearing_a_filter_redraws_the_rows_it_hid_without_making_them_anew() -> None:
    """The rows a filter hides are kept: after `/`, a filter that hides all but one and
    delete, every process's row is the one drawn before (with 2,000 processes, making them anew
    took ~50 ms of the key's time)."""
    app = NettopApp(ScriptedSource(scripted_snapshots(3)), host="test")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        before = {r.key: r for r in app.main.rows if r.process is not None}
        name = next(r.process.name for r in before.values() if r.process is not None)
        await press(pilot, "slash", *name, "enter")
        assert 0 < len(app.main.rows) < len(before)
        await press(pilot, "delete")
        after = {r.key: r for r in app.main.rows if r.process is not None}
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
