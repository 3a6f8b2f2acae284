"""bench/history: the history recorder's cost, the database's size, and query time.

    .venv/bin/python -m bench.history [--procs 2000] [--movers 300] [--new-per-s 50]
                                      [--hours 2] [--tick 10] [--real-s 20] [--no-write]

1. Size and recorder cost on a busy host: synthetic snapshots (the collector's
   `ProcessState`s: `--procs` processes, `--movers` of them moving bytes each tick, 100
   more using CPU, `--new-per-s` new short-lived processes a second, each using some CPU)
   fed through the real `Recorder` and `Store` under a simulated clock, one tick every
   `--tick` simulated seconds, for `--hours` simulated hours. A minute's rows do not
   depend on how many ticks it had, so coarser ticks only make the run shorter; the
   recorder's CPU per tick is measured per real second of 2,000 processes. Bytes per day
   of minutes are measured on those hours; the hours are then rolled into hours and
   measured again.
2. 30 days: the database is grown to `--keep-minutes` (2 days) of minutes and 28 days of
   hours by copying the simulated rows in SQL (shifted in time), then VACUUMed; its size
   and the time of `nettop-ui history --since 30d` queries (by program, process, host)
   are measured.
3. A real `nettop-ui record --backend psutil` on this machine for `--real-s` seconds:
   its CPU time and peak RSS.

The table goes to stdout and, unless `--no-write`, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section
from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.core import TrafficSample
from nettop_ui.history_cli import query
from nettop_ui.record import Recorder
from nettop_ui.store import HOUR, MINUTE, Store, open_reader

DAY = 86400
NAMES = ("nginx", "postgres", "python3", "node", "java", "curl", "rsync", "chrome", "sshd")


class Host:
    """A busy host's processes, moved on one tick at a time."""

    def __init__(self, procs: int, movers: int, new_per_s: float) -> None:
        self.base = [
            ProcessState(
                pid=1000 + i,
                create_time=1.0,
                name=NAMES[i % len(NAMES)],
                cmdline=[f"/usr/bin/{NAMES[i % len(NAMES)]}", "--worker", str(i)],
                user="www-data" if i % 3 else "root",
                service=f"svc{i % 40}.service",
                sent_bytes=0 if i < movers else None,
                recv_bytes=0 if i < movers else None,
                cpu_user_s=0.0,
                cpu_system_s=0.0,
                rss_bytes=50_000_000,
                read_bytes=0,
                write_bytes=0,
            )
            for i in range(procs)
        ]
        self.movers, self.new_per_s, self.next_pid, self.tick_no = movers, new_per_s, 100_000, 0

    def tick(self, now: float, tick_s: float) -> Snapshot:
        self.tick_no += 1
        for i, p in enumerate(self.base):
            if i < self.movers:
                assert p.sent_bytes is not None and p.recv_bytes is not None
                p.sent_bytes += 1000 * (1 + (i * 7 + self.tick_no) % 50) * int(tick_s)
                p.recv_bytes += 3000 * (1 + (i * 3 + self.tick_no) % 50) * int(tick_s)
                p.sent_bps = p.recv_bps = 50_000.0
            if i < self.movers + 100:
                assert p.cpu_user_s is not None and p.write_bytes is not None
                p.cpu_user_s += 0.01 * tick_s
                p.write_bytes += 4096
        born = []
        for _ in range(int(self.new_per_s * tick_s)):  # live within one tick, then gone
            self.next_pid = self.next_pid + 1 if self.next_pid < 4_000_000 else 100_000
            name = NAMES[self.next_pid % len(NAMES)]
            born.append(
                ProcessState(
                    pid=self.next_pid,
                    create_time=now - 0.5,
                    name=name,
                    cmdline=[name, "-c", "true"],
                    user="root",
                    service="cron.service",
                    cpu_user_s=0.004,
                    cpu_system_s=0.002,
                    rss_bytes=4_000_000,
                    read_bytes=8192,
                    write_bytes=0,
                )
            )
        return Snapshot(now, tick_s, self.base + born, None, None)


