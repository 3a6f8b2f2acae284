"""bench/prometheus: what one /metrics scrape costs with 2,000 live processes.

    .venv/bin/python -m bench.prometheus [--procs 2000] [--movers 200] [--ticks 5]
                                         [--renders 200] [--no-write]

Spawns `--procs` real `sleep` processes, feeds the real collector `--ticks` ticks in
which `--movers` of them moved a random number of bytes (one `ProcessTraffic` per pid,
as a backend reports them), folds each snapshot into the exporter (`Exporter.update`,
what the monitor does once per tick), then times `generate_latest` (exactly what the
HTTP handler runs per scrape) `--renders` times: median and 95th percentile in ms, and
the size of the output. Once with the default grouping (program name, top 50), once
with `--prometheus-pids` (a series set per live process). The table goes to stdout
and, unless `--no-write`, to docs/benchmarks.md between the prometheus markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import subprocess
import time

from prometheus_client import CollectorRegistry, generate_latest

from backends.ebpf import EbpfBackend
from bench.report import write_section
from nettop_ui.collector import Collector
from nettop_ui.core import ProcessTraffic, TrafficSample
from nettop_ui.prometheus import DEFAULT_TOP, Exporter

SLEEP_S = 900  # the children outlive a crashed run by at most this long


def spawn_sleepers(count: int) -> list[subprocess.Popen[bytes]]:
    null = subprocess.DEVNULL
    return [
        subprocess.Popen(["sleep", str(SLEEP_S)], stdin=null, stdout=null, stderr=null)
        for _ in range(count)
    ]


def measure(
    pids: bool, sleepers: list[int], movers: int, ticks: int, renders: int
) -> dict[str, float]:
    rng = random.Random(1)
    collector = Collector(system=False, gpu=False)
    exporter = Exporter(EbpfBackend, top=DEFAULT_TOP, pids=pids)
    update_ms = []
    for _ in range(ticks):
        moved = [
            ProcessTraffic(p, rng.randint(1, 10**6), rng.randint(1, 10**6))
            for p in rng.sample(sleepers, movers)
        ]
        snap = collector.ingest(TrafficSample(time.time(), 1.0, moved))
        t0 = time.perf_counter()
        exporter.update(snap)
        update_ms.append((time.perf_counter() - t0) * 1000)
    registry = CollectorRegistry()
    registry.register(exporter)
    times, size = [], 0
    for _ in range(renders):
        t0 = time.perf_counter()
        out = generate_latest(registry)
        times.append((time.perf_counter() - t0) * 1000)
        size = len(out)
    times.sort()
    series = sum(1 for line in out.decode().splitlines() if line and not line.startswith("#"))
    return {
        "processes": len(snap.processes),
        "render_median_ms": statistics.median(times),
        "render_p95_ms": times[int(len(times) * 0.95) - 1],
        "bytes": size,
        "series": series,
        "update_median_ms": statistics.median(update_ms[1:] or update_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--movers", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    children = spawn_sleepers(args.procs)
    try:
        pids = [c.pid for c in children]
        rows = [
            (name, measure(flag, pids, args.movers, args.ticks, args.renders))
            for name, flag in (("groups (default)", False), ("--prometheus-pids", True))
        ]
        load = os.getloadavg()[0]
    finally:
        for c in children:
            c.kill()
        for c in children:
            c.wait()
    lines = [
        "| exposition | processes | series | size | render median | render p95 | update per tick |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['processes']:.0f} | {r['series']:.0f} | {r['bytes'] / 1024:.0f} KiB "
            f"| {r['render_median_ms']:.2f} ms | {r['render_p95_ms']:.2f} ms "
            f"| {r['update_median_ms']:.2f} ms |"
        )
    body = (
        f"`python -m bench.prometheus --procs {args.procs} --movers {args.movers}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()}), "
        f"{datetime.date.today().isoformat()}: {args.procs} real `sleep` processes plus the "
        f"machine's own, fed through the real collector for {args.ticks} ticks with "
        f"{args.movers} of them moving random bytes; then `generate_latest` (what one "
        f"scrape of /metrics runs) {args.renders} times. Grouped by program name, top "
        f'{DEFAULT_TOP} plus "other". "update per tick" is `Exporter.update`, run once '
        "per monitor tick, not per scrape. Load average (1 min) during the run: "
        f"{load:.1f}.\n\n" + "\n".join(lines)
    )
    print(body)
    if not args.no_write:
        write_section("prometheus", body, "Prometheus /metrics render (bench/prometheus)")


if __name__ == "__main__":
    main()
