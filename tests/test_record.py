"""`nettop-ui record` and `nettop-ui history` (docs/history.md): real traffic through a
running recorder that is SIGKILLed and restarted, a concurrent reader, retention and
rollup on a database the real recorder filled under a simulated clock, and the one-line
errors for corrupt, locked, read-only and full databases."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.ebpf import EbpfBackend
from backends.nettop import NettopBackend
from backends.psutil_backend import PsutilBackend
from nettop_ui.collector import Snapshot
from nettop_ui.core import BackendFailure, ProcessTraffic, TrafficSample
from nettop_ui.format import Scale
from nettop_ui.history_cli import query
from nettop_ui.monitor import Tee, monitor
from nettop_ui.record import Recorder
from nettop_ui.store import DAY, HOUR, MINUTE, Store, open_reader
from nettop_ui.tui.history_source import HistorySource
from tests.netenv import Client, Network, require, require_root, sh, within
from tests.tui_fixtures import ScriptedBackend, named_children

FIXTURES = Path(__file__).parent / "fixtures" / "history"
TOLERANCE = 0.01  # the issue's: per-minute totals within 1% of the generator's bytes


def nettop(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettop_ui", *args], capture_output=True, text=True, timeout=timeout
    )


def start_recorder(db: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "nettop_ui", "record", "--db", str(db), *args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def read(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """One query on a read-only connection, as `history` reads."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def wait_for(
    what: Callable[[], bool], timeout: float, proc: subprocess.Popen[str], why: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if proc.poll() is not None:
            raise AssertionError(f"recorder exited: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, f"timed out {why}"
        time.sleep(0.2)


def committed_run(db: Path, proc: subprocess.Popen[str], run: int = 1) -> None:
    """Wait until the recorder's run (the database's `run`th) has committed a tick."""

    def ready() -> bool:
        with contextlib.suppress(sqlite3.Error):
            rows = read(db, "SELECT started, last_seen FROM runs WHERE id = ?", run)
            return bool(rows) and rows[0][1] > rows[0][0]
        return False

    wait_for(ready, 90, proc)


def proc_totals(db: Path, c: Client) -> tuple[int, int]:
    """The client's bytes in the database (PIDs are reused quickly here: the name too)."""
    rows = read(
        db,
        "SELECT coalesce(sum(r.sent_bytes), 0), coalesce(sum(r.recv_bytes), 0)"
        " FROM proc_rollups r JOIN procs p ON p.id = r.proc WHERE p.pid = ? AND p.name = ?",
        c.pid,
        c.name,
    )
    return rows[0][0], rows[0][1]


def committed(db: Path, c: Client, proc: subprocess.Popen[str]) -> None:
    """Wait until the client's bytes are in the database."""

    def done() -> bool:
        sent, recv = proc_totals(db, c)
        return sent >= c.sent * (1 - TOLERANCE) and recv >= c.recv * (1 - TOLERANCE)

    wait_for(done, 60, proc, f"for {c} in the db: {proc_totals(db, c)}")


class Reader(threading.Thread):
    """Reads all the time while the recorder writes: every read, one transaction, must
    see the per-minute rows add up to the runs' totals (a half-written commit would not)."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db, self.stop, self.reads, self.bad = db, threading.Event(), 0, []  # type: ignore[var-annotated]

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(sqlite3.OperationalError):  # before the first commit
                con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)
                con.execute("BEGIN")
                rows = con.execute(
                    "SELECT coalesce(sum(sent_bytes), 0) + coalesce(sum(recv_bytes), 0)"
                    f" FROM proc_rollups WHERE span = {MINUTE}"
                ).fetchone()[0]
                runs = con.execute("SELECT sum(sent_bytes) + sum(recv_bytes) FROM runs").fetchone()[
                    0
                ]
                con.execute("COMMIT")
                con.close()
                self.reads += 1
                if rows != (runs or 0):
                    self.bad.append((rows, runs))
            time.sleep(0.05)


def require_ebpf() -> None:
    require_root()
    probe = EbpfBackend.probe()
    require(probe.available, f"ebpf backend cannot run: {probe.reason} (fix: {probe.fix})")


def test_killed_recorder_keeps_its_commits_records_the_gap_and_history_reports_it(
    net: Network, tmp_path: Path
) -> None:
    require_ebpf()
    db = tmp_path / "history.db"
    args = ("--backend", "ebpf", "--interval", "0.5", "--commit-every", "1", "--no-resolve")
    reader = Reader(db)
    first = start_recorder(db, *args)
    try:
        committed_run(db, first)
        reader.start()
        a = net.client("rec-before", "tcp", "v4", up=2_500_000, down=1_500_000).wait_done()
        committed(db, a, first)
        first.kill()  # SIGKILL: no final commit
        killed_at = time.time()
        first.wait(10)
        a.finish()
    finally:
        first.kill()
    assert read(db, "PRAGMA integrity_check") == [("ok",)]
    (last_seen,) = read(db, "SELECT last_seen FROM runs")[0]
    assert killed_at - last_seen <= 1 + 0.5 + 1.5, "lost more than the last commit interval"

    second = start_recorder(db, *args)
    try:
        committed_run(db, second, run=2)
        # An untrusted name: a terminal escape in the comm must be shown literally.
        b = net.client("rec\x1b[2Jafter", "tcp", "v4", up=1_200_000, down=3_000_000).wait_done()
        committed(db, b, second)
        b.finish()
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, second.stderr.read() if second.stderr else ""
    finally:
        second.kill()
        reader.stop.set()
        reader.join(10)

    assert reader.reads > 10 and reader.bad == [], (reader.reads, reader.bad[:3])
    for c in (a, b):
        for span in (MINUTE, HOUR, DAY):  # the same bytes in its minutes, hours and days
            in_span = read(
                db,
                "SELECT r.start, r.sent_bytes, r.recv_bytes FROM proc_rollups r"
                " JOIN procs p ON p.id = r.proc WHERE p.pid = ? AND p.name = ? AND r.span = ?",
                c.pid,
                c.name,
                span,
            )
            assert in_span and all(start % span == 0 for start, *_ in in_span)
            sent, recv = sum(m[1] or 0 for m in in_span), sum(m[2] or 0 for m in in_span)
            assert within(sent, c.sent, TOLERANCE), (
                f"{c.name} sent: {sent} in {span}, truth {c.sent}"
            )
            assert within(recv, c.recv, TOLERANCE), (
                f"{c.name} recv: {recv} in {span}, truth {c.recv}"
            )
        # Its bytes per remote host: all to the namespace's address.
        ((host, sent, recv),) = read(
            db,
            "SELECT r.host, sum(r.sent_bytes), sum(r.recv_bytes) FROM proc_host_rollups r"
            " JOIN procs p ON p.id = r.proc WHERE p.pid = ? AND p.name = ? AND r.span = ?"
            " GROUP BY r.host",
            c.pid,
            c.name,
            MINUTE,
        )
        assert host == net.ns_v4
        assert within(sent, c.sent, TOLERANCE) and within(recv, c.recv, TOLERANCE), (sent, recv)

    (start, end, reason), *more = read(db, 'SELECT start, "end", reason FROM gaps')
    assert more == [] and reason == "recorder not running"
    assert start == last_seen and end > killed_at

    out = nettop("history", "--db", str(db), "--since", "1h", "--by", "process", "--json")
    assert out.returncode == 0, out.stderr
    rows = {(r["pid"], r["program"]): r for r in json.loads(out.stdout)}
    for c in (a, b):
        row = rows[(c.pid, c.name)]
        assert row["start_time"] is not None
        assert within(row["sent_bytes"], c.sent, TOLERANCE)
        assert within(row["recv_bytes"], c.recv, TOLERANCE)
        assert row["peak_sent_bps"] > 0 and row["peak_recv_bps"] > 0
        assert row["first_seen"] <= row["last_seen"]
        assert {"cpu_seconds", "disk_bytes"} <= row.keys()
    by_program = json.loads(nettop("history", "--db", str(db), "--by", "program", "--json").stdout)
    programs = {r["program"]: r for r in by_program}
    for c in (a, b):
        assert within(programs[c.name]["recv_bytes"], c.recv, TOLERANCE)
    hosts = json.loads(nettop("history", "--db", str(db), "--by", "host", "--json").stdout)
    assert net.ns_v4 in {h["host"] for h in hosts}
    text = nettop("history", "--db", str(db), "--since", "1h")
    assert text.returncode == 0 and "rec\\x1b[2Jafter" in text.stdout
    assert "\x1b" not in text.stdout
    text = nettop("history", "--db", str(db), "--since", "1h", "--by", "process")
    assert f"{b.pid} rec\\x1b[2Jafter" in text.stdout and "\x1b" not in text.stdout
    assert "recorder not running" in text.stdout


class Clock:
    """A simulated clock the recorder reads, moved on by `step` s at each tick (a sink
    placed before the recorders)."""

    def __init__(self, start: float, step: float) -> None:
        self.now, self.step = start, step

    def __call__(self) -> float:
        return self.now

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self.now += self.step

    def failure(self, snap: Snapshot, failure: BackendFailure, fallback: object) -> None:
        pass

    def end(self, failure: BackendFailure | None) -> None:
        pass


def group_totals(db: Path, sql_rows: str, *params: Any) -> dict[Any, tuple[Any, ...]]:
    """Per program: sums and peaks of the proc_rollups rows `sql_rows` selects (a WHERE)."""
    rows = read(
        db,
        "SELECT p.name, sum(r.sent_bytes), sum(r.recv_bytes), max(r.peak_sent_bps),"
        " max(r.peak_recv_bps), sum(r.cpu_s), sum(r.disk_bytes), sum(r.disk_read_bytes),"
        " sum(r.disk_write_bytes), max(r.peak_rss_bytes), min(r.seen_from), max(r.seen_to)"
        f" FROM proc_rollups r JOIN procs p ON p.id = r.proc WHERE {sql_rows} GROUP BY p.name",
        *params,
    )
    return {name: tuple(values) for name, *values in rows}


def as_history(rows: list[dict[str, Any]]) -> dict[Any, tuple[Any, ...]]:
    """`history --by program --json` rows in group_totals' shape (without peak RSS)."""
    keys = (
        *("sent_bytes", "recv_bytes", "peak_sent_bps", "peak_recv_bps", "cpu_seconds"),
        *("disk_bytes", "disk_read_bytes", "disk_write_bytes", "first_seen", "last_seen"),
    )
    return {r["program"]: tuple(r[k] for k in keys) for r in rows}


def same_totals(got: dict[Any, tuple[Any, ...]], want: dict[Any, tuple[Any, ...]]) -> None:
    assert got.keys() == want.keys() and got
    for name in want:  # CPU seconds are floats summed in another order
        assert got[name] == pytest.approx(want[name], rel=1e-9), name


def test_retention_and_rollup_on_a_db_the_recorder_filled_with_a_simulated_clock(
    tmp_path: Path,
) -> None:
    """Minutes into hours into days, on what the real recorder wrote over 60 simulated
    hours: every hour and day is exactly its minutes (sums and peaks), `history` over
    ranges cut anywhere gives what the minutes give, and the rolled database keeps
    minutes, hours and days only as long as told."""
    start = 1_800_000_000 // DAY * DAY
    clock = Clock(start, step=30 * MINUTE)
    keep, hours, minutes = 2 * DAY, DAY, 3 * HOUR
    rolled = Store(str(tmp_path / "rolled.db"), "psutil", start)
    reference = Store(str(tmp_path / "all.db"), "psutil", start)  # the same, never rolled
    opts: dict[str, Any] = {"commit_every": 1, "clock": clock}
    sinks = Tee(
        clock,
        Recorder(rolled, "psutil", keep_s=keep, minutes_s=minutes, hours_s=hours, **opts),
        Recorder(reference, "psutil", keep_s=1e9, minutes_s=1e9, hours_s=1e9, **opts),
    )
    asyncio.run(monitor(PsutilBackend(), 0.05, sinks, count=120, handle_signals=False))
    rolled.close()
    reference.close()
    now = clock.now
    ref, db = tmp_path / "all.db", tmp_path / "rolled.db"

    # In the reference, each hour and each day holds exactly its minutes.
    for coarse in (HOUR, DAY):
        slots = read(ref, f"SELECT DISTINCT start FROM proc_rollups WHERE span = {coarse}")
        assert len(slots) > 1
        for (slot,) in slots:
            fine = group_totals(
                ref, "r.span = 60 AND r.start >= ? AND r.start < ?", slot, slot + coarse
            )
            whole = group_totals(ref, f"r.span = {coarse} AND r.start = ?", slot)
            same_totals(whole, fine)

    # `history` over ranges whose ends cut days, hours and minutes: what the minutes say.
    ends = (now - 17 * MINUTE - 5, now + 1)
    for lo in (start + 5 * HOUR + 7 * MINUTE + 30, start + DAY + 1, start):
        for hi in ends:
            with contextlib.closing(open_reader(str(ref))) as con:
                got = as_history(query(con, "program", lo, hi))
            minutes_in = group_totals(ref, "r.span = 60 AND r.start >= ? AND r.start < ?", lo, hi)
            same_totals(got, {k: v[:-3] + v[-2:] for k, v in minutes_in.items()})

    # The rolled database: minutes and hours dropped as told (maintenance runs hourly).
    kept = dict(read(db, "SELECT key, value FROM meta"))
    minutes_from, hours_from = int(kept["minutes_from"]), int(kept["hours_from"])
    assert minutes_from == (now - minutes) // HOUR * HOUR or now - HOUR - minutes <= minutes_from
    assert minutes_from <= now - minutes and hours_from <= now - hours < hours_from + DAY + HOUR
    spans = dict(
        (s, (lo, hi))
        for s, lo, hi in read(
            db, "SELECT span, min(start), max(start) FROM proc_rollups GROUP BY span"
        )
    )
    assert spans.keys() == {MINUTE, HOUR, DAY}
    assert spans[MINUTE][0] >= minutes_from and spans[HOUR][0] >= hours_from
    assert read(db, "SELECT min(start + span) FROM proc_rollups")[0][0] > now - HOUR - keep
    assert read(db, "SELECT count(*) FROM proc_rollups WHERE start % span")[0] == (0,)
    assert read(db, 'SELECT min("end") FROM gaps')[0][0] > now - HOUR - keep
    assert read(ref, "SELECT min(start) FROM proc_rollups")[0][0] < now - 2 * DAY
    # Every row it keeps is the reference's, and `history` from a day it keeps whole
    # agrees with the reference over the same range.
    every = (
        "SELECT r.span, r.start, p.ident, r.cpu_s, r.peak_rss_bytes, r.disk_bytes, r.seen_to"
        " FROM proc_rollups r JOIN procs p ON p.id = r.proc ORDER BY 1, 2, 3"
    )
    got_rows = read(db, every)
    want_rows = {row[:3]: row for row in read(ref, every)}
    assert got_rows
    for row in got_rows:
        assert row == pytest.approx(want_rows[row[:3]], rel=1e-9)
    oldest = read(db, "SELECT min(start) FROM proc_rollups")[0][0]
    for by in ("program", "process", "user", "service"):
        with (
            contextlib.closing(open_reader(str(db))) as a,
            contextlib.closing(open_reader(str(ref))) as b,
        ):
            assert query(a, by, oldest, now + 1) == pytest.approx(query(b, by, oldest, now + 1))

    # The history view's timeline over it: days, then hours, then minutes, end to end,
    # each step the database's rows for it (a day's CPU as CPU % over the day and its
    # peak RSS; the pid-less rows, shown with their negated row id).
    source = HistorySource(str(db), start, now + 1)
    try:
        slots = source.slots
        assert [span for _, span in slots] == sorted((span for _, span in slots), reverse=True)
        assert {span for _, span in slots} == {MINUTE, HOUR, DAY}
        assert all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(slots))
        day = next(i for i, (t, span) in enumerate(slots) if span == DAY and t >= oldest)
        t, span = slots[day]
        want = {
            row: (None if cpu is None else round(100 * cpu / DAY, 1), rss)
            for row, cpu, rss in read(
                db,
                "SELECT -p.id, r.cpu_s, r.peak_rss_bytes FROM proc_rollups r JOIN procs p"
                " ON p.id = r.proc WHERE r.span = ? AND r.start = ? AND p.pid IS NULL",
                span,
                t,
            )
        }
        frame = source.frame_at(day)
        shown = {p.pid: (p.cpu_percent, p.rss_bytes) for p in frame.processes if p.pid < 0}
        assert want and shown == want
    finally:
        source.close()


