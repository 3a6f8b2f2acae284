"""The TUI's pure parts: safe text, cells, sparklines, filtering, sorting, tree, groups, kill."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import signal
import time
import unicodedata
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.binding import Binding

import nettop_ui.tui
from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.core import BackendFailure, ProcessTraffic, TrafficSample
from nettop_ui.format import Scale
from nettop_ui.tui.bindings import BINDING_IDS
from nettop_ui.tui.cells import make_cell, sparkline
from nettop_ui.tui.columns import TABLE, Program
from nettop_ui.tui.frame import Frame, FrameCollector, ProcessView, build_frame, view_of
from nettop_ui.tui.header import traffic_totals
from nettop_ui.tui.keymap import load_keymap
from nettop_ui.tui.kill import KillRefused, refusal, send_signal
from nettop_ui.tui.model import (
    Matcher,
    RowData,
    SortedRows,
    ViewOptions,
    build_rows,
    parent_index,
    sort_rows,
    visible_columns,
)
from nettop_ui.tui.safe import ELLIPSIS, safe_text
from tests.tui_fixtures import spawn_named


def proc(
    pid: int,
    ppid: int = 1,
    name: str = "p",
    up: float | None = 0.0,
    down: float | None = 0.0,
    **kw: Any,
) -> ProcessView:
    sent = None if up is None else int(up * 10)
    recv = None if down is None else int(down * 10)
    return ProcessView(
        pid=pid,
        create_time=100.0 + pid,
        name=name,
        ppid=ppid,
        sent_bps=up,
        recv_bps=down,
        sent_bytes=sent,
        recv_bytes=recv,
        **kw,
    )


def frame(*procs: ProcessView) -> Frame:
    return Frame(ts=0.0, interval_s=1.0, processes=tuple(procs))


# -- safe text ----------------------------------------------------------------------------


@given(st.text())
def test_safe_text_never_leaves_control_or_bidi_characters(text: str) -> None:
    out = safe_text(text, 80)
    assert len(out) <= 80
    for ch in out:
        assert unicodedata.category(ch) != "Cc"
        assert not 0x202A <= ord(ch) <= 0x202E and not 0x2066 <= ord(ch) <= 0x2069


def test_safe_text_examples() -> None:
    assert safe_text("a\nb\tc\x1b[31m\x7f\x9b") == "a\\nb\\tc\\e[31m\\x7f\\x9b"
    assert safe_text("\u202eevil") == "\\u202eevil"
    assert safe_text(None) == "-"
    huge = "x" * 100_000
    assert safe_text(huge, 50) == "x" * 49 + ELLIPSIS
    from nettop_ui.tui.model import Program

    # as the table draws a process name: never parsed as markup
    text = make_cell("program", Program("", "[red]not markup[/red]", ""), "proc", Scale()).text
    assert text.plain == "[red]not markup[/red]"
    assert all("red" not in str(span.style) for span in text.spans)


def test_cells_render_text_not_markup_and_unknown_as_dash() -> None:
    from nettop_ui.tui.model import Program

    cell = make_cell("program", Program("", "[kworker/0:1]", ""), "proc", Scale())
    assert cell.text.plain == "[kworker/0:1]"
    assert make_cell("up", None, "proc", Scale()).text.plain == "-"
    assert make_cell("up", 0.0, "proc", Scale()).text.plain == "0B"
    assert make_cell("up", 1536.0, "proc", Scale(bits=True)).text.plain == "12.0Kib"
    assert make_cell("cpu", None, "exited", Scale()).text.style == "dim"
    low, high = make_cell("up", 1.0, "proc", Scale()), make_cell("up", 2.0, "proc", Scale())
    assert low < high and make_cell("up", None, "proc", Scale()) > high  # unknown sorts apart


def test_sparkline() -> None:
    assert sparkline((), 5) == "     "
    assert sparkline((0.0, 0.0), 4) == "    "
    assert sparkline((1.0, 2.0, 4.0, 8.0), 4) == "▁▂▄█"
    assert sparkline(tuple(float(i) for i in range(60)), 10)[-1] == "█"
    assert len(sparkline(tuple(float(i) for i in range(61)), 10)) == 10
    assert sparkline((float("nan"), 5.0), 2) == " █"


# -- filter, sort, views ------------------------------------------------------------------


def test_matcher() -> None:
    p = proc(4242, name="nginx", cmdline=("nginx", "-g", "daemon off;"), user="www-data")
    assert Matcher("NGI").matches(p) and Matcher("daemon").matches(p)
    assert Matcher("www").matches(p) and Matcher("424").matches(p)
    assert not Matcher("apache").matches(p)
    assert Matcher("!^ngin[x]$").matches(p)
    bad = Matcher("![")
    assert bad.error and not bad.active and bad.matches(p)  # a bad regex filters nothing


def test_regex_filter_runs_in_linear_time() -> None:
    """`(a+)+$` against a's then "!" backtracks 2**n ways in a backtracking engine; the
    filter's engine (RE2) takes time linear in the text, so this finishes at once."""
    p = proc(7, name="victim", cmdline=("victim", "a" * 26 + "!"))  # Python's re: ~5 s
    started = time.monotonic()
    assert not Matcher("!(a+)+$").matches(p)
    assert Matcher("!(a+)+!$").matches(p)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("pattern", "says"),
    [("!(a)\\1", "backreferences"), ("!a(?=b)", "lookaround"), ("!(?<!a)b", "lookaround")],
)
def test_regex_syntax_re2_lacks_is_a_clear_message(pattern: str, says: str) -> None:
    m = Matcher(pattern)
    assert m.error is not None and says in m.error and not m.active


