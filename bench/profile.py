"""bench/profile: what `--profile` costs the programs it watches.

    sudo .venv/bin/python -m bench.profile [--calls 10000000] [--files 24] [--repeat 3]
                                           [--no-write]

Two workloads, each measured from inside (a small wrapper reads their CPU time, user +
system, from getrusage once they are reaped: a BPF program's time is system time of the
task it runs in, and on a shared machine CPU time is far steadier than wall time, which
other users' load stretches at random): a syscall-heavy one, a C program making
`--calls` getppid syscalls, and a build-like one, `make -j2` compiling `--files`
generated C files. Each runs `--repeat`
times in each of three modes, interleaved so that the machine's drift hits all alike:

- off: `nettop-ui run --backend psutil --output /dev/null -- WORKLOAD`;
- tree: the same with `--profile` (the kernel counts the watched tree only, with detail);
- all: the workload alone while `nettop-ui --json --profile --backend psutil` runs beside
  it (the kernel counts every process, with detail: more than the TUI, which keeps
  detail for its drill-down only).

The slowdown is each mode's median CPU time over off's; the per-syscall cost is the
extra CPU time of the getppid workload divided by its calls. Results go to stdout and to
docs/benchmarks.md between the profile markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section

NETTOP = [sys.executable, "-m", "nettop_ui"]
GETPPID_C = r"""
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return 0;
}
"""
# A unit with some work for the compiler: a few functions the optimiser has to chew on.
UNIT_C = r"""
#include <stdio.h>
#include <string.h>
static int table_%(i)d[256];
int work_%(i)d(const char *s) {
    int h = %(i)d;
    for (size_t k = 0; k < strlen(s); k++) h = h * 31 + s[k] + table_%(i)d[(unsigned char)s[k]];
    return h;
}
double mean_%(i)d(const double *v, int n) {
    double t = 0; for (int k = 0; k < n; k++) t += v[k] * (k %% 7); return n ? t / n : 0;
}
void sort_%(i)d(int *a, int n) {
    for (int x = 1; x < n; x++) { int y = a[x], z = x - 1;
        while (z >= 0 && a[z] > y) { a[z + 1] = a[z]; z--; } a[z + 1] = y; }
}
"""
TIMER = r"""
import resource, subprocess, sys
subprocess.run(sys.argv[2:], check=True, stdout=subprocess.DEVNULL)
used = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(str(used.ru_utime + used.ru_stime))
"""
MODES = ("off", "tree", "all")


def build_workloads(where: Path, calls: int, files: int) -> dict[str, list[str]]:
    getppid = where / "getppid"
    src = where / "getppid.c"
    src.write_text(GETPPID_C)
    subprocess.run(["cc", "-O2", "-o", str(getppid), str(src)], check=True)
    project = where / "build"
    project.mkdir()
    for i in range(files):
        (project / f"u{i}.c").write_text(UNIT_C % {"i": i})
    objects = " ".join(f"u{i}.o" for i in range(files))
    (project / "Makefile").write_text(
        f"all: {objects}\n%.o: %.c\n\tcc -O2 -c $< -o $@\nclean:\n\trm -f *.o\n"
    )
    make = ["sh", "-c", f"make -s -C {project} clean && make -s -j2 -C {project}"]
    return {f"{calls:,} getppid calls": [str(getppid), str(calls)], "make -j2": make}


def timed(mode: str, workload: list[str], where: Path) -> float:
    """CPU seconds (user + system) the workload used, under `mode`."""
    out = where / "elapsed"
    timer = [sys.executable, "-c", TIMER, str(out), *workload]
    if mode == "all":
        beside = subprocess.Popen(
            [*NETTOP, "--json", "--profile", "--backend", "psutil", "--output", os.devnull],
            stderr=subprocess.PIPE,
        )
        time.sleep(3)  # the program compiled and attached
        try:
            subprocess.run(timer, check=True)
        finally:
            beside.terminate()
            beside.wait(timeout=30)
    else:
        profile = ["--profile"] if mode == "tree" else []
        run = [*NETTOP, "run", "--backend", "psutil", *profile, "--output", os.devnull]
        subprocess.run([*run, "--", *timer], check=True, stderr=subprocess.DEVNULL)
    return float(out.read_text())


def measure(
    workloads: dict[str, list[str]], repeat: int, where: Path
) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {w: {m: [] for m in MODES} for w in workloads}
    for _ in range(repeat):
        for name, cmd in workloads.items():
            for mode in MODES:
                times[name][mode].append(timed(mode, cmd, where))
    return times


def report(times: dict[str, dict[str, list[float]]], calls: int, repeat: int) -> str:
    medians = {w: {m: statistics.median(ts) for m, ts in by.items()} for w, by in times.items()}
    lines = [
        f"{datetime.date.today()}, Linux {platform.release()}, {os.cpu_count()} CPUs "
        f"(shared), median of {repeat} runs per mode, interleaved. The workload's own CPU time "
        "(user + system, from getrusage: BPF programs run in its system time; nettop-ui's "
        "is not counted). off: `run` without `--profile`; tree: `run "
        "--profile` (the kernel counts the watched tree); all: `--json --profile` beside "
        "the workload (the kernel counts every process, with detail).",
        "",
        "| workload | off | off's spread | tree | slowdown | all | slowdown |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in medians.items():
        tree, every = m["tree"] / m["off"] - 1, m["all"] / m["off"] - 1
        off = times[name]["off"]
        spread = (max(off) - min(off)) / m["off"]  # the noise a slowdown must stand out of
        lines.append(
            f"| {name} | {m['off']:.2f} s | {spread:.1%} | {m['tree']:.2f} s | {tree:+.1%} "
            f"| {m['all']:.2f} s | {every:+.1%} |"
        )
    syscall = next(iter(medians.values()))  # the getppid workload
    tree_ns = (syscall["tree"] - syscall["off"]) / calls * 1e9
    all_ns = (syscall["all"] - syscall["off"]) / calls * 1e9
    base_ns = syscall["off"] / calls * 1e9
    lines += [
        "",
        f"Per syscall: {base_ns:.0f} ns without; the raw_syscalls:sys_enter program adds "
        f"{tree_ns:.0f} ns (tree) and {all_ns:.0f} ns (all). Goal: under 5% on the "
        'build-like workload. "off\'s spread" is (max - min) / median of the runs without '
        "profiling: a slowdown inside it is noise.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/profile needs root (--profile loads eBPF programs)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        workloads = build_workloads(where, args.calls, args.files)
        times = measure(workloads, args.repeat, where)
    body = report(times, args.calls, args.repeat)
    print(body)
    if not args.no_write:
        write_section("profile", body, "--profile overhead (bench/profile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
