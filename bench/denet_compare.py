"""bench/denet_compare: what `nettop-ui run` costs next to denet, monitoring the same command.

    sudo .venv/bin/python -m bench.denet_compare [--seconds 10] [--interval 0.1] [--no-write]

In one run of this script, each monitor watches the same quiet command (`sleep
SECONDS`, so the command itself costs nothing), all at the same time (so each sees the
same machine: other work here starts and ends thousands of processes, and a monitor
that reads every process pays for them), sampling every `--interval`:

- denet (its documented `execute_with_monitoring`, base = max interval, JSONL output),
- `nettop-ui run --backend psutil` (process facts only, like denet without eBPF),
- `nettop-ui run --backend ebpf` (as root: per-process network bytes too).

Each monitor is started as its own process and reaped with os.wait4: CPU is the
user+system time of it and everything it reaped (the command included, which is
~0), memory its peak RSS (ru_maxrss, the largest process of the tree: the monitor).
The samples written are counted from each recording. Each nettop-ui row's start-up
(the same command watching `true`: imports, backend start, first sample) is measured
too, so the table shows what the ticks cost. Results go to stdout and to
docs/benchmarks.md between the `monitor` markers, with the ratios to denet.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section

DENET_DRIVER = """
import sys, denet
code, _ = denet.execute_with_monitoring(
    ["sleep", sys.argv[1]], output_file=sys.argv[2], base_interval_ms=int(sys.argv[3]),
    max_interval_ms=int(sys.argv[3]), quiet=True, store_in_memory=False,
)
sys.exit(code)
"""


def process_count() -> int:
    return sum(name.isdigit() for name in os.listdir("/proc"))


def startup_cmd(cmd: list[str]) -> list[str]:
    """The same nettop-ui command watching `true` instead of `sleep SECONDS`."""
    return [*cmd[: cmd.index("--")], "--", "true"]


def subjects(seconds: float, interval: float, tmp: str) -> dict[str, tuple[list[str], Path]]:
    """Each monitor's command and the recording it writes."""
    py, ms = sys.executable, str(int(interval * 1000))
    out = {name: Path(tmp) / f"{i}.jsonl" for i, name in enumerate(("denet", "psutil", "ebpf"))}

    def nettop(backend: str) -> list[str]:
        return [py, "-m", "nettop_ui", "run", "--interval", str(interval), "--output",
                str(out[backend]), "--backend", backend, "--", "sleep", str(seconds)]  # fmt: skip

    found = {
        "denet": ([py, "-c", DENET_DRIVER, str(seconds), str(out["denet"]), ms], out["denet"]),
        "nettop-ui psutil": (nettop("psutil"), out["psutil"]),
    }
    if os.geteuid() == 0:
        found["nettop-ui ebpf"] = (nettop("ebpf"), out["ebpf"])
    return found


def measure(cmds: dict[str, list[str]]) -> dict[str, tuple[float, float, int]]:
    """(CPU seconds, peak RSS in MiB, wall seconds) of each monitor, all run at once."""
    start = time.monotonic()
    procs = {
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid: name
        for name, cmd in cmds.items()
    }
    found = {}
    while procs:
        pid, status, usage = os.wait4(-1, 0)
        name = procs.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{name} exited {os.waitstatus_to_exitcode(status)}")
        cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        found[name] = (cpu, rss, int(time.monotonic() - start))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, int, int, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = subjects(args.seconds, args.interval, tmp)
        before = process_count()
        measured = measure({name: cmd for name, (cmd, _) in runs.items()})
        machine = f"{before} processes on the machine at the start and {process_count()} at the end"
        written = {
            name: sum('"tree"' in line for line in out.read_text().splitlines())
            for name, (_, out) in runs.items()
        }  # before the start-up runs write over the recordings
        started = measure({n: startup_cmd(cmd) for n, (cmd, _) in runs.items() if n != "denet"})
        for name in runs:
            cpu, rss, wall = measured[name]
            samples = written[name]
            start = f"{started[name][0]:.2f}" if name in started else "-"
            rows.append((name, cpu, rss, wall, samples, start))
            print(f"{name:<18} cpu {cpu:6.2f} s (start-up {start})  peak RSS {rss:6.1f} MiB  "
                  f"{samples} samples")  # fmt: skip
    base_cpu, base_rss = rows[0][1], rows[0][2]
    table = [
        "| monitor | CPU s | CPU vs denet | of which start-up s | peak RSS MiB | RSS vs denet "
        "| wall s | samples |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, cpu, rss, wall, samples, start in rows:
        ratio_cpu = f"{cpu / base_cpu:.2f}x" if base_cpu > 0 else "-"
        table.append(
            f"| {name} | {cpu:.2f} | {ratio_cpu} | {start} | {rss:.1f} | {rss / base_rss:.2f}x "
            f"| {wall} | {samples} |"
        )
    when = datetime.datetime.now().strftime("%Y-%m-%d")
    body = (
        f"`python -m bench.denet_compare --seconds {args.seconds:g} --interval "
        f"{args.interval:g}` on {when}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"kernel {platform.release()}, denet 0.10.3. Each monitor watches `sleep "
        f"{args.seconds:g}` sampling every {args.interval:g} s, all at the same time, with "
        f"{machine}; CPU is user+system of the monitor and what it "
        "reaped (the sleep: ~0), "
        "RSS the monitor's peak (ru_maxrss). The ebpf row includes compiling and loading "
        "the BPF program at start. Other load on the machine at the time adds noise; "
        "denet's CPU grows with the number of processes on the machine (other work here "
        "starts and ends thousands), nettop-ui reads only the watched tree's."
        + (
            " PYTHONDONTWRITEBYTECODE was set: nettop-ui's modules were compiled at every "
            "start (an install keeps them compiled)."
            if os.environ.get("PYTHONDONTWRITEBYTECODE")
            else ""
        )
        + "\n\n"
        "Where nettop-ui's cost comes from: the start-up column (Python, imports, backend "
        "start: for ebpf, loading the BPF program, which a short-lived helper compiles "
        "with bcc/LLVM once and caches across runs); then the ticks. A tick "
        "reads only the tree's /proc files, the psutil backend's socket count included "
        "(its only per-process network figure: the tree's own sockets, asked of their "
        "fds, not the machine's socket tables): its new descendants come from the "
        "kernel's proc connector, not from reading every process.\n\n" + "\n".join(table)
    )
    print("\n".join(table))
    if not args.no_write:
        write_section("monitor", body, "Monitor overhead next to denet (bench/denet_compare)")


if __name__ == "__main__":
    main()