def test_regex_filter_on_names_that_are_not_utf8() -> None:
    p = proc(8, name="bad\udcff", cmdline=("bad\udcff", "x\udcfey"))  # raw bytes, as read
    assert Matcher("!^bad").matches(p) and Matcher("!y$").matches(p)


def test_sort_puts_unknown_last_both_ways() -> None:
    f = frame(proc(10, up=5.0), proc(11, up=None, down=None), proc(12, up=1.0))
    rows = build_rows(f, ViewOptions(sort="up", descending=True))
    assert [r.value("pid") for r in rows] == [10, 12, 11]
    rows = sort_rows(rows, "up", descending=False)
    assert [r.value("pid") for r in rows] == [12, 10, 11]


def sorted_by_passes(rows: list[RowData], column: str, descending: bool) -> list[RowData]:
    """sort_rows's order spelled out as stable sorts: PID and row key, then TOTAL
    (descending), then the column; unknown values last, by PID and row key."""
    idx, total = TABLE.index[column], TABLE.index["total"]
    key = TABLE.all[idx].sort_key

    def pid(r: RowData) -> tuple[bool, Any, str]:
        return (r.values[0] is None, r.values[0] or 0, r.key)

    known = sorted((r for r in rows if r.values[idx] is not None), key=pid)
    known.sort(key=lambda r: r.values[total] or 0, reverse=True)
    known.sort(key=lambda r: key(r.values[idx]), reverse=descending)
    return known + sorted((r for r in rows if r.values[idx] is None), key=pid)


def spec_row(n: int, spec: tuple[int | None, Any, Any, str], key: str | None = None) -> RowData:
    pid, total, other, name = spec
    values: list[Any] = [None] * len(TABLE.all)
    values[0], values[TABLE.index["total"]] = pid, total
    values[TABLE.index["up"]] = values[TABLE.index["cpu"]] = other
    values[TABLE.index["user"]] = name
    values[TABLE.index["program"]] = Program("", name, str(n % 2))
    return RowData(key or str(n), "proc", tuple(values))


FIGURES = st.sampled_from([None, 0, 1, 2.5, -0.0, 7, True])  # ties and unknowns, often
PIDS = st.one_of(st.none(), st.integers(1, 9))


