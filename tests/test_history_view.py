"""The history database in the TUI: `nettop-ui replay --db` and the live app's `H`.

The database is filled by the real recorder (`Recorder`, through `monitor`, with a
simulated clock, as tests/test_record.py drives it) over real named processes, in two
runs with the recorder stopped in between, the first one's minutes rolled into their
hour. Through Pilot, every figure shown is checked against the database's own rows;
a concurrently running `nettop-ui record` keeps committing while the view reads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nettop_ui.core import ProcessTraffic
from nettop_ui.format import Scale
from nettop_ui.monitor import Tee, monitor
from nettop_ui.record import Recorder
from nettop_ui.store import HOUR, MINUTE, Batch, HostRow, ProcInfo, ProcRow, Store
from nettop_ui.tui.detail_screen import DetailScreen
from nettop_ui.tui.filter_bar import FilterBar
from nettop_ui.tui.history_source import HistoryApp, HistorySource
from nettop_ui.tui.live import LiveApp
from nettop_ui.tui.source import ScriptedSource
from tests.test_record import Clock, committed_run, one_error, read, start_recorder
from tests.test_replay import header_text, history_len, nettop, press
from tests.tmuxterm import tui
from tests.tui_fixtures import (
    HOSTILE_NAME,
    MIB,
    FixedClock,
    ScriptedBackend,
    capture_notices,
    named_children,
    pid_order,
    screen_lines,
    scripted_snapshots,
    table_order,
    wait_for,
)

# Three whole hours ago: inside the live app's last 24 h, and far enough back for a
# rolled hour, a gap and a second run.
H0 = int(time.time() // HOUR * HOUR) - 3 * HOUR
RUN1, RUN2 = H0 + 50 * MINUTE, H0 + 100 * MINUTE  # the two recorder starts
TICKS, STEP_S = 12, 20.0  # per run: 4 simulated minutes
WEB, DB = (60_000, 20_000), (10_000, 140_000)  # (sent, received) bytes a tick


@dataclass
class Recorded:
    path: Path
    web: int  # the pids of the two named processes
    db: int


def record(path: Path, start: float, script: Any, minutes_s: float) -> None:
    """One run of the real recorder, `TICKS` ticks `STEP_S` simulated seconds apart."""
    clock = Clock(start, step=STEP_S)
    store = Store(str(path), "scripted", start)
    try:
        recorder = Recorder(store, "scripted", commit_every=1, clock=clock, minutes_s=minutes_s)
        sinks = Tee(clock, recorder)
        backend = ScriptedBackend(script)
        asyncio.run(monitor(backend, 0.05, sinks, count=TICKS, handle_signals=False))
    finally:
        store.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    path = tmp_path_factory.mktemp("history") / "history.db"
    with named_children("hist-web", "hist-db") as (web, db):

        def script(_tick: int) -> list[ProcessTraffic]:
            return [ProcessTraffic(web.pid, *WEB), ProcessTraffic(db.pid, *DB)]

        record(path, RUN1, script, minutes_s=30 * 86400)
        # Minutes older than half an hour are rolled up: the first run's hour.
        record(path, RUN2, script, minutes_s=1800)
        yield Recorded(path, web.pid, db.pid)


def db_rows(path: Path, start: int, span: int) -> dict[int, list[Any]]:
    """Per pid: sent, received, CPU seconds, peak RSS in the slot, as the database has them."""
    rows = read(
        path,
        "SELECT p.pid, r.sent_bytes, r.recv_bytes, r.cpu_s, r.peak_rss_bytes FROM proc_rollups r"
        " JOIN procs p ON p.id = r.proc WHERE r.span = ? AND r.start = ? AND p.pid IS NOT NULL",
        span,
        start,
    )
    return {pid: values for pid, *values in rows}


def db_totals(path: Path, pid: int, slots: list[tuple[int, int]]) -> tuple[int, int]:
    """The process's bytes summed over `slots`, as the database has them."""
    rows = [db_rows(path, start, span).get(pid) for start, span in slots]
    return sum(r[0] for r in rows if r), sum(r[1] for r in rows if r)


