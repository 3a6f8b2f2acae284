"""`--profile`: off-CPU time and syscall counts from the kernel, through the real CLI.

Each workload measures its own truth: the threads time their own blocking calls
(sleeps, a read on a pipe that a child feeds after a delay) with the monotonic clock,
and the syscall workload makes a number of getppid calls it draws at random. The
recording of `nettop-ui run --profile` must agree: off-CPU time per thread within 5%,
the getppid count exactly. Without the privileges, `--profile` is one line on stderr
and the rest of the run goes on.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from backends.ebpf_profile import missing
from nettop_ui import profile
from nettop_ui.api import execute_with_monitoring
from nettop_ui.summary import read_recording
from nettop_ui.tui import MonitorSource, NettopApp
from nettop_ui.tui.replay import ReplayApp, ReplaySource
from tests.netenv import require, require_root, within
from tests.test_privilege import SITE, nobody_cmd
from tests.tui_fixtures import (
    ScriptedBackend,
    pid_order,
    screen_lines,
    spawn_named,
    steady,
    table_order,
    wait_for,
)

OFFCPU_WORKLOAD = r"""
import json, os, sys, threading, time

results = {}
lock = threading.Lock()

def timed(name, block):
    start = time.monotonic()
    block()
    with lock:
        results[name] = (threading.get_native_id(), time.monotonic() - start)

# The feeder is forked and reaped by the main thread: the reading thread does nothing
# but its timed read, so its off-CPU time is that read's (a fork or a wait of its own
# would add blocked time outside the window timed).
r, w = os.pipe()
if os.fork() == 0:  # the feeder: writes after a delay, then leaves
    time.sleep(0.6)
    os.write(w, b"x")
    os._exit(0)
os.close(w)

threads = [threading.Thread(target=timed, args=(f"sleep{s}", lambda s=s: time.sleep(s)))
           for s in (0.3, 0.5, 0.8)]
threads.append(threading.Thread(target=timed, args=("pipe", lambda: os.read(r, 1))))
for t in threads:
    t.start()
for t in threads:
    t.join()
os.wait()
json.dump(results, open(sys.argv[1], "w"))
"""

SYSCALL_WORKLOAD = r"""
import os, sys
for _ in range(int(sys.argv[1])):
    os.getppid()