@given(
    st.lists(
        st.tuples(PIDS, FIGURES, FIGURES, st.sampled_from("aBb")),
        max_size=30,
    ),
    st.sampled_from(["total", "up", "cpu", "pid", "user", "program"]),
    st.booleans(),
)
def test_sort_rows_orders_as_the_passes_one_by_one(
    specs: list[tuple[int | None, Any, Any, str]], column: str, descending: bool
) -> None:
    """One sort on a combined key for numbers (the usual case), the passes for names:
    the same order either way, ties and unknown values included."""
    rows = [spec_row(n, spec) for n, spec in enumerate(specs)]
    expected = [r.key for r in sorted_by_passes(rows, column, descending)]
    assert [r.key for r in sort_rows(list(rows), column, descending)] == expected


SPECS = st.tuples(PIDS, FIGURES, FIGURES, st.sampled_from("aBb"))


@given(
    st.lists(SPECS, min_size=1, max_size=40),
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 60), SPECS), max_size=12),  # rows made anew
            st.lists(st.integers(0, 60), max_size=4),  # rows gone
            st.sampled_from(["total", "up", "cpu", "user"]),
            st.booleans(),
        ),
        max_size=8,
    ),
)
def test_sorted_rows_kept_between_ticks_order_as_sort_rows(
    first: list[tuple[int | None, Any, Any, str]],
    ticks: list[tuple[list[tuple[int, Any]], list[int], str, bool]],
) -> None:
    """SortedRows places only the rows that are new since the last tick (a changed
    process's row is a new object); its order is sort_rows's after every tick, whatever
    changed, went, came or was sorted on."""
    rows = {str(n): spec_row(n, spec) for n, spec in enumerate(first)}
    order = SortedRows()
    made = len(first)
    for anew, gone, column, descending in ticks:
        for n, spec in anew:  # a key seen before is that row changed; else a new one
            made += 1
            rows[str(n)] = spec_row(made, spec, key=str(n))
        for n in gone:
            rows.pop(str(n), None)
        listed = list(rows.values())
        expected = [r.key for r in sort_rows(list(listed), column, descending)]
        assert [r.key for r in order.sort(listed, column, descending)] == expected


def test_tree_rolls_children_into_parents_and_folds() -> None:
    f = frame(
        proc(1, 0, "init"),
        proc(10, 1, "shell", up=1.0),
        proc(11, 10, "curl", up=100.0),
        proc(12, 10, "wget", up=10.0),
        proc(20, 1, "idle"),
    )
    opts = ViewOptions(mode="tree")
    rows = build_rows(f, opts)
    assert [r.value("pid") for r in rows] == [1, 10, 11, 12, 20]
    assert rows[0].value("up") == 111.0 and rows[1].value("up") == 111.0
    assert rows[2].value("program").prefix == "│  ├─"
    opts = dataclasses.replace(opts, collapsed=frozenset({rows[1].key}))
    assert [r.value("pid") for r in build_rows(f, opts)] == [1, 10, 20]
    # a match keeps the path to it
    opts = dataclasses.replace(opts, filter_text="wget", collapsed=frozenset())
    assert [r.value("pid") for r in build_rows(f, opts)] == [1, 10, 12]


def test_parent_index_survives_cycles_and_reused_pids() -> None:
    a, b = proc(5, 6), proc(6, 5)
    parents = parent_index([a, b])
    assert None in parents.values()
    old = ProcessView(7, 1.0, "old", exited=True, ppid=1)
    new = ProcessView(7, 2.0, "new", ppid=1)
    child = proc(8, 7)
    assert parent_index([old, new, child])[child.key] == new.key


def test_user_groups_sum_and_open() -> None:
    f = frame(
        proc(1, user="root", up=1.0),
        proc(2, user="alice", up=2.0),
        proc(3, user="alice", up=3.0, cpu_percent=10.0),
    )
    opts = ViewOptions(mode="user")
    rows = build_rows(f, opts)
    assert [(r.key, r.value("up")) for r in rows] == [("user:alice", 5.0), ("user:root", 1.0)]
    opts = dataclasses.replace(opts, expanded_groups=frozenset({"user:alice"}))
    assert [r.key.split(":")[0] for r in build_rows(f, opts)] == ["user", "3", "2", "user"]


