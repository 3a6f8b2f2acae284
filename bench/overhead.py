"""bench/overhead: what nettop-ui costs per backend, next to nethogs, under one traffic load.

    sudo .venv/bin/python -m bench.overhead [--seconds 20] [--no-write]

While one paced load runs for the whole benchmark (a TCP client uploading ~5 MB/s in
16 KiB writes over the test veth, plus ~500 UDP datagrams/s), each subject runs for
`--seconds` in turn: `nettop-ui --json --interval 1 --backend X --output /dev/null`
for every Linux backend, and `nethogs -t -v 2 -C -a -d 1` itself. CPU is user+system
time of the subject and the children it reaped (os.wait4's rusage); PSS is summed
over the subject's process tree from /proc/PID/smaps_rollup two thirds into its run.
Results go to stdout and to docs/benchmarks.md between the overhead markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.report import write_section
from tests.netenv import Network, network_env

NETTOP_UI = str(Path(sys.executable).parent / "nettop-ui")
SUBJECTS: dict[str, list[str]] = {
    "nettop-ui ebpf": [NETTOP_UI, "--json", "--backend", "ebpf"],
    "nettop-ui sockdiag": [NETTOP_UI, "--json", "--backend", "sockdiag"],
    "nettop-ui nethogs": [NETTOP_UI, "--json", "--backend", "nethogs"],
    "nettop-ui psutil": [NETTOP_UI, "--json", "--backend", "psutil"],
    "nethogs itself": ["nethogs", "-t", "-v", "2", "-C", "-a", "-d", "1"],
}


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.split("\n"):
        if line.strip():
            p, pp = map(int, line.split())
            children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def pss_kib(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """utime+stime of a live process tree, from /proc/PID/stat."""
    ticks = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(cmd: list[str], seconds: float) -> tuple[float, float, int]:
    """(CPU s over the whole run, steady CPU s/s after warm-up, PSS KiB) of one subject."""
    if cmd[0] == NETTOP_UI:
        cmd = [*cmd, "--interval", "1", "--output", "/dev/null"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds / 3)  # start-up (imports, BPF compile) is over by now
    steady_from, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds / 3)
    pss = pss_kib(proc.pid)
    time.sleep(seconds / 3)
    steady = (cpu_seconds(proc.pid) - steady_from) / (time.monotonic() - t0)
    proc.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, -signal.SIGINT, 130):
        raise RuntimeError(f"{cmd[0]} failed: status {status}")
    return usage.ru_utime + usage.ru_stime, steady, pss


def load(net: Network, seconds: float) -> list[subprocess.Popen[str]]:
    """The paced traffic, alive for the whole benchmark."""
    total = int(5_000_000 * seconds)
    up = net.client("ovh-tcp", "tcp", "v4", up=total, down=1, rate=5_000_000)
    udp = net.client(
        "ovh-udp", "udp", "v4", datagrams=int(500 * seconds), size=1000, reply=200, pace=0.002
    )
    return [up.proc, udp.proc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results: dict[str, tuple[float, float, int]] = {}
    with network_env() as net:
        procs = load(net, args.seconds * (len(SUBJECTS) + 1) + 10)
        try:
            time.sleep(1)
            for name, cmd in SUBJECTS.items():
                results[name] = measure(cmd, args.seconds)
                print(name, results[name])
        finally:
            for p in procs:
                p.kill()
                p.wait()
    _, base_steady, base_pss = results["nethogs itself"]
    lines = [
        f"Run {datetime.date.today()} on {platform.node()} (kernel {platform.release()}, "
        f"2 cores), `python -m bench.overhead --seconds {args.seconds:g}`, 1 s interval, "
        "under ~5 MB/s TCP + ~500 UDP datagrams/s. nettop-ui's figures include its "
        "collector (a /proc scan of every process each second) and, for the nethogs "
        "backend, the nethogs child it runs.",
        "",
        "Steady state is measured over the last two thirds of each run (after start-up, "
        "which for ebpf includes compiling the BPF program); the whole-run CPU includes it.",
        "",
        "| subject | steady CPU, % of one core | vs nethogs | CPU s, whole run | "
        "PSS MiB | PSS vs nethogs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, (cpu, steady, pss) in results.items():
        lines.append(
            f"| {name} | {100 * steady:.2f}% | {steady / max(base_steady, 1e-9):.2f}x | "
            f"{cpu:.2f} | {pss / 1024:.1f} | {pss / max(base_pss, 1):.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section("overhead", table, "Overhead (bench/overhead)")


if __name__ == "__main__":
    main()