def row_line(app: Any, pid: int) -> str:
    """The table line of process `pid` (PID is its first column)."""
    return next(line for line in screen_lines(app) if line.split()[:1] == [str(pid)])


def check_slot(app: Any, rec: Recorded) -> None:
    """What is shown for the slot on display is the database's rows for it."""
    start, span = app.replay.slots[app.replay.index]
    want = db_rows(rec.path, start, span)
    assert app.shown is not None and app.shown.ts == start
    shown = {p.pid: p for p in app.shown.processes}
    scale = Scale()
    for pid in (rec.web, rec.db):
        sent, recv, cpu, rss = want[pid]
        p = shown[pid]
        assert (p.sent_bps, p.recv_bps) == (sent / span, recv / span)
        assert p.cpu_percent == round(100 * cpu / span, 1)
        assert p.rss_bytes == rss and rss > 0
        line = row_line(app, pid)
        assert scale.traffic(sent / span) in line and scale.traffic(recv / span) in line, line
    assert {p for p in shown if p > 0} == set(want)  # every process of the slot, no other


async def test_history_view_shows_the_databases_minutes(recorded: Recorded) -> None:
    source = HistorySource(str(recorded.path), H0, time.time())
    slots = source.slots
    assert slots[0] == (H0, HOUR)  # the first run, rolled into its hour
    assert all(span == MINUTE for _, span in slots[1:])
    gap = slots.index((H0 + 80 * MINUTE, MINUTE))  # the recorder was not running
    second = slots.index((RUN2 + 2 * MINUTE, MINUTE))
    app = HistoryApp(source, host="test")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        assert f"history 1/{len(slots)}" in header_text(app) and "(60 min)" in header_text(app)
        assert "partly a gap: recorder not running" in header_text(app)  # stopped at :54
        check_slot(app, recorded)

        await press(pilot, "right")  # the first minute after the rolled hour: in the gap
        assert f"history 2/{len(slots)}" in header_text(app)
        await press(pilot, "end", *["left"] * (len(slots) - 1 - gap))
        assert app.replay.index == gap
        assert "gap: recorder not running" in header_text(app)
        assert table_order(app) == []  # no process, and traffic unknown, never zero
        assert "↑-/s" in header_text(app) and "↓-/s" in header_text(app)

        await press(pilot, *["right"] * (second - gap))
        assert "gap" not in header_text(app)
        check_slot(app, recorded)
        start, _span = slots[second]
        hosts = read(
            recorded.path,
            "SELECT host, sent_bytes FROM host_rollups WHERE span = ? AND start = ?",
            MINUTE,
            start,
        )
        assert hosts and app.shown is not None and app.shown.remotes is not None
        assert {(h.address, h.sent_bps) for h in app.shown.remotes} == {
            (h, s / MINUTE) for h, s in hosts
        }

        await press(pilot, "m")  # totals: summed from the start of the range
        for pid in (recorded.web, recorded.db):
            sent, recv = db_totals(recorded.path, pid, slots[: second + 1])
            p = next(p for p in app.shown.processes if p.pid == pid)
            assert (p.sent_bytes, p.recv_bytes) == (sent, recv)
            assert Scale().traffic(sent) in row_line(app, pid)
        await press(pilot, "m")

        await press(pilot, "s")  # sort by sent, then received: as the database says
        assert pid_order(app, [recorded.web, recorded.db]) == [recorded.web, recorded.db]
        await press(pilot, "r")
        assert pid_order(app, [recorded.web, recorded.db]) == [recorded.db, recorded.web]

        await press(pilot, "slash", *"hist-", "escape", "U")  # filter, then group by user
        groups = [r for r in app.main.rows if r.kind == "group"]
        want = db_rows(recorded.path, start, MINUTE)
        assert len(groups) == 1
        both = (want[recorded.web][0] + want[recorded.db][0]) / MINUTE
        assert groups[0].value("up") == pytest.approx(both)
        await press(pilot, "U", "delete", "slash", *"hist-web", "escape")
        assert [int(k.split(":")[0]) for k in table_order(app)] == [recorded.web]

        await press(pilot, "enter")  # drill-down: its minutes so far, from the database
        assert isinstance(app.screen, DetailScreen)
        rows = sum(recorded.web in db_rows(recorded.path, *slot) for slot in slots[: second + 1])
        await wait_for(pilot, lambda: history_len(app) == rows, "the drill-down's history")
        text = "\n".join(screen_lines(app))
        assert "minutes" in text and "seconds" not in text  # the charts' time axis
        # Its remote hosts, from the database's bytes per process and host.
        hosts = read(
            recorded.path,
            "SELECT host, sent_bytes, recv_bytes FROM proc_host_rollups r JOIN procs p"
            " ON p.id = r.proc WHERE p.pid = ? AND r.span = ? AND r.start = ?",
            recorded.web,
            MINUTE,
            start,
        )
        assert hosts and app.screen.query_one("#detail-conns-box").border_title == (
            f"remote hosts ({len(hosts)})"
        )
        shown_hosts = {(c.remote, c.sent_bps, c.recv_bps) for _, c in app.screen._conns}
        assert shown_hosts == {(h, s / MINUTE, r / MINUTE) for h, s, r in hosts}
        scale = Scale()
        for host, s_bytes, r_bytes in hosts:
            line = next(line for line in screen_lines(app) if host in line and "per host" in line)
            assert (
                scale.traffic(s_bytes / MINUTE) in line and scale.traffic(r_bytes / MINUTE) in line
            )
        await press(pilot, "left")  # the timeline moves in the drill-down too
        assert app.replay.index == second - 1
        await wait_for(pilot, lambda: history_len(app) == rows - 1, "one minute less")
    source.close()


