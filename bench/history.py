"""bench/history: the history recorder's cost, the database's size, and query time.

    .venv/bin/python -m bench.history [--procs 2000] [--movers 300] [--new-per-s 50]
                                      [--hosts 500] [--hours 2] [--tick 10] [--real-s 20]
                                      [--no-write]

1. Size and recorder cost on a busy host: synthetic snapshots (the collector's
   `ProcessState`s: `--procs` processes, `--movers` of them moving bytes each tick over
   one connection each to `--hosts` remote hosts, 100 more using CPU and disk,
   `--new-per-s` new short-lived processes a second, each using some CPU) fed through
   the real `Recorder` and `Store` under a simulated clock, one tick every `--tick`
   simulated seconds, for `--hours` simulated hours. A minute's rows do not depend on
   how many ticks it had, so coarser ticks only make the run shorter; the recorder's CPU
   per tick is measured per real second of 2,000 processes. Bytes per day are measured
   as minutes (with the hours and days they are also written into).
2. 30 days: the same host through the real `Recorder` and `Store` (and their hourly
   rollup and retention, at the defaults: 30 d kept, minutes 2 d, hours 7 d) for 30
   simulated days: one tick a simulated hour for the first 28 days (their minutes are
   dropped after 2 days; their hours and days hold one row per process an hour or a
   day, as on the busy host, and at most a minute's `--new-per-s` new processes a
   tick), then one a minute for the last 2 days. Then the database's size, and the time
   of `history --since 30d` for each `--by` (the query in-process, best of 3, and the
   real `nettop-ui history` command once).
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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section
from nettop_ui.collector import ConnectionState, ProcessState, Snapshot
from nettop_ui.core import TrafficSample
from nettop_ui.history_cli import query
from nettop_ui.record import Recorder
from nettop_ui.remotes import RemoteHostState
from nettop_ui.store import DAY, HOUR, MINUTE, ROLLUP_TABLES, Store, open_reader

NAMES = ("nginx", "postgres", "python3", "node", "java", "curl", "rsync", "chrome", "sshd")


class Host:
    """A busy host's processes, moved on one tick at a time."""

    def __init__(self, procs: int, movers: int, new_per_s: float, hosts: int) -> None:
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
        self.remotes = [
            RemoteHostState(address=f"10.{i // 250}.{i % 250}.1", scope="remote")
            for i in range(hosts)
        ]
        for i, p in enumerate(self.base[:movers]):
            remote = self.remotes[i % hosts].address
            conn = ConnectionState("tcp", f"192.168.0.2:{30000 + i}", f"{remote}:443")
            p.connections[(conn.protocol, conn.local, conn.remote)] = conn
        self.movers, self.new_per_s, self.next_pid, self.tick_no = movers, new_per_s, 100_000, 0

    def tick(self, now: float, tick_s: float) -> Snapshot:
        self.tick_no += 1
        for i, p in enumerate(self.base):
            if i < self.movers:
                assert p.sent_bytes is not None and p.recv_bytes is not None
                sent = 1000 * (1 + (i * 7 + self.tick_no) % 50) * int(tick_s)
                recv = 3000 * (1 + (i * 3 + self.tick_no) % 50) * int(tick_s)
                p.sent_bytes += sent
                p.recv_bytes += recv
                p.sent_bps = p.recv_bps = 50_000.0
                (conn,) = p.connections.values()
                conn.sent_bytes += sent
                conn.recv_bytes += recv
                host = self.remotes[i % len(self.remotes)]
                host.sent_bytes += sent
                host.recv_bytes += recv
            if i < self.movers + 100:
                assert p.cpu_user_s is not None and p.write_bytes is not None
                assert p.read_bytes is not None
                p.cpu_user_s += 0.01 * tick_s
                p.write_bytes += 4096
                p.read_bytes += 1024
        born = []
        # Live within one tick, then gone; at most a minute's worth a tick (their rows
        # are one per program, user and service a minute however many there are).
        for _ in range(int(self.new_per_s * min(tick_s, MINUTE))):
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
        return Snapshot(now, tick_s, self.base + born, None, None, remotes=self.remotes)


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


def busy_host(args: argparse.Namespace) -> Host:
    return Host(args.procs, args.movers, args.new_per_s, args.hosts)


def simulate(args: argparse.Namespace, path: Path) -> dict[str, float]:
    start = 1_800_000_000 // DAY * DAY
    now = [float(start)]
    store = Store(str(path), "bench", start)
    rec = Recorder(
        store, "bench", commit_every=5, keep_s=1e9, minutes_s=1e9, hours_s=1e9, clock=lambda: now[0]
    )
    host = busy_host(args)
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
    rows_per_min = {
        table: store.db.execute(f"SELECT count(*) FROM {table} WHERE span = {MINUTE}").fetchone()[0]
        / (args.hours * 60)
        for table in ROLLUP_TABLES
    }
    store.db.execute("VACUUM")
    store.close()
    minutes_per_day = db_bytes(path) * DAY / (args.hours * HOUR)
    # The recorder's ticks cover `tick` s each here; at the default 1 s interval a tick
    # with the same processes costs about the same, so CPU % = per-tick cost / 1 s.
    return {
        "tick_ms_median": statistics.median(cpu) * 1000,
        "tick_ms_p95": sorted(cpu)[int(len(cpu) * 0.95)] * 1000,
        **{f"rows_per_min_{table}": n for table, n in rows_per_min.items()},
        "minutes_mb_per_day": minutes_per_day / 1e6,
    }


BYS = ("program", "process", "service", "user", "host")


