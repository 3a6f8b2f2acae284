"""`nettop-ui record`: monitor headless and keep per-minute history in SQLite (store.py).

`Recorder` is a monitor Sink: each tick it turns the snapshot's cumulative figures into
deltas per process identity (pid and start time), per remote host and per process and
host, and CPU seconds and disk bytes read and written per process, adds them to the
current minute in memory, and every `commit_every` seconds writes what it holds in one
transaction. A SIGKILL therefore loses at most the last commit interval. When a commit
fails for a reason that may pass (a full disk, a lock), it says so once on stderr, keeps
the data and tries again at the next commit; it says so again when writing resumes.

Time comes from `clock` (time.time by default), so a test can run days through it.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from nettop_ui import registry
from nettop_ui.args import PROG, OneLineParser, backend_and_interval, positive_float
from nettop_ui.collector import ProcessKey, ProcessState, Snapshot
from nettop_ui.core import Backend, BackendFailure, TrafficSample
from nettop_ui.monitor import describe_failure, look_up_names
from nettop_ui.remotes import remote_address
from nettop_ui.store import (
    MINUTE,
    Batch,
    HostRow,
    ProcInfo,
    ProcRow,
    Store,
    StoreError,
    default_path,
)

N = TypeVar("N", int, float)
# A process's cumulative sent, received, CPU seconds, disk read and written.
Figures = tuple[int | None, int | None, float | None, int | None, int | None]

# A tick this much later than the interval says the recorder did not run (a suspend, a
# stopped process): that time is a gap.
STALL_S = 30.0

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `1w`, `45s`: seconds."""
    m = _DURATION.fullmatch(text.strip())
    if not m or float(m[1]) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration like 30d, 12h or 90m: {text!r}")
    return float(m[1]) * _UNIT_S[m[2]]


def _delta(new: N | None, old: N | None) -> N | None:
    """What a cumulative counter grew by; a counter that went back started again."""
    if new is None:
        return None
    if old is None or new < old:
        return new
    return new - old


def _cpu_s(p: ProcessState) -> float | None:
    if p.cpu_user_s is None or p.cpu_system_s is None:
        return None
    return p.cpu_user_s + p.cpu_system_s


def _max(a: N | None, b: N | None) -> N | None:
    return b if a is None else a if b is None else max(a, b)


def _add(a: N | None, b: N | None) -> N | None:
    return b if a is None else a if b is None else a + b