"""


def require_profiling() -> None:
    require_root()
    problem = missing()
    require(problem is None, f"--profile cannot run: {problem}")


def run_profiled(
    tmp_path: Path, script: str, *args: str, options: tuple[str, ...] = ("--json",)
) -> tuple[list[dict[str, Any]], str]:
    """`nettop-ui run --profile OPTIONS -- python -c SCRIPT ARGS`: the records on stdout
    (with --json), stderr."""
    cmd = [sys.executable, "-m", "nettop_ui", "run", "--profile", *options, "--interval", "0.3"]
    res = subprocess.run(
        [*cmd, "--", sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    return [
        json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")
    ], res.stderr


def last_tree_ebpf(records: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [r for r in records if r["type"] == "sample"]
    assert samples, records
    ebpf = samples[-1]["tree"]["ebpf"]
    assert ebpf is not None, samples[-1]
    return dict(ebpf)


def test_offcpu_time_of_sleeping_threads_and_a_pipe_read(tmp_path: Path) -> None:
    require_profiling()
    truth_file = tmp_path / "truth.json"
    records, _ = run_profiled(tmp_path, OFFCPU_WORKLOAD, str(truth_file))
    truth = json.loads(truth_file.read_text())
    offcpu = last_tree_ebpf(records)["offcpu"]
    by_tid = {t["tid"]: t["time_ms"] / 1000 for t in offcpu["top_blocking_threads"]}
    for name, (tid, blocked_s) in truth.items():
        assert tid in by_tid, (name, tid, offcpu)
        assert within(by_tid[tid], blocked_s, 0.05), (name, by_tid[tid], blocked_s)
    assert offcpu["max_time_ns"] >= max(s for _, s in truth.values()) * 1e9 * 0.95
    assert offcpu["total_time_ns"] >= sum(s for _, s in truth.values()) * 1e9 * 0.95
    assert offcpu["total_events"] >= len(truth)


def test_syscall_count_is_exact(tmp_path: Path) -> None:
    require_profiling()
    calls = random.randrange(20_000, 60_000)
    records, _ = run_profiled(tmp_path, SYSCALL_WORKLOAD, str(calls))
    syscalls = last_tree_ebpf(records)["syscalls"]
    counts = {s["name"]: s["count"] for s in syscalls["top_syscalls"]}
    assert counts.get("getppid") == calls, syscalls
    assert syscalls["by_category"]["other"] >= calls  # denet files getppid under other
    assert syscalls["total"] == sum(syscalls["by_category"].values())
    assert set(syscalls["by_category"]) == set(profile.CATEGORY_NAMES)


def test_bound_by_cpu_and_sleep(tmp_path: Path) -> None:
    require_profiling()
    spin, _ = run_profiled(tmp_path, "import time\nt = time.time()\nwhile time.time() < t+1: pass")
    assert last_tree_ebpf(spin)["bound_by"] == "cpu"
    nap, _ = run_profiled(tmp_path, "import time\ntime.sleep(1)")
    assert last_tree_ebpf(nap)["bound_by"] == "sleep"


def test_without_privileges_one_line_and_the_run_goes_on() -> None:
    require_root()
    require(SITE is not None, "needs the venv (./install.sh --dev)")
    args = ["run", "--profile", "--json", "--backend", "psutil", "--", "true"]
    res = subprocess.run(
        nobody_cmd(Path(sys.executable).resolve(), *args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [
        "nettop-ui: warning: --profile needs root or CAP_BPF+CAP_PERFMON; profiling is off"
    ]
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert records[-1]["type"] == "end" and records[-1]["exit_code"] == 0
    samples = [r for r in records if r["type"] == "sample"]
    assert samples and all("ebpf" not in r["tree"] for r in samples)


def test_python_api_profile() -> None:
    require_profiling()
    calls = random.randrange(5_000, 20_000)
    code, samples = execute_with_monitoring(
        [sys.executable, "-c", SYSCALL_WORKLOAD, str(calls)], interval_s=0.3, profile=True
    )
    assert code == 0
    ebpf = samples[-1]["tree"]["ebpf"]
    counts = {s["name"]: s["count"] for s in ebpf["syscalls"]["top_syscalls"]}
    assert counts.get("getppid") == calls, ebpf
    assert all("ebpf" in p for p in samples[-1]["processes"])
    assert profile.active() is None  # the API's profiler is gone with its monitor


def test_denet_format_carries_the_profile_where_denet_does(tmp_path: Path) -> None:
    require_profiling()
    try:
        import denet  # a dev dependency: pip install -e '.[dev]'
    except ImportError:
        denet = None
    require(denet is not None, "needs denet (pip install 'denet[report]')")
    calls = random.randrange(5_000, 20_000)
    out = tmp_path / "run.denet.jsonl"
    run_profiled(
        tmp_path, SYSCALL_WORKLOAD, str(calls), options=("--format", "denet", "--output", str(out))
    )
    trees = [m for m in denet.load_metrics(str(out)) if m.get("kind") == "tree"]
    ebpf = trees[-1]["aggregated"]["ebpf"]
    counts = {s["name"]: s["count"] for s in ebpf["syscalls"]["top_syscalls"]}
    assert counts.get("getppid") == calls, ebpf
    assert set(ebpf["offcpu"]) >= {"total_time_ns", "total_events", "avg_time_ns", "max_time_ns"}
    parent = trees[-1]["parent"] or trees[-2]["parent"]
    assert parent["ebpf"]["syscalls"]["total"] >= calls


def test_summary_reports_the_totals(tmp_path: Path) -> None:
    require_profiling()
    calls = random.randrange(5_000, 20_000)
    out = tmp_path / "run.jsonl"
    run_profiled(tmp_path, SYSCALL_WORKLOAD, str(calls), options=("--output", str(out)))
    nettop = [sys.executable, "-m", "nettop_ui", "summary"]
    res = subprocess.run([*nettop, "--json", str(out)], capture_output=True, text=True, timeout=60)
    ebpf = json.loads(res.stdout)["ebpf"]
    assert {t["name"]: t["count"] for t in ebpf["top_syscalls"]}["getppid"] == calls
    assert ebpf["syscalls"] == sum(ebpf["syscalls_by_category"].values())
    text = subprocess.run([*nettop, str(out)], capture_output=True, text=True, timeout=60).stdout
    assert f"getppid {calls}" in text and f"syscalls:     {ebpf['syscalls']} " in text

    lines = out.read_text().splitlines()
    spoiled = [json.loads(line) for line in lines]
    sample = [r for r in spoiled if r["type"] == "sample"][-1]
    sample["tree"]["ebpf"]["syscalls"]["top_syscalls"] = [{"name": "x", "count": -1}]
    out.write_text("\n".join(json.dumps(r) for r in spoiled) + "\n")
    res = subprocess.run([*nettop, str(out)], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in res.stderr
    assert "tree.ebpf is not a profile" in res.stderr, res.stderr


async def test_tui_columns_and_drill_down_from_the_kernel() -> None:
    """The TUI with a real profiler: `O` shows a sleeping child's OFF-CPU% near 100
    (one thread blocked all along) and its SYSC/s; its drill-down gets detail from the
    kernel (the drill-down asks for it) and lists its thread as the one blocking."""
    require_profiling()
    child = spawn_named("ntu-sleeper")
    assert profile.enable() is None
    try:
        # Blocked since before the program was loaded, the child has no counts (unknown)
        # until it wakes: a line wakes it, and it blocks on stdin again, counted now.
        assert child.proc.stdin is not None
        child.proc.stdin.write("\n")
        child.proc.stdin.flush()
        backend = ScriptedBackend(steady({child.pid: (1, 1)}, 0.3))
        app = NettopApp(MonitorSource(backend, 0.3), host="test")
        async with app.run_test(size=(220, 50)) as pilot:
            await wait_for(pilot, lambda: child.pid in pid_order(app, [child.pid]), "the child")
            await pilot.press("O")
            key = next(k for k in table_order(app) if k.startswith(f"{child.pid}:"))

            def near_100() -> bool:
                value = app.main.table.get_cell(key, "offcpu").value
                return value is not None and 90 <= value <= 101

            await wait_for(pilot, near_100, "the sleeper's OFF-CPU% near 100")
            assert app.main.table.get_cell(key, "sysc").value == 0
            assert app.main.table.select_key(key)
            await pilot.press("enter")

            def lists_its_thread() -> bool:
                text = "\n".join(screen_lines(app))
                return f"blocking threads  {child.pid} " in text

            await wait_for(pilot, lists_its_thread, "the sleeper's thread as the blocking one")
    finally:
        profile.disable()
        child.stop()


def test_categories_are_denets() -> None:
    """denet 0.10.3's grouping (its own tests' cases, its x86_64 numbers by name), from
    this architecture's table: every syscall named there falls in exactly one."""
    cases = {
        "file_io": ("read", "write", "close", "openat", "fcntl", "flock", "fsync", "getdents"),
        "memory": ("mmap", "munmap", "brk"),
        "process": ("clone", "fork", "execve", "exit", "exit_group", "clone3"),
        "network": ("socket", "connect", "sendto", "recvfrom", "sendmsg", "accept4"),
        "ipc": ("pipe", "pipe2", "futex", "shmget", "semop", "msgsnd"),
        "signal": ("rt_sigaction", "rt_sigprocmask", "kill", "tkill", "tgkill"),
        "time": ("nanosleep", "clock_gettime", "clock_nanosleep"),
        "system": ("uname",),
        "other": ("getppid", "no_such_call"),
    }
    for cat, names in cases.items():
        for name in names:
            assert profile.category(name) == cat, name
    table = profile.syscall_table()
    assert table, "no syscall table for this architecture"
    named = set(table.values())
    assert sum(len(names & named) for names in profile.CATEGORIES.values()) == len(
        set().union(*profile.CATEGORIES.values()) & named
    )


