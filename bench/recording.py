"""bench/recording: opening a large whole-machine recording in `replay`, and `summary`.

    .venv/bin/python -m bench.recording [--mb 1024] [--no-write]

A recording of `--mb` megabytes is written by the real writer (`jsonl.JsonlWriter`,
`jsonl.sample_record`) from real snapshots of this machine (the collector on the psutil
backend, every process: `--all`), repeated with advancing timestamps. Then, each in a
fresh process:

1. `replay`'s opening: `tui.replay.load` (the index scan) and the first frame, then the
   last frame (the `end` key: the sample and its history window); time and peak RSS;
2. `nettop-ui summary --json FILE`: time and peak RSS.

The same is measured on a 1 MB recording made the same way, as the baseline. The table
goes to stdout and, unless `--no-write`, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nettop_ui.collector import Collector
from nettop_ui.core import TrafficSample
from nettop_ui.jsonl import JsonlWriter, meta_record, sample_record

SNAPSHOTS = 5  # real snapshots taken, then repeated
INTERVAL_S = 1.0

# Run in a fresh interpreter: open the replay (index + first frame), then the last frame.
REPLAY_PROBE = """
import json, resource, sys, time
start = time.perf_counter()
from nettop_ui.tui.replay import load
source = load(sys.argv[1])
source.frame_at(0)
first = time.perf_counter() - start
t = time.perf_counter()
source.frame_at(len(source) - 1)
last = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"first_s": first, "last_s": last, "rss": rss, "samples": len(source)}))
"""


def real_samples(n: int = SNAPSHOTS) -> list[dict[str, Any]]:
    """`n` sample records of this machine's every process, `INTERVAL_S / 5` apart: the
    real collector's snapshots (psutil backend: per-process bytes unknown), each made a
    record at once (the collector updates its processes in place)."""
    collector = Collector(per_process_bytes=False, history_size=0, resolve=False, gpu=False)
    records = []
    try:
        for _ in range(n):
            time.sleep(INTERVAL_S / 5)
            snap = collector.ingest(TrafficSample(time.time(), INTERVAL_S / 5, None))
            records.append(sample_record(snap, all_processes=True))
    finally:
        collector.close()
    return records


def write_recording(path: Path, size_bytes: int) -> int:
    """A whole-machine recording of at least `size_bytes` at `path`: real snapshots
    through the real writer, one per `INTERVAL_S` of recorded time; the samples written."""
    from backends.psutil_backend import PsutilBackend

    records = real_samples()
    ts = records[0]["ts"]
    written = 0
    with path.open("w", encoding="utf-8") as out:
        writer = JsonlWriter(out)
        writer.write(meta_record(PsutilBackend, INTERVAL_S, ts, "bench/recording"))
        while out.tell() < size_bytes:
            for record in records:
                writer.write({**record, "ts": ts + written * INTERVAL_S})
                written += 1
    return written


def _child(args: list[str]) -> tuple[float, int, str]:
    """Seconds, peak RSS and stdout of a fresh process running `args`."""
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "res = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True)\n"
        "s = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps([s, rss, res.stdout]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True
    )
    seconds, rss, stdout = json.loads(out.stdout)
    return seconds, rss, stdout


def measure(path: Path) -> dict[str, float]:
    _, _, replay = _child([sys.executable, "-c", REPLAY_PROBE, str(path)])
    opened = json.loads(replay)
    summary_s, summary_rss, _ = _child(
        [sys.executable, "-m", "nettop_ui", "summary", "--json", str(path)]
    )
    return {**opened, "summary_s": summary_s, "summary_rss": summary_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.jsonl", Path(tmp) / "big.jsonl"
        write_recording(small, 1024 * 1024)
        t = time.perf_counter()
        write_recording(big, args.mb * 1024 * 1024)
        write_s = time.perf_counter() - t
        size = big.stat().st_size
        base, large = measure(small), measure(big)
    mib = 1024 * 1024
    lines = [
        f"{datetime.date.today()}, {platform.node()}: {os.cpu_count()} cores, Python"
        f" {platform.python_version()}. `python -m bench.recording --mb {args.mb}`: a"
        f" {size / mib:,.0f} MiB whole-machine recording ({large['samples']:,} samples of"
        f" every process here, written in {write_s:.0f} s) against a 1 MiB one.",
        "",
        "| measure | 1 MiB | large |",
        "| --- | --- | --- |",
        f"| `replay`: index and first frame | {base['first_s']:.2f} s | {large['first_s']:.2f} s |",
        f"| `replay`: the last frame (`end`) | {base['last_s']:.2f} s | {large['last_s']:.2f} s |",
        f"| `replay`: peak RSS | {base['rss'] / mib:.0f} MiB | {large['rss'] / mib:.0f} MiB |",
        f"| `summary --json` | {base['summary_s']:.2f} s | {large['summary_s']:.2f} s |",
        f"| `summary --json`: peak RSS | {base['summary_rss'] / mib:.0f} MiB"
        f" | {large['summary_rss'] / mib:.0f} MiB |",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        from bench.report import write_section

        write_section("recording", body, "bench/recording: large whole-machine recordings")


if __name__ == "__main__":
    main()
