"""bench/memory: what nettop-ui keeps resident, next to nethogs, and how soon it shows data.

    sudo .venv/bin/python -m bench.memory [--seconds 9] [--procs 2000] [--rounds 4] [--no-write]

Three parts, in one run, with real `sleep` processes added until the machine runs
`--procs` processes in all (the collector keeps state for each, so memory depends on
it):

- **Headless**: `nettop-ui --json --interval 1 --backend X` for ebpf, sockdiag and
  psutil, and `nethogs -t -d 1` itself, each for `--seconds` in turn. PSS is summed
  over the subject's process tree (bench/overhead's `pss_kib`) two thirds into its run;
  *first sample* is the time from starting nettop-ui to its first sample line on
  stdout, which for ebpf includes starting the loader helper and compiling the
  program, and for every backend one 1 s interval.
- **Loader**: the ebpf program's load, `--rounds` times: the first with an empty cache
  (helper start, bcc import, compile, load, attach, hand-over: what a first run after
  a kernel or program change costs), the others from backends/bpfcache.py's cache;
  and the helper's peak RSS (its rusage), resident only while it runs.
- **TUI**: the real `nettop-ui --backend ebpf` (and `--backend psutil`, for comparison)
  in a 160x48 tmux terminal (tests/tmuxterm.py). *First table* is the time from Enter
  to a table with rows on the screen: the collector's first look (names, memory, CPU
  time; rates unknown until the first sample), made while the program loads; RSS and
  PSS of the app are read `--seconds` later.

The whole run uses a cache directory of its own (NETTOP_UI_BPF_CACHE), filled by the
loader's first round: every later start is a cached one, as on a machine where
nettop-ui ran before.

The table goes to stdout and, unless `--no-write`, to docs/benchmarks.md between the
memory markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from backends import ebpf
from bench.overhead import NETTOP_UI, pss_kib
from bench.report import write_section
from bench.tui import spawn_sleepers, stop_all
from tests.tmuxterm import tui

BACKENDS = ("ebpf", "sockdiag", "psutil")
NETHOGS = ["nethogs", "-t", "-d", "1"]
GOAL_PSS_MIB, GOAL_TUI_RSS_MIB, GOAL_FIRST_S = 40.0, 100.0, 1.5
MIB = 1024 * 1024


def headless(cmd: list[str], seconds: float) -> tuple[float | None, int]:
    """(seconds to the first sample line or None for nethogs, PSS KiB) of one subject."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first: list[float] = []

    def drain() -> None:  # keeps the pipe from filling; notes the first sample's time
        assert proc.stdout is not None
        for line in proc.stdout:
            if not first and line.startswith('{"type":"sample"'):
                first.append(time.monotonic() - started)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    time.sleep(seconds * 2 / 3)
    pss = pss_kib(proc.pid)
    time.sleep(seconds / 3)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    reader.join(5)
    return (first[0] if first else None) if cmd[0] == NETTOP_UI else None, pss


def loader_rounds(rounds: int) -> tuple[float, list[float], float]:
    """Seconds of the ebpf program's load uncached, then cached (`rounds` - 1 times), and
    the helper's peak RSS in MiB."""
    times = []
    for _ in range(rounds):
        t0 = time.monotonic()
        prog = ebpf._compile(use_kprobes=False)
        times.append(time.monotonic() - t0)
        assert prog.cached == (len(times) > 1), "the cache did not behave"
        prog.close()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return times[0], times[1:], peak_kib / 1024


def tui_run(backend: str, seconds: float) -> tuple[float, float, float]:
    """(seconds to the first table, RSS MiB, PSS MiB) of the TUI in a 160x48 terminal."""
    with tui(160, 48, "--backend", backend) as (_term, app):
        app.wait_table(60, sampled=False)  # the first look: the first frame
        first = time.monotonic() - app.entered
        time.sleep(seconds)
        rss = app.proc.memory_info().rss / MIB
        pss = pss_kib(app.proc.pid) / 1024
        return first, rss, pss