def test_attach_counts_from_attaching(tmp_path: Path) -> None:
    """`attach --profile` to a process already running: it is counted from then on (a
    number of getppid calls it makes once told, exactly)."""
    require_profiling()
    calls = random.randrange(5_000, 20_000)
    script = "import os, sys\nn = int(sys.stdin.readline())\nfor _ in range(n):\n    os.getppid()"
    target = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, text=True)
    cmd = [sys.executable, "-m", "nettop_ui", "attach", str(target.pid), "--profile", "--json"]
    watcher = subprocess.Popen(
        [*cmd, "--interval", "0.3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert watcher.stdout is not None and target.stdin is not None
        watcher.stdout.readline()  # meta
        watcher.stdout.readline()  # a first sample: counting
        target.stdin.write(f"{calls}\n")
        target.stdin.flush()
        target.wait(timeout=60)
        out, err = watcher.communicate(timeout=60)
    finally:
        target.kill()
        watcher.kill()
    samples = [json.loads(line) for line in out.splitlines() if '"sample"' in line]
    syscalls = samples[-1]["tree"]["ebpf"]["syscalls"]
    assert {s["name"]: s["count"] for s in syscalls["top_syscalls"]}["getppid"] == calls, err


async def test_replay_shows_the_recorded_profile(tmp_path: Path) -> None:
    """`replay` of a `run --profile` recording: the drill-down's profile section, as
    recorded (the exact getppid count among the top syscalls)."""
    require_profiling()
    calls = random.randrange(5_000, 20_000)
    out = tmp_path / "run.jsonl"
    run_profiled(tmp_path, SYSCALL_WORKLOAD, str(calls), options=("--output", str(out)))
    records, problem = read_recording(str(out))
    assert problem is None
    pid = next(r for r in records if r["type"] == "meta")["pid"]
    app = ReplayApp(ReplaySource(records, str(out), None), host="test")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        await pilot.press("end")
        await pilot.pause()
        key = next(k for k in table_order(app) if k.startswith(f"{pid}:"))
        assert app.main.table.select_key(key)
        await pilot.press("enter")

        def shows_the_count() -> bool:
            return f"getppid {calls}" in "\n".join(screen_lines(app))

        await wait_for(pilot, shows_the_count, "the recorded getppid count")
