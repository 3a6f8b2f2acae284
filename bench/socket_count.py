"""bench/socket_count: what counting every process's open sockets costs, 2,000 idle processes.

    .venv/bin/python -m bench.socket_count [--procs 2000] [--ticks 10] [--no-write]

Spawns `--procs` real `sleep` processes, then, once a second for `--ticks` ticks, runs
the real collector's scan (which finds the processes that have not run since the
previous one) and times, in CPU time of this process (user + system, so the kernel's
work on /proc and netlink counts): the full walk (`procfs.inet_socket_counts`: every
process's fd links read), a `SocketCounter` count that stats every process's
/proc/PID/fd (what the psutil backend did every tick), one that skips the processes
that slept (what the collector does now), and the socket tables alone: /proc/net/tcp
and tcp6 as read before, and the one inet_diag dump that replaces them. Medians in ms,
and how many processes the skipping count stat'ed. Every count is checked equal to
the full walk's (for the sleepers, whose sockets no one else touches). The table goes
to stdout and, unless `--no-write`, to docs/benchmarks.md between the socket-count
markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.report import write_section
from bench.tui import spawn_sleepers, stop_all
from nettop_ui import inetdiag, procfs
from nettop_ui.collector import Collector
from nettop_ui.core import TrafficSample


def cpu_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    out = fn()
    return (time.process_time() - start) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="don't touch docs/")
    args = parser.parse_args()
    children = spawn_sleepers(args.procs)
    sleepers = [c.pid for c in children]
    times: dict[str, list[float]] = {}
    stated: list[int] = []
    listed: list[int] = []
    collector = Collector(gpu=False, system=False, resolve=False, count_connections=False)
    every, skipping = procfs.SocketCounter(), procfs.SocketCounter()
    try:
        time.sleep(1.0)  # their exec done
        for tick in range(args.ticks + 1):
            collector.ingest(TrafficSample(time.time(), 1.0, None))
            pids = list(collector._live_by_pid)  # the scan's listing, as the collector passes
            quiet = collector._slept_pids  # who slept since the last scan
            runs: dict[str, Callable[[], Any]] = {
                "full walk": procfs.inet_socket_counts,
                "every process stat'ed": every.count,
                "the sleeping ones skipped": partial(skipping.count, pids, quiet),
                "/proc/net/tcp, tcp6": partial(procfs.inet_rows, ("tcp", "tcp6")),
                "inet_diag dump": inetdiag.tcp_inodes,
            }
            results = {name: cpu_ms(fn) for name, fn in runs.items()}
            if tick == 0:
                continue  # the counters' first count reads every link
            stated.append(skipping.stats)
            listed.append(len(results["/proc/net/tcp, tcp6"][1]))
            full = results["full walk"][1]
            for name in ("every process stat'ed", "the sleeping ones skipped"):
                got = results[name][1]
                assert {p: got.get(p, 0) for p in sleepers} == {p: full.get(p, 0) for p in sleepers}
            for name, (ms, _) in results.items():
                times.setdefault(name, []).append(ms)
            time.sleep(1.0)
    finally:
        collector.close()
        stop_all(children)
    rows = [f"| {name} | {statistics.median(ms):.1f} |" for name, ms in times.items()]
    body = "\n".join(
        [
            f"{datetime.date.today()}, {platform.node()}, Linux {platform.release()}, "
            f"{os.cpu_count()} CPUs, {len(pids)} processes ({args.procs} `sleep`), "
            f"{statistics.median(listed):.0f} TCP sockets listed (TIME_WAIT ones included), "
            f"{args.ticks} ticks a second apart. CPU ms per call, median. The skipping "
            f"count stat'ed {statistics.median(stated):.0f} processes (the others slept). "
            "The psutil backend's count every tick used to be the second row with the "
            "tables of the fourth in place of the dump; the collector's is now the third.",
            "",
            "| socket count | CPU ms |",
            "|---|---:|",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("socket-count", body, "Socket count per tick (bench/socket_count)")


if __name__ == "__main__":
    main()