def shown_ts(app: LiveApp) -> float:
    assert app.shown is not None
    return app.shown.ts


async def test_the_live_app_switches_to_the_history_and_back(
    recorded: Recorded, tmp_path: Path
) -> None:
    app = LiveApp(
        ScriptedSource(scripted_snapshots()), host="test", db_path=str(tmp_path / "none.db")
    )
    notes = capture_notices(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        live = shown_ts(app)
        await press(pilot, "H")  # no database: one line, still live
        assert any(n.startswith("no history database at ") for n in notes), notes
        assert app.history is None and shown_ts(app) == live
        await press(pilot, "space")  # live: space pauses, the timeline keys are off
        assert app.paused
        await press(pilot, "space")
        assert not app.paused

        app.db_path = str(recorded.path)
        await press(pilot, "H")
        assert app.history is not None
        await wait_for(pilot, lambda: "history 1/" in header_text(app), "the history")
        await press(pilot, "end")
        n = len(app.history)
        assert f"history {n}/{n}" in header_text(app) and shown_ts(app) != live
        start, span = app.history.slots[-1]
        shown = {p.pid: p for p in app.shown.processes}
        for pid, (sent, *_rest) in db_rows(recorded.path, start, span).items():
            assert shown[pid].sent_bps == sent / span
        await press(pilot, "space")  # plays the history, does not pause the display
        assert not app.paused

        await press(pilot, "H")  # back to live
        assert app.history is None and "history" not in header_text(app)
        assert app.shown is app.latest and shown_ts(app) == live  # the newest live frame


# -- errors --------------------------------------------------------------------------


def test_replay_db_errors_are_one_line(tmp_path: Path, recorded: Recorded) -> None:
    one_error(nettop("replay", "--db", str(tmp_path / "none.db")), "no history database at")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database at all\n" * 500)
    one_error(nettop("replay", "--db", str(corrupt)), "is not a nettop-ui history database")
    other = tmp_path / "other.db"  # another program's SQLite database
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (text)")
    con.commit()
    con.close()
    one_error(nettop("replay", "--db", str(other)), "is not a nettop-ui history database")
    out = nettop("replay", "--db", str(recorded.path), "--between", "2001-01-01", "2001-01-02")
    one_error(out, "nothing recorded in")
    for args, why in [
        (("replay", "--db", str(recorded.path), "--since", "lasttuesday"), "not a time"),
        (("replay",), "a recording FILE or --db"),
        (("replay", "rec.jsonl", "--db"), "a recording FILE or --db"),
        (("replay", "rec.jsonl", "--since", "1h"), "go with --db"),
    ]:
        out = nettop(*args)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.splitlines()) == 1 and why in out.stderr, out.stderr
    assert corrupt.read_bytes() == b"not a database at all\n" * 500