def test_only_active_and_unattributed() -> None:
    from nettop_ui.tui.frame import UnattributedView

    f = Frame(0.0, 1.0, (proc(1), proc(2, up=1.0)), UnattributedView(5, 5, 1.0, 1.0))
    rows = build_rows(f, ViewOptions(only_active=True))
    assert [r.key for r in rows] == ["unattributed", proc(2).key]  # 2 B/s beats 1 B/s
    unknown = frame(
        proc(1, up=None, down=None, connection_count=2),
        proc(2, up=None, down=None, connection_count=0),
    )
    assert [r.value("pid") for r in build_rows(unknown, ViewOptions(only_active=True))] == [1]


def test_columns_fit_the_terminal() -> None:
    narrow, program = visible_columns(79, has_gpu=False)
    assert {"pid", "program", "up", "down", "total"} <= set(narrow)
    assert "read" not in narrow and program >= 18
    wide, _ = visible_columns(159, has_gpu=True)
    assert "gpu" in wide and "conns" in wide and "user" in wide


def test_header_totals_fall_back_to_interfaces_when_bytes_are_unknown() -> None:
    from nettop_ui.system import InterfaceStats, SystemStats

    system = SystemStats(
        0.0,
        0.0,
        [],
        1,
        1,
        0,
        0,
        None,
        None,
        {"eth0": InterfaceStats(0, 0, 10.0, 20.0), "lo": InterfaceStats(0, 0, 5.0, 5.0)},
    )
    f = Frame(0.0, 1.0, (proc(1, up=None, down=None),), system=system)
    # The NET panel lists lo too, so the header sums it as well (issue #11 item 6).
    assert traffic_totals(f, totals=False) == (15.0, 25.0, " (interfaces)")
    assert traffic_totals(frame(proc(1, up=3.0, down=4.0)), totals=False) == (3.0, 4.0, "")


# -- frames -------------------------------------------------------------------------------


def test_frame_collector_makes_rates_unknown_after_a_failure() -> None:
    collector = FrameCollector(gpu=False, system=False, count_connections=False)
    pid = os.getpid()
    collector.ingest(TrafficSample(time.time(), 1.0, [ProcessTraffic(pid, 100, 200)]))
    assert collector.frame is not None
    me = next(p for p in collector.frame.processes if p.pid == pid)
    assert (me.sent_bps, me.recv_bps) == (100.0, 200.0)
    collector.ingest(BackendFailure("x", "gone"))
    assert collector.frame.failure is not None
    collector.fail_traffic()
    collector.ingest(TrafficSample(time.time(), 1.0, None))
    me = next(p for p in collector.frame.processes if p.pid == pid)
    assert me.sent_bps is None and me.sent_bytes == 100  # totals kept, rates unknown
    assert not collector.frame.traffic_known


def test_build_frame_copies_history_only_for_watched_keys() -> None:
    from tests.tui_fixtures import scripted_snapshots

    snap: Snapshot = scripted_snapshots(5)[-1]
    key = f"{snap.processes[3].pid}:{snap.processes[3].create_time}"
    f = build_frame(snap, {key})
    assert list(f.histories) == [key] and len(f.histories[key].ts) == 5
    assert f.by_key()[key].spark  # the last minute of traffic, for the sparkline


# -- kill, keymap -------------------------------------------------------------------------


def test_kill_refuses_init_itself_unknown_and_reused_pids() -> None:
    assert refusal(1, 1.0) and refusal(0, 1.0) and refusal(-5, 1.0)
    assert refusal(os.getpid(), 1.0)
    assert refusal(12345, None)
    child = spawn_named("ntu-kill")
    try:
        with pytest.raises(KillRefused, match="another process"):
            send_signal(child.pid, psutil.Process(child.pid).create_time() - 5, signal.SIGTERM)
        assert child.proc.poll() is None
        send_signal(child.pid, psutil.Process(child.pid).create_time(), signal.SIGKILL)
        assert child.proc.wait(5) == -signal.SIGKILL
        with pytest.raises(KillRefused, match="exited"):
            send_signal(child.pid, 1.0, signal.SIGTERM)
    finally:
        child.stop()