def machine() -> str:
    return (
        f"{platform.node()} ({psutil.cpu_count()} cores, kernel {platform.release()}, "
        f"Python {platform.python_version()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=9.0)
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("nettop-ui: error: bench.memory needs root (the ebpf backend and nethogs)")

    os.environ["NETTOP_UI_BPF_CACHE"] = tempfile.mkdtemp(prefix="bench-memory-bpf-")
    cold, cached, helper_peak = loader_rounds(args.rounds)  # first: the peak is the helper's
    print("loader", cold, cached, helper_peak, flush=True)
    rows: dict[str, tuple[float | None, int]] = {}
    sleepers = spawn_sleepers(max(0, args.procs - len(psutil.pids())))
    try:
        procs = len(psutil.pids())
        for b in BACKENDS:
            cmd = [NETTOP_UI, "--json", "--interval", "1", "--backend", b]
            rows[f"nettop-ui --json, {b}"] = headless(cmd, args.seconds)
            print(b, rows[f"nettop-ui --json, {b}"], flush=True)
        rows["nethogs itself"] = headless(NETHOGS, args.seconds)
        print("nethogs", rows["nethogs itself"], flush=True)
        tuis = {b: tui_run(b, args.seconds) for b in ("ebpf", "psutil")}
        procs = max(procs, len(psutil.pids()))
    finally:
        stop_all(sleepers)
    print("tui", tuis, flush=True)

    base = rows["nethogs itself"][1]
    _, ebpf_pss = rows["nettop-ui --json, ebpf"]
    _, psutil_pss = rows["nettop-ui --json, psutil"]
    tui_first, tui_rss, _ = tuis["ebpf"]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    lines = [
        f"Run {datetime.date.today()} on {machine()}, `python -m bench.memory --seconds "
        f"{args.seconds:g} --procs {args.procs} --rounds {args.rounds}`, with {procs:,} "
        "processes on the machine.",
        "",
        f"- Headless `--json --backend ebpf` PSS {ebpf_pss / 1024:.1f} MiB, goal under "
        f"{GOAL_PSS_MIB:g} MiB: {verdict(ebpf_pss / 1024 < GOAL_PSS_MIB)}. The backend's own "
        f"share, over psutil's: {(ebpf_pss - psutil_pss) / 1024:+.1f} MiB; the rest is the "
        "interpreter and the collector's state for every process.",
        f"- TUI with ebpf at {procs:,} processes RSS {tui_rss:.1f} MiB, goal under "
        f"{GOAL_TUI_RSS_MIB:g} MiB: {verdict(tui_rss < GOAL_TUI_RSS_MIB)}.",
        f"- TUI first table with ebpf (the first look, made while the program loads from "
        f"the cache; a first run after a kernel change compiles for {cold:.2f} s meanwhile), "
        f"{tui_first:.2f} s (with psutil: {tuis['psutil'][0]:.2f} s), goal under "
        f"{GOAL_FIRST_S:g} s: {verdict(tui_first < GOAL_FIRST_S)}.",
        "",
        "| headless subject | PSS MiB | PSS vs nethogs | first sample |",
        "| --- | --: | --: | --: |",
    ]
    for name, (first, pss) in rows.items():
        shown = f"{first:.2f} s" if first is not None else "n/a"
        lines.append(f"| {name} | {pss / 1024:.1f} | {pss / max(base, 1):.2f}x | {shown} |")
    lines += [
        "",
        f"| TUI, 160x48, {procs:,} processes | first table | RSS MiB | PSS MiB |",
        "| --- | --: | --: | --: |",
    ]
    for b, (shown_first, rss, tui_pss) in tuis.items():
        lines.append(
            f"| nettop-ui --backend {b} | {shown_first:.2f} s | {rss:.1f} | {tui_pss:.1f} |"
        )
    lines += [
        "",
        f"Loading the ebpf program uncached, through the helper (backends/bpfload.py: "
        f"helper start, bcc import, compile, load, attach, descriptors handed over), took "
        f"{cold:.2f} s; from the cache (backends/bpfcache.py, no helper) "
        f"{1000 * min(cached):.0f}–{1000 * max(cached):.0f} ms over {len(cached)} rounds "
        f"(median {1000 * statistics.median(cached):.0f} ms). The helper peaks at "
        f"{helper_peak:.0f} MiB RSS (bcc and LLVM) and exits; nettop-ui never maps libbcc "
        "or LLVM "
        "(tests/test_bpfload.py checks /proc/PID/maps). Before the helper, bcc compiled in "
        "the nettop-ui process and LLVM stayed mapped: headless ebpf PSS was 143 MiB "
        "(bench/overhead, 2026-11-30). *First sample* includes one 1 s interval.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section("memory", table, "Memory and first frame (bench/memory)")


if __name__ == "__main__":
    main()