def test_reading_never_blocks_the_recorder(tmp_path: Path) -> None:
    """A real recorder commits every 0.3 s while the view holds a read transaction open
    and while it steps through every slot again and again."""
    path = tmp_path / "history.db"
    rec = start_recorder(path, "--backend", "psutil", "--interval", "0.2", "--commit-every", "0.3")
    try:
        committed_run(path, rec)

        def last_seen() -> float:
            return float(read(path, "SELECT last_seen FROM runs")[0][0])

        source = HistorySource(str(path), time.time() - HOUR, time.time() + HOUR)
        with source.reading():  # a read snapshot held open
            source.db.execute("SELECT count(*) FROM proc_rollups").fetchone()
            before = last_seen()
            deadline = time.monotonic() + 20
            while last_seen() < before + 1.0:  # at least three commits meanwhile
                assert time.monotonic() < deadline, "the recorder stopped committing"
                time.sleep(0.1)
        before = last_seen()
        deadline = time.monotonic() + 20
        while last_seen() < before + 1.0:
            for i in range(len(source)):
                source.frame_at(i)
            assert time.monotonic() < deadline, "the recorder stopped committing"
        source.close()
    finally:
        rec.terminate()
        assert rec.wait(30) == 0
    assert rec.stderr is not None
    assert "error" not in rec.stderr.read()


# -- the picture ---------------------------------------------------------------------