DIRECT_IO = r"""
import ctypes, mmap, os, sys
ctypes.CDLL(None).prctl(15, b"hist-disk", 0, 0, 0)  # PR_SET_NAME: one name, only its own
path, size = sys.argv[1], int(sys.argv[2])
def io():
    with open("/proc/self/io") as f:
        fields = dict(line.split(": ") for line in f)
    return int(fields["read_bytes"]), int(fields["write_bytes"])
os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # its directory entry: not counted
buf = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
buf.write(b"x" * (1 << 20))
print("ready", flush=True)
sys.stdin.readline()
before = io()
fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
for _ in range(size >> 20):
    os.write(fd, buf)
os.close(fd)
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
for _ in range(size >> 20):
    os.readv(fd, [buf])
os.close(fd)
after = io()
print("done", after[0] - before[0], after[1] - before[1], flush=True)
sys.stdin.readline()
"""


class DiskWork:
    """A sink that, at the second tick, has a child write then read `size` bytes on
    disk, around the page cache (O_DIRECT), and keeps what the kernel counted for it
    meanwhile (those bytes, and now and then a block of the file system's own)."""

    def __init__(self, directory: str, size: int) -> None:
        self.size, self.ticks = size, 0
        self.counted = (0, 0)  # read and write bytes, as the kernel counted them for it
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DIRECT_IO, os.path.join(directory, "data"), str(size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self.ticks += 1
        if self.ticks == 2:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
            done, read_bytes, write_bytes = self.proc.stdout.readline().split()
            assert done == "done"
            self.counted = int(read_bytes), int(write_bytes)

    def failure(self, snap: Snapshot, failure: BackendFailure, fallback: object) -> None:
        pass

    def end(self, failure: BackendFailure | None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def test_disk_bytes_read_and_written_are_recorded_apart(tmp_path: Path) -> None:
    """A real process writes then reads 8 MiB on disk: the database (and `history`)
    has them per direction, and their sum as the disk total."""
    size = 8 << 20
    db = tmp_path / "history.db"
    # /var/tmp: on disk (tmp_path may be a tmpfs, where nothing reaches a disk)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
        work = DiskWork(directory, size)
        store = Store(str(db), "psutil", time.time())
        try:
            sinks = Tee(work, Recorder(store, "psutil", commit_every=0.01))
            asyncio.run(monitor(PsutilBackend(), 0.1, sinks, count=6, handle_signals=False))
        finally:
            store.close()
    rows = read(
        db,
        "SELECT sum(r.disk_read_bytes), sum(r.disk_write_bytes), sum(r.disk_bytes)"
        " FROM proc_rollups r JOIN procs p ON p.id = r.proc"
        " WHERE r.span = 60 AND p.name = 'hist-disk'",
    )
    ((disk_read, disk_write, disk_total),) = rows
    # The kernel's own count for the child, which may add a metadata block or two
    assert (disk_read, disk_write) == work.counted
    slack = 64 << 10
    assert size <= disk_read < size + slack and size <= disk_write < size + slack
    assert disk_total == disk_read + disk_write
    out = nettop("history", "--db", str(db), "--since", "1h", "--by", "program", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = [r for r in json.loads(out.stdout) if r["program"] == "hist-disk"]
    assert (row["disk_read_bytes"], row["disk_write_bytes"]) == work.counted
    text = nettop("history", "--db", str(db), "--since", "1h", "--by", "program").stdout
    (line,) = [x for x in text.splitlines() if x.endswith(" hist-disk")]
    shown = [Scale().size(n) for n in work.counted]  # after SENT RECEIVED PEAKS CPU
    assert line.split()[5:7] == shown and "DISK READ DISK WRITE" in text, text


def test_a_processs_bytes_per_host_count_each_byte_once(tmp_path: Path) -> None:
    """A process that moves bytes every other tick, over connections that stay open:
    its bytes per remote host are its bytes, not its connections' counters again after
    each idle tick."""
    db = tmp_path / "history.db"
    with named_children("hist-onoff") as (child,):

        def script(tick: int) -> list[ProcessTraffic]:
            return [ProcessTraffic(child.pid, *((6_000, 4_000) if tick % 2 else (0, 0)))]

        clock = Clock(1_800_000_000 // HOUR * HOUR, step=5.0)
        store = Store(str(db), "scripted", clock.now)
        try:
            sinks = Tee(clock, Recorder(store, "scripted", commit_every=1, clock=clock))
            backend = ScriptedBackend(script)
            asyncio.run(monitor(backend, 0.05, sinks, count=7, handle_signals=False))
        finally:
            store.close()
    where = " FROM {} r JOIN procs p ON p.id = r.proc WHERE p.pid = ? AND r.span = 60"
    proc = read(
        db, "SELECT sum(sent_bytes), sum(recv_bytes)" + where.format("proc_rollups"), child.pid
    )
    hosts = read(
        db, "SELECT sum(sent_bytes), sum(recv_bytes)" + where.format("proc_host_rollups"), child.pid
    )
    assert proc[0][0] and hosts == proc  # its connections all go to 127.0.0.1


def test_a_schema_1_database_is_upgraded_with_its_totals(tmp_path: Path) -> None:
    """A database the old recorder wrote (minutes, and hours rolled from older minutes;
    disk as one total) gets the per-direction columns (unknown in its rows), hours and
    days, and `history` reports what it held."""
    db = tmp_path / "history.db"
    shutil.copy(FIXTURES / "v1.db", db)
    # What version 1's `history` summed: its minutes and hours, disk as one total.
    old = {
        name: (*values[:6], None, None, *values[6:])
        for name, *values in read(
            db,
            "SELECT p.name, sum(r.sent_bytes), sum(r.recv_bytes), max(r.peak_sent_bps),"
            " max(r.peak_recv_bps), sum(r.cpu_s), sum(r.disk_bytes), max(r.peak_rss_bytes),"
            " min(r.start), max(r.start + r.span) FROM proc_rollups r JOIN procs p"
            " ON p.id = r.proc GROUP BY p.name",
        )
    }
    old_hosts = read(
        db,
        "SELECT host, sum(sent_bytes), sum(recv_bytes), max(peak_sent_bps) FROM host_rollups"
        " GROUP BY host",
    )
    assert read(db, "PRAGMA user_version") == [(1,)] and old
    one_error(nettop("history", "--db", str(db), "--since", "100000d"), "upgrades it")

    first, last = read(db, "SELECT min(start), max(start + span) FROM proc_rollups")[0]
    Store(str(db), "ebpf", last).close()
    assert read(db, "PRAGMA user_version") == [(2,)]
    with contextlib.closing(open_reader(str(db))) as con:
        got = as_history(query(con, "program", first, last))
        hosts = query(con, "host", first, last)
    want = {k: v[:-3] + v[-2:] for k, v in old.items()}
    same_totals(got, want)
    assert all(v[6] is None and v[7] is None for v in got.values())  # read/write unknown
    assert [
        (h["host"], h["sent_bytes"], h["recv_bytes"], h["peak_sent_bps"]) for h in hosts
    ] == old_hosts
    out = nettop(
        "history",
        "--db",
        str(db),
        "--between",
        *(dt.datetime.fromtimestamp(t).isoformat() for t in (first, last)),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert as_history(json.loads(out.stdout)) == pytest.approx(got)
    # The upgrade made the hours and days its minutes and hours add up to.
    for span in (HOUR, DAY):
        assert read(db, f"SELECT count(*) FROM proc_rollups WHERE span = {span}")[0][0] > 0


# -- the one-line errors -------------------------------------------------------------


def one_error(out: subprocess.CompletedProcess[str], text: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("nettop-ui: error: ")]
    assert len(lines) == 1 and text in lines[0], out.stderr


def test_corrupt_database(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    db.write_bytes(b"not a database at all\n" * 500)
    one_error(
        nettop("record", "--db", str(db), "--backend", "psutil", "--duration", "1"),
        "is not a nettop-ui history database, or it is corrupt",
    )
    one_error(nettop("history", "--db", str(db)), "is not a nettop-ui history database")
    assert db.read_bytes() == b"not a database at all\n" * 500  # nothing of it overwritten
    other = tmp_path / "other.db"  # another program's SQLite database
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (text)")
    con.commit()
    con.close()
    one_error(nettop("record", "--db", str(other), "--duration", "1"), "not a nettop-ui history")
    one_error(nettop("history", "--db", str(other)), "is not a nettop-ui history database")
    assert read(other, "SELECT name FROM sqlite_master") == [("notes",)]


def test_locked_database(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    rec = start_recorder(db, "--backend", "psutil", "--interval", "0.2", "--commit-every", "0.5")
    try:
        committed_run(db, rec)
        second = nettop("record", "--db", str(db), "--backend", "psutil", "--duration", "5")
        one_error(second, "already being recorded")
        assert nettop("history", "--db", str(db)).returncode == 0  # readers are welcome
    finally:
        rec.send_signal(signal.SIGTERM)
        assert rec.wait(30) == 0, rec.stderr.read() if rec.stderr else ""
    # Another program holding SQLite's write lock.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        one_error(
            nettop("record", "--db", str(db), "--backend", "psutil"), "is locked by another program"
        )
    finally:
        holder.close()


@contextlib.contextmanager
def small_fs(size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted for the test (the session has its own mount namespace)."""
    require_root()
    with tempfile.TemporaryDirectory() as where:
        sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", where)
        try:
            yield Path(where)
        finally:
            sh("umount", "-l", where, check=False)


def test_read_only_database() -> None:
    with small_fs("4m") as fs:
        db = fs / "history.db"
        # Rows come from the second tick on (the first is the CPU baseline): a few ticks.
        args = ("--backend", "psutil", "--interval", "0.2", "--duration", "3")
        out = nettop("record", "--db", str(db), *args, "--commit-every", "0.5")
        assert out.returncode == 0, out.stderr
        sh("mount", "-o", "remount,ro", str(fs))
        one_error(nettop("record", "--db", str(db), "--backend", "psutil"), "read-only")
        out = nettop("history", "--db", str(db), "--since", "1h", "--by", "user", "--json")
        assert out.returncode == 0 and json.loads(out.stdout), out.stderr  # still readable


def test_full_disk_is_one_line_and_recording_resumes() -> None:
    with small_fs("2m") as fs:
        db = fs / "history.db"
        rec = start_recorder(
            db, "--backend", "psutil", "--interval", "0.2", "--commit-every", "0.5"
        )
        try:
            committed_run(db, rec)
            filler = fs / "filler"
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            full_from = time.time()
            assert rec.stderr is not None
            line = rec.stderr.readline()
            while "recording to" in line:
                line = rec.stderr.readline()
            assert line.startswith("nettop-ui: error: disk full writing"), line
            filler.unlink()
            assert "resumed" in rec.stderr.readline()
            rec.send_signal(signal.SIGTERM)
            assert rec.wait(30) == 0
            assert "Traceback" not in rec.stderr.read()
        finally:
            rec.kill()
        assert read(db, "PRAGMA integrity_check") == [("ok",)]
        (last,) = read(db, "SELECT max(start) FROM proc_rollups")[0]
        assert last >= full_from // MINUTE * MINUTE  # what came while full was kept


def test_the_systemd_units_command_line_records(tmp_path: Path) -> None:
    unit = (Path(__file__).parent.parent / "packaging" / "nettop-ui-record.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    program, *args = exec_start.removeprefix("ExecStart=").split()
    assert program == "/opt/nettop-ui/.venv/bin/nettop-ui" and args[:1] == ["record"]
    db = tmp_path / "history.db"
    args[args.index("--db") + 1] = str(db)  # the unit's own path is for the service
    out = nettop(*args, "--backend", "psutil", "--duration", "1.5", "--commit-every", "0.5")
    assert out.returncode == 0, out.stderr
    assert read(db, "SELECT count(*) FROM runs") == [(1,)]


def test_the_unit_install_sh_writes_passes_systemds_own_check(tmp_path: Path) -> None:
    """The unit as `install.sh --service` writes it (its /opt/nettop-ui replaced by the
    checkout) passes `systemd-analyze verify`: settings systemd knows, and an ExecStart
    that exists and is executable. (systemd does not run on this machine, so the unit is
    not started here.)"""
    analyze = shutil.which("systemd-analyze") or ""
    require(analyze != "", "needs systemd-analyze (apt install systemd)")
    root = Path(__file__).parent.parent
    unit = (root / "packaging" / "nettop-ui-record.service").read_text()
    installed = tmp_path / "nettop-ui-record.service"
    installed.write_text(unit.replace("/opt/nettop-ui", str(root.resolve())))
    out = subprocess.run([analyze, "verify", str(installed)], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    installed.write_text(unit.replace("/opt/nettop-ui", str(tmp_path / "nowhere")))
    out = subprocess.run([analyze, "verify", str(installed)], capture_output=True, text=True)
    assert out.returncode != 0 and "nowhere" in out.stderr  # the check can fail


def test_install_service_option_is_known() -> None:
    script = Path(__file__).parent.parent / "install.sh"
    out = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown option --bogus (--dev, --service)" in out.stderr


def test_history_bad_input_is_one_line(tmp_path: Path) -> None:
    out = nettop("history", "--db", str(tmp_path / "h.db"), "--since", "last tuesday")
    assert out.returncode == 2 and out.stderr.startswith("nettop-ui history: error: not a time")
    one_error(nettop("history", "--db", str(tmp_path / "none.db")), "no history database at")
    out = nettop("record", "--db", str(tmp_path / "h.db"), "--keep", "forever")
    assert out.returncode == 2 and "not a duration like 30d" in out.stderr
    assert not (tmp_path / "h.db").exists()


class StopAfterFailure:
    """Stops monitoring two samples after the first backend failure."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop, self.after = stop, -1

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        if self.after >= 0:
            self.after += 1
            if self.after >= 2:
                self.stop.set()

    def failure(self, snap: Snapshot, failure: BackendFailure, fallback: object) -> None:
        self.after = 0

    def end(self, failure: BackendFailure | None) -> None:
        pass


def test_a_backend_that_fails_is_a_gap_and_the_fallback_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in nettop (real captured output) really exits each time; psutil takes over."""
    tests = Path(__file__).parent
    monkeypatch.setenv("PATH", f"{tests / 'fakebin'}{os.pathsep}{os.environ['PATH']}")
    capture = tests / "fixtures" / "nettop" / "nettop_L1_J_noP_numeric_macos26_netglass.csv"
    monkeypatch.setenv("NETTOP_REPLAY", str(capture))
    monkeypatch.setenv("NETTOP_REPLAY_EXIT", "1")
    store = Store(str(tmp_path / "h.db"), "nettop", time.time())
    stop = asyncio.Event()
    sinks = Tee(Recorder(store, "nettop", commit_every=0.5), StopAfterFailure(stop))
    backend = NettopBackend()
    opts: dict[str, Any] = {"handle_signals": False, "duration_s": 60}
    asyncio.run(monitor(backend, 0.5, sinks, stop=stop, fallbacks=[PsutilBackend], **opts))
    store.close()
    ((start, end, reason),) = read(tmp_path / "h.db", 'SELECT start, "end", reason FROM gaps')
    assert reason.startswith("backend nettop failed: ")
    assert reason.endswith("continuing with psutil")
    assert start <= end
    assert read(tmp_path / "h.db", "SELECT backend FROM runs") == [("psutil",)]


class Freer:
    """Moves the simulated clock a minute a tick; frees the disk after `full_ticks`."""

    def __init__(self, clock: Clock, filler: Path, full_ticks: int) -> None:
        self.clock, self.filler, self.left = clock, filler, full_ticks
        self.held: list[int] = []
        self.recorder: Recorder | None = None

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        assert self.recorder is not None
        self.held.append(len(self.recorder.batch.procs))
        # This process uses CPU every minute, so that each minute has a row to hold or
        # drop (the monitor's own use may stay under one clock tick in 0.05 s).
        began = time.thread_time()
        while time.thread_time() - began < 0.03:
            pass
        self.clock.now += MINUTE
        self.left -= 1
        if self.left == 0:
            self.filler.unlink()

    def failure(self, snap: Snapshot, failure: BackendFailure, fallback: object) -> None:
        pass

    def end(self, failure: BackendFailure | None) -> None:
        pass


def test_a_long_full_disk_drops_the_oldest_minutes_as_gaps() -> None:
    """What waits for room is bounded: past `max_held_rows` the oldest minutes are dropped,
    each recorded as a gap once the database can be written again."""
    with small_fs("2m") as fs:
        start = 1_800_000_000 // HOUR * HOUR
        clock = Clock(start, step=0)
        store = Store(str(fs / "history.db"), "psutil", start)
        filler = fs / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        lines: list[str] = []
        rec = Recorder(store, "psutil", commit_every=1, clock=clock, err=lines.append)
        rec.max_held_rows = 1
        freer = Freer(clock, filler, full_ticks=5)
        freer.recorder = rec
        asyncio.run(monitor(PsutilBackend(), 0.05, Tee(rec, freer), count=8, handle_signals=False))
        store.close()
        assert lines[0].startswith("error: disk full writing") and "resumed" in lines[-1]
        assert max(freer.held[1:5]) <= 1  # never more than the bound while full
        db = fs / "history.db"
        dropped = read(db, "SELECT start FROM gaps WHERE reason LIKE 'not written: disk full%'")
        assert len(dropped) >= 2
        assert read(db, "SELECT max(start) FROM proc_rollups")[0][0] >= start + 6 * MINUTE