class Recorder:
    """The `record` sink: deltas into minutes in memory, committed every `commit_every` s."""

    def __init__(
        self,
        store: Store,
        backend: str,
        *,
        commit_every: float = 5.0,
        keep_s: float = 30 * 86400,
        minutes_s: float = 2 * 86400,
        hours_s: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        err: Callable[[str], None] | None = None,
        max_held_rows: int = 500_000,
    ) -> None:
        self.store = store
        self.backend = backend
        self.commit_every = commit_every
        self.keep_s = keep_s
        self.hours_s = min(hours_s, keep_s)
        self.minutes_s = min(minutes_s, self.hours_s)
        self.clock = clock
        self.err = err or (lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True))
        self.started = clock()
        self.last_tick = self.started
        self.last_commit = self.started
        self.last_maintained = float("-inf")
        self.failing: str | None = None  # the write problem said, until writing resumes
        self.max_held_rows = max_held_rows  # while writing fails: about 100 MB
        # Cumulative figures at the last tick: net bytes per process and host, and the
        # CPU seconds and disk bytes read and written per process; bytes per connection.
        self._seen: dict[ProcessKey, Figures] = {}
        self._hosts: dict[str, tuple[int, int]] = {}
        self._conns: dict[tuple[ProcessKey, tuple[str, str, str]], tuple[int, int]] = {}
        self.batch = self._empty()

    @staticmethod
    def _empty() -> Batch:
        return Batch(procs={}, hosts={}, gaps=[])

    # -- Sink --------------------------------------------------------------------------

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        now = self.clock()
        if now - self.last_tick > STALL_S + 3 * snap.interval_s:
            self.batch.gaps.append((self.last_tick, now, "no samples (suspended or stalled)"))
        self.last_tick = now
        minute = int(now // MINUTE * MINUTE)
        self._add_processes(snap, minute)
        self._add_hosts(snap, minute)
        if now - self.last_commit >= self.commit_every:
            self.commit(now)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        now = self.clock()
        self.batch.gaps.append((self.last_tick, now, describe_failure(failure)))
        if fallback is not None:
            self.backend = fallback.name
        self.commit(now)

    def end(self, failure: BackendFailure | None) -> None:
        self.commit(self.clock())

    # -- deltas ------------------------------------------------------------------------

    def _add_processes(self, snap: Snapshot, minute: int) -> None:
        seen: dict[ProcessKey, Figures] = {}
        conns: dict[tuple[ProcessKey, tuple[str, str, str]], tuple[int, int]] = {}
        procs = self.batch.procs
        batch = self.batch
        for p in snap.processes:
            key = p.key
            cpu = _cpu_s(p)
            now_figures = (p.sent_bytes, p.recv_bytes, cpu, p.read_bytes, p.write_bytes)
            seen[key] = now_figures
            old = self._seen.get(key)
            if old is None:
                # Network bytes count from the recorder's start; CPU and disk from the
                # process's, so those of a process older than this run are not its own.
                mine = p.create_time is not None and p.create_time >= self.started
                old = (None, None, *((None,) * 3 if mine else now_figures[2:]))
            sent, recv = _delta(p.sent_bytes, old[0]), _delta(p.recv_bytes, old[1])
            d_cpu = _delta(cpu, old[2])
            d_read, d_write = _delta(p.read_bytes, old[3]), _delta(p.write_bytes, old[4])
            by_host = self._host_deltas(p, conns) if p.connections else None
            if not (sent or recv or d_cpu or d_read or d_write):
                continue
            if sent or recv:
                info = ProcInfo(
                    p.pid,
                    p.create_time,
                    p.name,
                    "\0".join(p.cmdline) if p.cmdline else None,
                    p.user,
                    p.service,
                    p.cgroup,
                )
            else:  # no network: summed per program, so that churn keeps the size bounded
                info = ProcInfo(None, None, p.name, None, p.user, p.service, None)
            row = procs.get((minute, info))
            if row is None:
                row = procs[(minute, info)] = ProcRow()
            row.sent_bytes = _add(row.sent_bytes, sent)
            row.recv_bytes = _add(row.recv_bytes, recv)
            row.cpu_s = _add(row.cpu_s, d_cpu)
            if d_read is not None and d_write is not None:
                row.disk_bytes = _add(row.disk_bytes, d_read + d_write)
            row.disk_read_bytes = _add(row.disk_read_bytes, d_read)
            row.disk_write_bytes = _add(row.disk_write_bytes, d_write)
            row.peak_rss_bytes = _max(row.peak_rss_bytes, p.rss_bytes)
            row.peak_sent_bps = _max(row.peak_sent_bps, p.sent_bps)
            row.peak_recv_bps = _max(row.peak_recv_bps, p.recv_bps)
            batch.sent_bytes += sent or 0
            batch.recv_bytes += recv or 0
            if (sent or recv) and by_host:
                for host, (h_sent, h_recv) in by_host.items():
                    to_host = batch.proc_hosts.setdefault((minute, info, host), [0, 0])
                    to_host[0] += h_sent
                    to_host[1] += h_recv
        self._seen = seen
        self._conns = conns

    def _host_deltas(
        self, p: ProcessState, seen: dict[tuple[ProcessKey, tuple[str, str, str]], tuple[int, int]]
    ) -> dict[str, list[int]]:
        """A process's bytes per remote host since the last tick, from its connections'
        counters (kept for every process, moving or not, so none is counted twice)."""
        by_host: dict[str, list[int]] = {}
        for ckey, c in p.connections.items():
            seen[(p.key, ckey)] = (c.sent_bytes, c.recv_bytes)
            old_sent, old_recv = self._conns.get((p.key, ckey), (0, 0))
            sent, recv = _delta(c.sent_bytes, old_sent), _delta(c.recv_bytes, old_recv)
            if sent or recv:
                row = by_host.setdefault(remote_address(c.remote), [0, 0])
                row[0] += sent or 0
                row[1] += recv or 0
        return by_host

    def _add_hosts(self, snap: Snapshot, minute: int) -> None:
        if snap.remotes is None:
            return
        seen: dict[str, tuple[int, int]] = {}
        for h in snap.remotes:
            seen[h.address] = (h.sent_bytes, h.recv_bytes)
            old_sent, old_recv = self._hosts.get(h.address, (0, 0))
            sent = h.sent_bytes - old_sent if h.sent_bytes >= old_sent else h.sent_bytes
            recv = h.recv_bytes - old_recv if h.recv_bytes >= old_recv else h.recv_bytes
            if not (sent or recv):
                continue
            row = self.batch.hosts.setdefault((minute, h.address), HostRow())
            row.name = h.name or row.name
            row.sent_bytes += sent
            row.recv_bytes += recv
            row.peak_sent_bps = max(row.peak_sent_bps, float(h.sent_bps))
            row.peak_recv_bps = max(row.peak_recv_bps, float(h.recv_bps))
        self._hosts = seen

    # -- writing -----------------------------------------------------------------------

    def commit(self, now: float) -> None:
        """Write what is held; on a passing problem keep it, say so once, and retry later."""
        self.last_commit = now
        try:
            self.store.write(self.batch, now, self.backend)
            self.batch = self._empty()
            if now - self.last_maintained >= 3600:  # hourly: rollups and retention
                self.store.maintain(now, self.keep_s, self.minutes_s, self.hours_s)
                self.last_maintained = now
        except StoreError as exc:
            if not exc.retry:
                raise
            if self.failing != str(exc):
                self.failing = str(exc)
                self.err(f"error: {exc}; keeping the data in memory and retrying")
            self._drop_oldest(str(exc))
            return
        if self.failing is not None:
            self.failing = None
            self.err(f"recording to {self.store.path} resumed")

    def _drop_oldest(self, why: str) -> None:
        """Past `max_held_rows` rows unwritten, the oldest minutes go, each one a gap."""
        batch = self.batch
        while len(batch.procs) + len(batch.hosts) > self.max_held_rows:
            oldest = min(minute for minute, _ in (*batch.procs, *batch.hosts))
            for key in [k for k in batch.procs if k[0] == oldest]:
                row = batch.procs.pop(key)
                batch.sent_bytes -= row.sent_bytes or 0
                batch.recv_bytes -= row.recv_bytes or 0
            batch.hosts = {k: v for k, v in batch.hosts.items() if k[0] != oldest}
            batch.proc_hosts = {k: v for k, v in batch.proc_hosts.items() if k[0] != oldest}
            batch.gaps.append((oldest, oldest + MINUTE, f"not written: {why}"))


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=f"{PROG} record",
        description="Record per-minute history (network, CPU, disk per process and host) "
        "into SQLite until stopped (docs/history.md).",
    )
    p.add_argument("--db", metavar="PATH", help=f"the database (default here: {default_path()})")
    backend_and_interval(p)
    p.add_argument(
        "--commit-every",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="seconds between commits: what a crash can lose (default 5)",
    )
    p.add_argument("--keep", type=duration, default="30d", help="how long to keep (default 30d)")
    p.add_argument(
        "--keep-minutes",
        type=duration,
        default="2d",
        metavar="DURATION",
        help="how long minutes stay minutes; older ones are rolled into hours (default 2d)",
    )
    p.add_argument(
        "--keep-hours",
        type=duration,
        default="7d",
        metavar="DURATION",
        help="how long hours stay hours; older ones are rolled into days (default 7d)",
    )
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    p.add_argument(
        "--no-resolve", action="store_true", help="keep remote hosts as numbers: no name lookups"
    )
    return p


def main(argv: list[str]) -> int:
    from nettop_ui.cli import UsageError, resolve_backend, run_monitor

    args = build_parser().parse_args(argv)
    look_up_names(not args.no_resolve)
    path = args.db or default_path()
    try:
        cls, _ = resolve_backend(args.backend)
        store = Store(path, cls.name, time.time())
        try:
            recorder = Recorder(
                store,
                cls.name,
                commit_every=args.commit_every,
                keep_s=args.keep,
                minutes_s=args.keep_minutes,
                hours_s=args.keep_hours,
            )
            print(f"{PROG}: recording to {path} with {cls.name}", file=sys.stderr, flush=True)
            run_monitor(
                cls,
                args.interval,
                recorder,
                fallbacks=registry.fallbacks_for(args.backend, cls),
                duration_s=args.duration,
            )
        finally:
            store.close()
    except (UsageError, StoreError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130
    return 0