T = 1_700_000_400  # a whole minute


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The header's times in UTC, whatever this machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def fixed_db(path: Path) -> None:
    """Two minutes written by the store itself, with fixed names and numbers."""
    procs = [
        ProcInfo(4242, T - 5000.0, "curl", "curl\0-O\0https://example.com/big.iso", "alice",
                 "user@1000.service", "/user.slice/user-1000.slice/user@1000.service"),
        ProcInfo(901, T - 90000.0, "nginx", "nginx: worker process", "www-data",
                 "nginx.service", "/system.slice/nginx.service"),
        ProcInfo(77, T - 600.0, HOSTILE_NAME, None, "mallory", None, "/"),
        ProcInfo(None, None, "cc1", None, "alice", "user@1000.service", None),
    ]  # fmt: skip
    store = Store(str(path), "ebpf", T)
    for minute in (T, T + MINUTE):
        k = 1 + (minute - T) // MINUTE
        rows = [
            ProcRow(12_000 * k, 600_000_000 // k, 4.2, 52 * MIB, 14 * MIB, 900.0, 1.2e7,
                    40 * MIB, 12 * MIB),
            ProcRow(90_000_000, 2_000_000, 31.0, 0, 48 * MIB, 2.0e6, 4.0e4, 0, 0),
            ProcRow(5_000, 7_000, 0.5, None, 3 * MIB, 100.0, 150.0),
            ProcRow(None, None, 55.0, 80 * MIB, 200 * MIB, None, None, 16 * MIB, 64 * MIB),
        ]  # fmt: skip
        hosts = {(minute, "93.184.216.34"): HostRow("example.com", 12_000, 600_000_000 // k)}
        by_host = {
            (minute, procs[0], "93.184.216.34"): [12_000 * k, 600_000_000 // k],
            (minute, procs[1], "10.0.0.7"): [60_000_000, 1_500_000],
            (minute, procs[1], "10.0.0.8"): [30_000_000, 500_000],
        }
        batch = Batch(
            procs={(minute, p): r for p, r in zip(procs, rows, strict=True)},
            hosts=hosts,
            gaps=[],
            proc_hosts=by_host,
        )
        store.write(batch, minute + MINUTE - 1, "ebpf")
    store.close()


def test_history_screen(snap_compare: Any, utc: None, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    fixed_db(path)
    source = HistorySource(str(path), T - HOUR, T + HOUR)
    app = HistoryApp(source, host="testhost", clock=FixedClock())
    assert snap_compare(app, terminal_size=(160, 48), press=["right"])
    source.close()


async def test_history_view_shows_disk_per_direction_and_a_processs_hosts(
    tmp_path: Path,
) -> None:
    """DISK R/s and W/s from the database's read and written bytes (unknown where it has
    none); the drill-down's hosts from its bytes per process and host."""
    path = tmp_path / "history.db"
    fixed_db(path)
    source = HistorySource(str(path), T - HOUR, T + HOUR)
    app = HistoryApp(source, host="test")
    scale = Scale()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        start, span = source.slots[source.index]
        disk = read(
            path,
            "SELECT p.pid, r.disk_read_bytes, r.disk_write_bytes FROM proc_rollups r"
            " JOIN procs p ON p.id = r.proc WHERE r.span = ? AND r.start = ?",
            span,
            start,
        )
        assert app.shown is not None
        shown = {p.pid: p for p in app.shown.processes}
        for pid, rd, wr in disk:
            p = shown[pid if pid is not None else next(k for k in shown if k < 0)]
            want = (None if rd is None else rd / span, None if wr is None else wr / span)
            assert (p.read_bps, p.write_bps) == want
        assert shown[4242].read_bps and shown[4242].write_bps  # both known, both moved
        assert shown[77].read_bps is None  # unknown stays unknown
        line = row_line(app, 4242)
        assert f"{scale.size(40 * MIB / span)} {scale.size(12 * MIB / span)}" in " ".join(
            line.split()
        )

        await press(pilot, "slash", *"nginx", "escape", "enter")
        assert isinstance(app.screen, DetailScreen)
        hosts = read(
            path,
            "SELECT host, sent_bytes, recv_bytes FROM proc_host_rollups r JOIN procs p"
            " ON p.id = r.proc WHERE p.pid = 901 AND r.span = ? AND r.start = ?",
            span,
            start,
        )
        assert len(hosts) == 2
        assert app.screen.query_one("#detail-conns-box").border_title == "remote hosts (2)"
        lines = screen_lines(app)
        for host, sent, recv in hosts:
            line = next(x for x in lines if host in x and "per host" in x)
            assert scale.traffic(sent / span) in line and scale.traffic(recv / span) in line
        stats = next(x for x in lines if " disk " in x)
        assert f"R {scale.size_rate(0.0)} W {scale.size_rate(0.0)}" in stats
        # host: matches each process's recorded hosts, by address, network or name
        await press(pilot, "escape", "delete")
        bar = app.main.query_one(FilterBar)
        for text, names in (
            ("host:10.0.0.8", {"nginx"}),
            ("host:10.0.0.0/24", {"nginx"}),
            ("host:example.com", {"curl"}),
            ("-host:10.0.0.0/24 user:alice", {"curl", "cc1"}),  # cc1: no hosts at all
        ):
            await press(pilot, "slash", *text, "enter")
            listed = {r.process.name for r in app.main.rows if r.process is not None}
            assert listed == names, text
            assert not bar.has_class("-warning"), text
            await press(pilot, "delete")
        await press(pilot, "slash", *"port:443", "enter")  # not recorded: says so
        assert bar.has_class("-warning")
        assert "port: needs a backend with connections" in " ".join(screen_lines(app))
    source.close()


def test_replay_db_in_a_real_terminal(tmp_path: Path) -> None:
    """The command as a user types it: the range, the timeline keys, `q` with status 0."""
    path = tmp_path / "history.db"
    fixed_db(path)
    between = (dt.datetime.fromtimestamp(t).isoformat() for t in (T - HOUR, T + HOUR))
    with tui(120, 30, "replay", "--db", str(path), "--between", *between) as (term, app):
        term.wait_for(lambda s: "history 1/2" in s and " 4242 " in s, 30, "the first minute")
        term.keys("Right")
        term.wait_for(lambda s: "history 2/2" in s, 10, "the second minute")
        term.keys("q")
        app.wait_exit()
        term.expect_exit_status(0, "exit status 0")