def thirty_days(args: argparse.Namespace, path: Path) -> dict[str, float]:
    """30 simulated days through the real recorder at its default retention."""
    end = 1_800_000_000 // DAY * DAY + 12 * HOUR  # a range that cuts days and hours
    start = end - 30 * DAY
    now = [float(start)]
    store = Store(str(path), "bench", start)
    rec = Recorder(store, "bench", commit_every=5, clock=lambda: now[0])
    host = busy_host(args)
    empty = TrafficSample(ts=0.0, interval_s=MINUTE, processes=[])
    t0 = time.perf_counter()
    while now[0] < end:
        tick = HOUR if now[0] < end - 2 * DAY else MINUTE
        now[0] += tick
        rec.sample(host.tick(now[0], tick), empty)
    rec.end(None)
    fill_s = time.perf_counter() - t0
    counts = dict(
        store.db.execute("SELECT span, count(*) FROM proc_rollups GROUP BY span").fetchall()
    )
    store.db.execute("VACUUM")
    tables = dict(
        store.db.execute(
            "SELECT name, sum(pgsize) FROM dbstat WHERE name IN"
            f" ({', '.join('?' * len(ROLLUP_TABLES))}) GROUP BY name",
            ROLLUP_TABLES,
        ).fetchall()
    )
    store.close()
    size = db_bytes(path)
    reader = open_reader(str(path))
    times, groups = {}, {}
    for by in BYS:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            rows = query(reader, by, end - 30 * DAY, end)
            runs.append(time.perf_counter() - t0)
        times[by], groups[by] = min(runs), len(rows)
    reader.close()
    iso = [datetime.datetime.fromtimestamp(t).isoformat() for t in (end - 30 * DAY, end)]
    cmd = [sys.executable, "-m", "nettop_ui", "history", "--db", str(path), "--between", *iso]
    t0 = time.perf_counter()
    out = subprocess.run([*cmd, "--by", "process"], capture_output=True, text=True)
    cli_s = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    return {
        "fill_s": fill_s,
        "size_mb_30d": size / 1e6,
        "cli_s": cli_s,
        **{f"rows_{span}": n for span, n in counts.items()},
        **{f"mb_{table}": n / 1e6 for table, n in tables.items()},
        **{f"query_{k}_s": v for k, v in times.items()},
        **{f"groups_{k}": v for k, v in groups.items()},
    }


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
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--hours", type=float, default=2)
    parser.add_argument("--tick", type=float, default=10)
    parser.add_argument("--real-s", type=float, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate(args, Path(tmp) / "sim.db")
        month = thirty_days(args, Path(tmp) / "month.db")
        real = real_recorder(args.real_s, Path(tmp) / "real.db")
    worst = max(month[f"query_{by}_s"] for by in BYS)
    lines = [
        f"{datetime.date.today()}, {platform.node()}: {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, SQLite {sqlite3.sqlite_version}."
        f" `python -m bench.history --hours {args.hours:g} --tick {args.tick:g}`.",
        "",
        f"Busy host (synthetic snapshots through the real Recorder and Store): {args.procs}"
        f" processes, {args.movers} moving bytes to {args.hosts} hosts, {args.new_per_s:g}"
        " new a second.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| recorder CPU per tick ({args.procs:,} processes), median / p95 |"
        f" {sim['tick_ms_median']:.1f} / {sim['tick_ms_p95']:.1f} ms"
        f" (at 1 tick/s: {sim['tick_ms_median'] / 10:.1f}% of a core) |",
        "| rows per minute: process, host, process and host | "
        + ", ".join(f"{sim[f'rows_per_min_{t}']:.0f}" for t in ROLLUP_TABLES)
        + " |",
        f"| database bytes per day, as minutes (with their hours and days) |"
        f" {sim['minutes_mb_per_day']:.1f} MB |",
        f"| 30 simulated days through the recorder (defaults: minutes 2 d, hours 7 d, kept 30 d):"
        f" fill time | {month['fill_s']:.0f} s |",
        f"| size after 30 days ({month.get(f'rows_{MINUTE}', 0):,} minute,"
        f" {month.get(f'rows_{HOUR}', 0):,} hour, {month.get(f'rows_{DAY}', 0):,} day process rows)"
        f" | {month['size_mb_30d']:.1f} MB (process rows"
        + ", host rows, process and host rows: "
        + ", ".join(f"{month.get(f'mb_{t}', 0):.1f}" for t in ROLLUP_TABLES)
        + " MB) |",
        *(
            f"| `history --since 30d --by {by}` ({month[f'groups_{by}']} rows), query |"
            f" {month[f'query_{by}_s'] * 1000:.0f} ms |"
            for by in BYS
        ),
        f"| the real `nettop-ui history --by process` command over those 30 days, wall |"
        f" {month['cli_s'] * 1000:.0f} ms |",
        f"| real `nettop-ui record --backend psutil`, {args.real_s:g} s, {real['procs']:.0f}"
        f" /proc entries: CPU, peak RSS |"
        f" {real['cpu_pct']:.1f}% of a core, {real['rss_mb']:.0f} MiB |",
        "",
        f"Goal: a 30-day query under 1 s. Slowest here: {worst * 1000:.0f} ms"
        f" ({'met' if worst < 1 else 'NOT met'}). The 30 days are real recorder ticks under a"
        " simulated clock: one an hour for the first 28 days (whose minutes are dropped after"
        " 2 days anyway), one a minute for the last 2 days. The query reads whole days, whole"
        " hours and the minutes at the range's ends (docs/history.md).",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("history", body, "bench/history: the history store")


if __name__ == "__main__":
    main()