def test_keymap_file(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    assert load_keymap(path) == ({}, None)
    path.write_text('[keys]\nsort_sent = "x"\n')
    assert load_keymap(path) == ({"sort_sent": "x"}, None)
    path.write_text("[keys\n")
    keymap, problem = load_keymap(path)
    assert keymap == {} and problem is not None
    path.write_text('[keys]\nsort_sent = "x"\nsrot_recv = "y"\nquit = "q,f10"\n')
    keymap, problem = load_keymap(path)
    assert keymap == {"sort_sent": "x", "quit": "q,f10"}
    assert problem is not None and "unknown binding id 'srot_recv'" in problem


async def test_without_per_process_bytes_the_table_sorts_on_connections() -> None:
    from nettop_ui.tui import NettopApp, ScriptedSource
    from tests.tui_fixtures import FixedClock, scripted_snapshots

    snaps = scripted_snapshots(3)
    for snap in snaps:
        for p in snap.processes:
            p.sent_bps = p.recv_bps = None
            p.sent_bytes = p.recv_bytes = None
    source = ScriptedSource(snaps, backend_name="psutil", per_process=False)
    app = NettopApp(source, host="t", clock=FixedClock())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.opts.sort == "conns" and "conns" in app.main.table.column_keys
        first = app.main.rows[0]
        assert first.value("pid") == 901 and first.value("up") is None  # 48 sockets
        await pilot.press("a")  # "active" means: has sockets, when bytes are unknown
        assert all(r.value("conns") for r in app.main.rows if r.process)


def test_a_view_is_reused_only_while_every_field_it_copies_is_unchanged() -> None:
    """view_of hands on the old view when nothing changed; a change in any field a view
    takes from its ProcessState must make a new one (else the screen would go stale)."""
    taken = {f.name for f in dataclasses.fields(ProcessView)} - {
        "pid", "create_time", "key", "spark", "connections",  # identity; made by view_of
    }  # fmt: skip
    state = ProcessState(4242, 1.0, "proc", ["proc", "-x"], user="u", ppid=1)
    state.sent_bytes = state.recv_bytes = 10
    state.sent_bps = state.recv_bps = 5.0
    old = view_of(state, 60)
    assert view_of(state, 60, old=old) is old
    for name in sorted(taken):
        before = getattr(state, name)
        if isinstance(before, bool):
            changed: Any = not before
        elif isinstance(before, list | str):
            changed = before + before[:1]  # type: ignore[operator]  # list or str, not mixed
        else:
            changed = 7 if before is None else before + 1
        setattr(state, name, changed)
        assert view_of(state, 60, old=old) is not old, name
        setattr(state, name, before)
    assert view_of(state, 60, old=old) is old


def test_every_binding_id_is_one_a_keymap_may_name() -> None:
    """A binding given an id in any TUI module is in BINDING_IDS, which load_keymap
    checks names against: else remapping it would be refused as unknown."""
    ids: set[str] = set()
    for info in pkgutil.iter_modules(nettop_ui.tui.__path__):
        module = importlib.import_module(f"nettop_ui.tui.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                bindings = cls.__dict__.get("BINDINGS", [])
                ids |= {b.id for b in bindings if isinstance(b, Binding) and b.id}
    assert {"open_process", "pick_user", "help_close", "filter_clear"} <= ids
    assert ids <= BINDING_IDS, ids - BINDING_IDS


def test_view_options_change_only_by_replacement() -> None:
    """`ViewOptions` is frozen, its sets too: a screen cannot change it in place behind
    the one place that replaces it and redraws (`MainScreen.set_options`)."""
    opts = ViewOptions(mode="tree")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.sort = "up"  # type: ignore[misc]
    assert not hasattr(opts.collapsed, "add") and not hasattr(opts.expanded_groups, "add")
    changed = dataclasses.replace(opts, collapsed=opts.collapsed | {"1:1.0"})
    assert changed.collapsed == {"1:1.0"} and opts.collapsed == frozenset()
