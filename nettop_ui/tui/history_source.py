"""`nettop-ui replay --db`: the history database (`nettop-ui record`) in the TUI.

`HistorySource` is a replay whose samples are the database's time slots: every minute
of the range (every hour where the recorder has rolled minutes into hours), from the
first run recorded in it to the last. Each slot becomes a `Frame` as a live tick does:
a process per `proc_rollups` row of that slot, its bytes as rates over the slot, its
CPU seconds as CPU %, its peak RSS as memory, its totals (`m`) summed from the start of
the range; the remote hosts from `host_rollups`. Sort, filter, tree, user and service
groups and drill-down then work unchanged, and the timeline keys are `replay`'s.

A slot no run of the recorder covers, or that a recorded gap covers whole, is a gap:
no processes, traffic unknown, and the position in the header says why. It is never
shown as a minute without traffic.

Reading never blocks the recorder: a read-only connection to a WAL database, one short
read transaction per slot shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from nettop_ui.args import PROG, closed_stream_problem
from nettop_ui.collector import HISTORY_SERIES, ConnectionState, ProcessState, Snapshot
from nettop_ui.history import SeriesSet
from nettop_ui.store import MINUTE, StoreError, describe, finest, marks, open_reader, slot_of
from nettop_ui.tui.frame import Frame, RecordedFigures, RemoteView, build_frame, row_key
from nettop_ui.tui.replay import ReplayApp, ReplaySource

PLAY_STEP_S = 0.5  # play: one slot every this many seconds
NOT_RECORDED = "recorder not running"
REST = "(its processes that moved no bytes)"  # the command line of a program's pid-less row

Slot = tuple[int, int]  # (start, span): a minute or an hour


@dataclass(frozen=True, slots=True)
class Gap:
    start: float
    end: float
    reason: str


def _slots(db: sqlite3.Connection, start: float, end: float) -> list[Slot]:
    """The minutes (hours, days where rolled up) of [start, end) that the recorder's runs
    span: each moment in the finest row the database keeps for it."""
    first, last = db.execute("SELECT min(started), max(last_seen) FROM runs").fetchone()
    if first is None:
        return []
    # A minute that starts at the last commit has its data too.
    lo, hi = max(start, first), min(end, math.nextafter(last, math.inf))
    kept = marks(db)
    slots: list[Slot] = []
    t = lo
    while t < hi:
        slots.append(slot_of(t, *kept))
        t = slots[-1][0] + slots[-1][1]
    return slots


class _Running:
    """Per process (or host), its bytes summed from the range's first slot through the
    one shown; moved by the slots in between, not summed again from the start."""

    def __init__(self, table: str, unit: str, first: int, kept: tuple[int, int]) -> None:
        self.sql = (
            f"SELECT {unit}, sum(sent_bytes), count(sent_bytes), sum(recv_bytes),"
            f" count(recv_bytes) FROM {table} WHERE {finest(*kept)}"
            f" AND start > ? AND start <= ? GROUP BY {unit}"
        )
        self.at = first - 1  # nothing summed yet
        # unit -> [sent, known sent rows, recv, known recv rows]: None only if none known
        self.sums: dict[Any, list[int]] = {}

    def move(self, db: sqlite3.Connection, to: int) -> None:
        lo, hi, sign = (self.at, to, 1) if to > self.at else (to, self.at, -1)
        for unit, *values in db.execute(self.sql, (lo, hi)):
            sums = self.sums.setdefault(unit, [0, 0, 0, 0])
            for i, v in enumerate(values):
                sums[i] += sign * (v or 0)
        self.at = to

    def totals(self, unit: Any) -> tuple[int | None, int | None]:
        sent, n_sent, recv, n_recv = self.sums.get(unit, (0, 0, 0, 0))
        return (sent if n_sent else None), (recv if n_recv else None)


def _per_s(value: float | None, span: int) -> float | None:
    return None if value is None else value / span


def _percent(cpu_s: float | None, span: int) -> float | None:
    """CPU seconds in a slot as CPU % (of one core), as the live table shows it."""
    return None if cpu_s is None else round(100.0 * cpu_s / span, 1)


class HistorySource(ReplaySource):
    """Frames from the history database's slots over [start, end); the replay's timeline.

    `ReplaySource.__init__` (which reads a recording) is not called: the timeline it
    drives needs only `index`, `playing`, `len()`, `frame_at`, `position` and `_delay`.
    """

    def __init__(self, path: str, start: float, end: float) -> None:
        super(ReplaySource, self).__init__()
        self.path, self.problem = path, None
        self.db = open_reader(path)
        try:
            with self.reading():
                self.slots = _slots(self.db, start, end)
                self.gaps = [
                    Gap(*g)
                    for g in self.db.execute(
                        'SELECT start, "end", reason FROM gaps WHERE "end" > ? AND start < ?'
                        " ORDER BY start",
                        (start, end),
                    )
                ]
                self.runs = self.db.execute("SELECT started, last_seen FROM runs").fetchall()
                self.kept = marks(self.db)
                backend = self.db.execute(
                    "SELECT backend FROM runs ORDER BY last_seen DESC LIMIT 1"
                ).fetchone()
        except BaseException:
            self.db.close()
            raise
        if not self.slots:
            self.db.close()
            raise StoreError(f"nothing recorded in {path} in that time range")
        self.backend_name = f"history ({backend[0]})"
        self.layer = "per-minute rollups"
        self.per_process = True
        self.per_connection = False  # connections are not recorded: port: and proto: say so
        self.per_host = True  # but each process's hosts are: the drill-down, host: use them
        self.interval_s = float(MINUTE)
        self.index = 0
        self.playing = False
        self._emit = None
        self._wake = asyncio.Event()
        first = self.slots[0][0]
        self._procs = _Running("proc_rollups", "proc", first, self.kept)
        self._hosts = _Running("host_rollups", "host", first, self.kept)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction (whole commits only); SQLite errors as one line."""
        try:
            self.db.execute("BEGIN")
            try:
                yield
            finally:
                self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise describe(exc, self.path) from None

    def __len__(self) -> int:
        return len(self.slots)

    def close(self) -> None:
        self.db.close()

    # -- gaps ---------------------------------------------------------------------------

    def gap_at(self, index: int) -> tuple[str | None, bool]:
        """Why slot `index` is (partly) not recorded, and whether wholly; (None, False)."""
        start, span = self.slots[index]
        end = start + span
        for g in self.gaps:
            if g.start <= start and g.end >= end:
                return g.reason, True
        if not any(s < end and e >= start for s, e in self.runs):
            return NOT_RECORDED, True
        part = next((g.reason for g in self.gaps if g.start < end and g.end > start), None)
        return part, False

    # -- frames -------------------------------------------------------------------------

    def frame_at(self, index: int) -> Frame:
        start, span = self.slots[index]
        _reason, whole = self.gap_at(index)
        if whole:
            snap = Snapshot(float(start), float(span), [], None, None)
            snap.gpu_unavailable, snap.remotes = "not recorded", []
            frame = build_frame(snap, traffic_known=False)
            return replace(frame, recorded=RecordedFigures(scope="all"))
        with self.reading():
            self._procs.move(self.db, start)
            self._hosts.move(self.db, start)
            rows = self.db.execute(
                "SELECT p.id, p.pid, p.start_time, p.name, p.cmdline, p.user, p.service,"
                " p.cgroup, r.sent_bytes, r.recv_bytes, r.cpu_s, r.peak_rss_bytes,"
                " r.disk_read_bytes, r.disk_write_bytes"
                " FROM proc_rollups r JOIN procs p ON p.id = r.proc"
                " WHERE r.span = ? AND r.start = ?",
                (span, start),
            ).fetchall()
            hosts = self.db.execute(
                "SELECT host, name, sent_bytes, recv_bytes FROM host_rollups"
                " WHERE span = ? AND start = ?",
                (span, start),
            ).fetchall()
            states = [self._state(row, span) for row in rows]
            names = {host: name for host, name, *_ in hosts}
            self._add_hosts(states, rows, start, span, names)
            for state, row in zip(states, rows, strict=True):
                if row_key(state.pid, state.create_time) in self.watch_keys:
                    state.history = self._proc_history(row[0], start)
        snap = Snapshot(float(start), float(span), states, None, None)
        snap.gpu_unavailable = "not recorded"
        frame = build_frame(snap, self.watch_keys)
        cpu = [s.cpu_percent for s in states if s.cpu_percent is not None]
        recorded = RecordedFigures(
            scope="all", tree_cpu_percent=round(sum(cpu), 1) if cpu else None
        )
        return replace(frame, recorded=recorded, remotes=self._remotes(hosts, span))

    def _state(self, row: tuple[Any, ...], span: int) -> ProcessState:
        proc, pid, start_time, name, cmdline, user, service, cgroup, sent, recv, cpu, rss = row[:12]
        read, write = row[12:]
        total_sent, total_recv = self._procs.totals(proc)
        args = cmdline.split("\0") if cmdline else []
        if pid is None:
            # A program's processes that moved no bytes share one row, without a pid:
            # its negated row id keeps it apart from the other programs'.
            pid, args = -proc, [REST]
        return ProcessState(
            pid=pid,
            create_time=start_time,
            name=name,
            cmdline=args,
            user=user,
            service=service,
            cgroup=cgroup,
            sent_bytes=total_sent,
            recv_bytes=total_recv,
            sent_bps=_per_s(sent, span),
            recv_bps=_per_s(recv, span),
            cpu_percent=_percent(cpu, span),
            rss_bytes=rss,
            read_bps=_per_s(read, span),
            write_bps=_per_s(write, span),
        )

    def _add_hosts(
        self,
        states: list[ProcessState],
        rows: list[tuple[Any, ...]],
        start: int,
        span: int,
        names: dict[str, str | None],
    ) -> None:
        """Each process's remote hosts in the slot, one `connection` per host: the
        recorder keeps bytes per process and host, not per connection."""
        by_proc = {row[0]: state for state, row in zip(states, rows, strict=True)}
        for proc, host, sent, recv in self.db.execute(
            "SELECT proc, host, sent_bytes, recv_bytes FROM proc_host_rollups"
            " WHERE span = ? AND start = ?",
            (span, start),
        ):
            state = by_proc.get(proc)
            if state is not None:
                state.connections[("", "", host)] = ConnectionState(
                    protocol="",
                    local="",
                    remote=host,
                    sent_bytes=sent or 0,
                    recv_bytes=recv or 0,
                    sent_bps=(sent or 0) / span,
                    recv_bps=(recv or 0) / span,
                    remote_name=names.get(host),
                )

    def _proc_history(self, proc: int, upto: int) -> SeriesSet:
        """One process's rates, CPU and peak RSS per slot, from the range's start."""
        rows = self.db.execute(
            "SELECT start, span, sent_bytes, recv_bytes, cpu_s, peak_rss_bytes"
            f" FROM proc_rollups WHERE {finest(*self.kept)} AND start >= ? AND start <= ?"
            " AND proc = ? ORDER BY start",
            (self.slots[0][0], upto, proc),
        ).fetchall()
        history = SeriesSet(HISTORY_SERIES, max(1, len(rows)))
        for start, span, sent, recv, cpu, rss in rows:
            values = (_per_s(sent, span), _per_s(recv, span), _percent(cpu, span), rss)
            history.append_row(float(start), tuple(math.nan if v is None else v for v in values))
        return history

    def _remotes(self, hosts: Iterable[tuple[Any, ...]], span: int) -> tuple[RemoteView, ...]:
        views = []
        for host, name, sent, recv in hosts:
            total_sent, total_recv = self._hosts.totals(host)
            views.append(
                RemoteView(
                    address=host,
                    scope="remote",
                    name=name,
                    name_source=None,
                    sent_bytes=total_sent or 0,
                    recv_bytes=total_recv or 0,
                    sent_bps=sent / span,
                    recv_bps=recv / span,
                    connection_count=None,  # not recorded
                    protocols=(),
                    ports=(),
                    pids=(),
                )
            )
        return tuple(views)

    def position(self) -> str:
        """`history 3/40 · 2026-12-02 10:03 (1 min)`, `▶` while playing, and any gap."""
        start, span = self.slots[self.index]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(start))
        mark = "▶ " if self.playing else ""
        text = f"{mark}history {self.index + 1}/{len(self)} · {when} ({span // MINUTE} min)"
        reason, whole = self.gap_at(self.index)
        if reason is not None:
            text += f" · {'gap' if whole else 'partly a gap'}: {reason}"
        return text

    def elapsed_s(self) -> float:
        return float(self.slots[self.index][0] - self.slots[0][0])

    def _delay(self) -> float:
        return PLAY_STEP_S


class HistoryApp(ReplayApp):
    """The replay app over the history database."""

    TITLE = "nettop-ui history"

    def __init__(self, source: HistorySource, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.history = source

    def elapsed_s(self) -> float:
        return self.history.elapsed_s()


def run_history(path: str, start: float, end: float) -> int:
    """`replay --db [PATH] [--since WHEN | --between T1 T2]`: the database at `path` over
    [start, end) until the user quits; one line on stderr on error."""
    closed = closed_stream_problem(f"use `{PROG} history`", tui_only=True)
    if closed:
        print(f"{PROG}: error: {closed}", file=sys.stderr)
        return 2
    try:
        source = HistorySource(path, start, end)
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    try:
        app = HistoryApp.for_user(source, why="")
        with contextlib.suppress(KeyboardInterrupt):
            app.run()
    finally:
        source.close()
    return app.return_code or 0