def db_bytes(path: Path) -> int:
    """The database's bytes once its WAL is checkpointed into it."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return sum(
        os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal")
        if os.path.exists(f"{path}{suffix}")
    )


def simulate(args: argparse.Namespace, path: Path) -> dict[str, float]:
    start = 1_800_000_000 // HOUR * HOUR
    now = [float(start)]
    store = Store(str(path), "bench", start)
    rec = Recorder(store, "bench", commit_every=5, keep_s=1e9, minutes_s=1e9, clock=lambda: now[0])
    host = Host(args.procs, args.movers, args.new_per_s)
    empty = TrafficSample(ts=0.0, interval_s=args.tick, processes=[])
    cpu: list[float] = []
    ticks = int(args.hours * HOUR / args.tick)
    for _ in range(ticks):
        now[0] += args.tick
        snap = host.tick(now[0], args.tick)
        t0 = time.process_time()
        rec.sample(snap, empty)
        cpu.append(time.process_time() - t0)
    rec.end(None)
    store.db.execute("VACUUM")
    minutes_per_day = db_bytes(path) * DAY / (args.hours * HOUR)
    rows_per_min = store.db.execute("SELECT count(*) FROM proc_rollups").fetchone()[0] / (
        args.hours * 60
    )
    store.maintain(now[0] + 10 * HOUR, keep_s=1e9, minutes_s=0, hours_s=1e9)  # into hours
    store.db.execute("VACUUM")
    hours_per_day = db_bytes(path) * DAY / (args.hours * HOUR)
    store.close()
    # The recorder's ticks cover `tick` s each here; at the default 1 s interval a tick
    # with the same processes costs about the same, so CPU % = per-tick cost / 1 s.
    return {
        "tick_ms_median": statistics.median(cpu) * 1000,
        "tick_ms_p95": sorted(cpu)[int(len(cpu) * 0.95)] * 1000,
        "rows_per_min": rows_per_min,
        "minutes_mb_per_day": minutes_per_day / 1e6,
        "hours_mb_per_day": hours_per_day / 1e6,
        "sim_start": float(start),
    }


def grow_to_30_days(sim: Path, out: Path, hours: float) -> dict[str, float]:
    """Copy the simulated hours into 30 days: 2 days of minutes, 28 of hours."""
    shutil.copy(sim, out)
    store = Store(str(out), "bench", time.time())
    db = store.db
    lo = db.execute("SELECT min(start) FROM proc_rollups").fetchone()[0]
    span = int(hours * HOUR)
    db.execute("BEGIN")
    # The simulation's minutes were rolled into hours (span 3600); copy them back as
    # the last 2 days of minutes from the pre-roll figures, approximated by spreading
    # each hour over its 60 minutes.
    for k in range(1, int(28 * 24 * HOUR / span)):
        for table, keys in (("proc_rollups", "proc"), ("host_rollups", "host, name")):
            cols = "sent_bytes, recv_bytes" + (
                ", cpu_s, disk_bytes, peak_rss_bytes" if table == "proc_rollups" else ""
            )
            db.execute(
                f"INSERT INTO {table} (span, start, {keys}, {cols}, peak_sent_bps, peak_recv_bps)"
                f" SELECT span, start - {k * span}, {keys}, {cols}, peak_sent_bps, peak_recv_bps"
                f" FROM {table} WHERE start >= {lo} AND start < {lo + span} AND span = {HOUR}"
            )
    minutes = int(2 * DAY / MINUTE)
    per_min = db.execute(
        "SELECT proc, sent_bytes / 60, recv_bytes / 60, cpu_s / 60, disk_bytes / 60,"
        " peak_rss_bytes, peak_sent_bps, peak_recv_bps FROM proc_rollups"
        f" WHERE start = {lo} AND span = {HOUR}"
    ).fetchall()
    top = lo + span
    db.executemany(
        "INSERT INTO proc_rollups VALUES (60, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((top + m * MINUTE, *row) for m in range(minutes) for row in per_min),
    )
    db.execute("COMMIT")
    db.execute("VACUUM")
    end = top + minutes * MINUTE
    store.close()
    size = db_bytes(out)
    reader = open_reader(str(out))
    times = {}
    for by in ("program", "process", "host"):
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            query(reader, by, end - 30 * DAY, end)
            runs.append(time.perf_counter() - t0)
        times[by] = min(runs)
    reader.close()
    return {"size_mb_30d": size / 1e6, **{f"query_{k}_s": v for k, v in times.items()}}


def real_recorder(seconds: float, path: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "nettop_ui", "record", "--db", str(path), "--backend", "psutil"]
    out = subprocess.run(
        [*cmd, "--duration", str(seconds)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    procs = len(os.listdir("/proc"))
    return {"cpu_pct": 100 * cpu / seconds, "rss_mb": after.ru_maxrss / 1024, "procs": procs}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--movers", type=int, default=300)
    parser.add_argument("--new-per-s", type=float, default=50)
    parser.add_argument("--hours", type=float, default=2)
    parser.add_argument("--tick", type=float, default=10)
    parser.add_argument("--real-s", type=float, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate(args, Path(tmp) / "sim.db")
        month = grow_to_30_days(Path(tmp) / "sim.db", Path(tmp) / "month.db", args.hours)
        real = real_recorder(args.real_s, Path(tmp) / "real.db")
    lines = [
        f"{datetime.date.today()}, {platform.node()}: {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, SQLite {sqlite3.sqlite_version}."
        f" `python -m bench.history --hours {args.hours:g} --tick {args.tick:g}`.",
        "",
        f"Busy host (synthetic snapshots through the real Recorder and Store): {args.procs}"
        f" processes, {args.movers} moving bytes, {args.new_per_s:g} new a second,"
        f" {args.hours:g} simulated hours.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| recorder CPU per tick (2,000 processes), median / p95 |"
        f" {sim['tick_ms_median']:.1f} / {sim['tick_ms_p95']:.1f} ms"
        f" (at 1 tick/s: {sim['tick_ms_median'] / 10:.1f}% of a core) |",
        f"| rows per minute | {sim['rows_per_min']:.0f} |",
        f"| database bytes per day, as minutes | {sim['minutes_mb_per_day']:.1f} MB |",
        f"| database bytes per day, rolled into hours | {sim['hours_mb_per_day']:.1f} MB |",
        f"| size after 30 days (2 d of minutes, 28 d of hours) | {month['size_mb_30d']:.1f} MB |",
        f"| `history --since 30d --by program` | {month['query_program_s'] * 1000:.0f} ms |",
        f"| `history --since 30d --by process` | {month['query_process_s'] * 1000:.0f} ms |",
        f"| `history --since 30d --by host` | {month['query_host_s'] * 1000:.0f} ms |",
        f"| real `nettop-ui record --backend psutil`, {args.real_s:g} s, {real['procs']:.0f}"
        f" /proc entries: CPU, peak RSS |"
        f" {real['cpu_pct']:.1f}% of a core, {real['rss_mb']:.0f} MiB |",
        "",
        "The 30-day database is the simulated hours copied back in time in SQL (not 30 days"
        " of ticks), with the last 2 days as minutes spread evenly from the first hour.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("history", body, "bench/history: the history store")


if __name__ == "__main__":
    main()
