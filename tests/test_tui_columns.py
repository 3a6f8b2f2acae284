"""Adding a process-table column is one `Column` declaration (nettop_ui/tui/columns.py).

These tests declare a column the table does not have (THR: a process's threads) in one
place, the column registry, and check that with nothing else changed it is in the
header, its cells are formatted, rows sort on it, and the tree and user views roll it up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nettop_ui.core import sum_known
from nettop_ui.format import Scale
from nettop_ui.tui import NettopApp, ScriptedSource, columns
from nettop_ui.tui.cells import make_cell
from nettop_ui.tui.columns import UNKNOWN, Column, ColumnSet
from nettop_ui.tui.frame import Frame, ProcessView
from nettop_ui.tui.model import ViewOptions, build_rows
from tests.tui_fixtures import FixedClock, screen_lines, scripted_snapshots

THREADS = Column(
    "threads",
    "THR",
    6,
    2,
    lambda p, totals: p.threads,
    lambda v, bits, marked: f"{v}t" if v is not None else UNKNOWN,
    combine=sum_known,
    rolls_up=True,
)


@pytest.fixture(autouse=True)
def threads_column(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The one declaration: the registry with THREADS after the usual columns."""
    monkeypatch.setattr(columns, "TABLE", ColumnSet((*columns.TABLE.all, THREADS)))
    yield


def proc(pid: int, ppid: int, threads: int | None, user: str = "root") -> ProcessView:
    return ProcessView(
        pid=pid, create_time=float(pid), name=f"p{pid}", ppid=ppid, user=user, threads=threads
    )


def frame(*procs: ProcessView) -> Frame:
    return Frame(ts=0.0, interval_s=1.0, processes=tuple(procs))


def pids(rows: list[Any]) -> list[int]:
    return [r.value("pid") for r in rows if r.process is not None]


def test_rows_sort_on_the_new_column_unknown_last() -> None:
    f = frame(proc(10, 1, 3), proc(11, 1, None), proc(12, 1, 7), proc(13, 1, 5))
    assert pids(build_rows(f, ViewOptions(sort="threads"))) == [12, 13, 10, 11]
    assert pids(build_rows(f, ViewOptions(sort="threads", descending=False))) == [10, 13, 12, 11]


def test_tree_and_user_views_aggregate_the_new_column() -> None:
    f = frame(
        proc(1, 0, 1),
        proc(10, 1, 3, user="alice"),
        proc(11, 10, 4, user="alice"),
        proc(20, 1, None, user="bob"),
    )
    tree = {r.value("pid"): r.value("threads") for r in build_rows(f, ViewOptions(mode="tree"))}
    assert tree == {1: 1 + 3 + 4, 10: 3 + 4, 11: 4, 20: None}
    users = build_rows(f, ViewOptions(mode="user"))
    assert {r.key: r.value("threads") for r in users} == {
        "user:root": 1,
        "user:alice": 7,
        "user:bob": None,  # no member's count known: unknown, not 0
    }


def test_the_new_column_formats_its_cells() -> None:
    assert make_cell("threads", 12, "proc", Scale()).text.plain == "12t"
    assert make_cell("threads", None, "proc", Scale()).text.plain == UNKNOWN
    exited = make_cell("threads", 2, "exited", Scale())
    assert exited.text.style == "dim" and exited.text.justify == "right"


async def test_the_table_shows_the_new_column() -> None:
    source = ScriptedSource(scripted_snapshots(3), backend_name="ebpf")
    app = NettopApp(source, host="t", clock=FixedClock())
    async with app.run_test(size=(180, 40)) as pilot:
        await pilot.pause()
        table = app.main.table
        assert table.column_keys[-1] == "threads"
        assert [c.label.plain for c in table.columns.values()][-1] == "THR"
        lines = screen_lines(app)
        header = next(line for line in lines if "PROGRAM" in line)
        assert header.rstrip().endswith("THR")
        systemd = next(line for line in lines if " systemd " in line)
        assert systemd.rstrip().endswith(" 1t")  # scripted: one thread per live process
