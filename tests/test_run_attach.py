"""`nettop-ui run`, `attach` and `summary` as a user runs them, on real process trees.

The workloads (tests/treeload.py, tests/trafficgen.py) burn known CPU, allocate known
memory, write known disk bytes and send known network bytes; the recordings must show
them. Network bytes go only to the servers of tests/netenv.py.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from backends.ebpf import EbpfBackend
from nettop_ui import jobs
from nettop_ui.core import IntervalSchedule
from nettop_ui.summary import summarize
from tests.netenv import GEN, Network, require, require_root, within
from tests.strays import kill_strays, marked_cmd, strays

HERE = Path(__file__).parent
LOAD = str(HERE / "treeload.py")
MB = 1024 * 1024


def nettop(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettop_ui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def samples(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recs if r["type"] == "sample"]


def peak(recs: list[dict[str, Any]], key: str) -> float:
    return max(s["tree"][key] or 0 for s in samples(recs))


def check_shape(recs: list[dict[str, Any]]) -> None:
    """meta first, samples, end last; every sample lists only the tree."""
    assert recs[0]["type"] == "meta" and recs[-1]["type"] == "end"
    assert recs[-2]["type"] == "sample"  # the final sample, taken as CMD exited
    assert all(r["type"] in ("sample", "event") for r in recs[1:-1])
    root = recs[0]["pid"]
    for s in samples(recs):
        pids = {p["pid"] for p in s["processes"]}
        assert not pids or root in pids
        for p in s["processes"]:
            assert p["pid"] == root or p["ppid"] in pids or p["exited"]


def test_run_tree_cpu_memory_disk_network(net: Network, tmp_path: Path) -> None:
    """Two processes: CPU on two cores, 200 MB, 5 MB fsynced, 3 MB sent, all in the tree."""
    require_root()
    out, data = tmp_path / "run.jsonl", tmp_path / "data.bin"
    load = [sys.executable, LOAD, "--cpu", "2.5", "--mem", "200", "--hold", "1"]
    load += ["--disk", str(5 * MB), "--path", str(data), "--send", str(3 * MB)]
    load += ["--to", net.ns_v4, "--port", str(net.ports["tcp4"])]
    res = nettop(
        "run", "--backend", "ebpf", "--interval", "0.25", "--output", str(out), "--", *load
    )
    assert res.returncode == 0, res.stderr
    told = json.loads(res.stdout.splitlines()[-1])  # CMD's own stdout, passed through
    recs = records(out)
    check_shape(recs)
    meta = recs[0]
    assert meta["mode"] == "run" and meta["backend"] == "ebpf" and meta["children"] is True
    assert meta["pid"] == told["pid"] and meta["cmdline"] == load
    assert meta["executable"] == os.path.realpath(sys.executable) or meta["executable"]
    assert recs[-1]["exit_code"] == 0 and recs[-1]["reason"] == "exited"
    cpus = [(s["tree"]["cpu_percent"] or 0, s["interval_s"]) for s in samples(recs)]
    seen_cpu_s = sum(c * dt for c, dt in cpus) / 100
    assert within(seen_cpu_s, told["cpu_s"], 0.2), (seen_cpu_s, told["cpu_s"], cpus)
    if told["cpu_s"] > 1.6 * 2.5:  # the machine gave it two cores: the peak shows two
        assert peak(recs, "cpu_percent") > 120, cpus
    rss = peak(recs, "rss_bytes")
    assert 200 * MB <= rss <= 330 * MB, rss / MB
    final = samples(recs)[-1]
    assert final["tree"]["write_bytes"] >= 5 * MB
    assert final["tree"]["write_bytes"] <= 5 * MB + 2 * MB  # not counted twice
    assert within(final["tree"]["sent_bytes"], told["sent"], 0.01), (final["tree"], told)
    assert peak(recs, "processes") == 2
    kid = [p for p in final["processes"] if p["pid"] == told["child"]]
    assert kid and kid[0]["exited"] and kid[0]["ppid"] == told["pid"]
    assert isinstance(final["interfaces_sent_bytes"], int)
    for key in ("cpu_percent", "rss_bytes", "vms_bytes", "read_bytes", "write_bytes", "threads"):
        assert key in final["processes"][0]
    assert "child_count" in final["processes"][0] and "gpu_memory_bytes" in final["processes"][0]
    # The summary of the same recording says the same.
    res = nettop("summary", "--json", str(out))
    assert res.returncode == 0 and res.stderr == ""
    summary = json.loads(res.stdout)
    assert summary["exit_code"] == 0 and summary["complete"] is True
    assert summary["cpu_percent_peak"] == peak(recs, "cpu_percent")
    assert summary["rss_bytes_peak"] == rss
    assert summary["write_bytes"] >= 5 * MB and within(summary["sent_bytes"], told["sent"], 0.01)
    assert summary["duration_s"] >= 2.5 and summary["cpu_percent_mean"] > 0


def test_run_counts_grandchildren_forked_and_gone_between_ticks(
    net: Network, tmp_path: Path
) -> None:
    """30 grandchildren, each burning CPU and sending 64 KiB, most never alive at a tick
    (1 s apart): their bytes (the proc connector saw their forks) and their CPU (in
    their parent's cutime once reaped) are the tree's all the same."""
    require_root()
    out = tmp_path / "run.jsonl"
    load = [sys.executable, LOAD, "--flash", "30", "--flash-cpu", "0.04"]
    load += ["--flash-send", str(64 * 1024), "--to", net.ns_v4, "--port", str(net.ports["tcp4"])]
    res = nettop("run", "--backend", "ebpf", "--interval", "1", "--output", str(out), "--", *load)
    assert res.returncode == 0, res.stderr
    assert "reading all" not in res.stderr  # the proc connector, not the fallback
    told = json.loads(res.stdout.splitlines()[-1])
    recs = records(out)
    check_shape(recs)
    final = samples(recs)[-1]
    unseen = [p for p in final["processes"] if p["start_time"] is None]
    assert len(unseen) >= 10, final["processes"]  # most were never read alive
    assert all(p["ppid"] == told["child"] and p["exited"] for p in unseen)
    assert final["tree"]["sent_bytes"] == told["sent"], (final["tree"], told)
    cpus = [(s["tree"]["cpu_percent"] or 0, s["interval_s"]) for s in samples(recs)]
    seen_cpu_s = sum(c * dt for c, dt in cpus) / 100
    assert within(seen_cpu_s, told["cpu_s"], 0.2), (seen_cpu_s, told["cpu_s"], cpus)


def test_run_without_the_proc_connector_scans_and_says_so_once(tmp_path: Path) -> None:
    """In a network namespace of its own the kernel refuses the proc connector: the tree's
    new processes are found by reading every process, as before, said once on stderr."""
    require_root()
    require(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    out = tmp_path / "run.jsonl"
    cmd = ["unshare", "-n", sys.executable, "-m", "nettop_ui", "run", "--backend", "psutil"]
    cmd += ["--interval", "0.2", "--output", str(out), "--", sys.executable, LOAD, "--cpu", "1"]
    cmd += ["--mem", "10", "--hold", "3"]  # the child stays a while: slow ticks see it too
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=HERE.parent)
    assert res.returncode == 0, res.stderr
    said = [line for line in res.stderr.splitlines() if line.startswith("nettop-ui:")]
    assert said == ["nettop-ui: proc connector refused (Connection refused): finding new "
                    "processes by reading all"], res.stderr  # fmt: skip
    told = json.loads(res.stdout.splitlines()[-1])
    recs = records(out)
    check_shape(recs)
    assert peak(recs, "processes") == 2
    cpus = [(s["tree"]["cpu_percent"] or 0, s["interval_s"]) for s in samples(recs)]
    seen_cpu_s = sum(c * dt for c, dt in cpus) / 100
    assert within(seen_cpu_s, told["cpu_s"], 0.2), (seen_cpu_s, told["cpu_s"], cpus)


# Opens four TCP sockets after 0.5 s (a listener, both ends of a loopback connection and
# one neither bound nor connected), closes two of them 1 s later, exits 1 s after that.
SOCKETS_HELD = """
import socket, time
time.sleep(0.5)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
cli = socket.create_connection(srv.getsockname()); acc, _ = srv.accept()
loose = socket.socket()
time.sleep(1)
cli.close(); loose.close()
time.sleep(1)
"""


def test_run_psutil_counts_the_trees_own_sockets_every_tick(tmp_path: Path) -> None:
    """With psutil, `run` counts the open sockets of the tree's processes from their own
    fds every tick, not every process's on the machine from the socket tables: the
    socket no table lists counts too, and the counts follow the command's opens and
    closes."""
    out = tmp_path / "run.jsonl"
    cmd = ["run", "--backend", "psutil", "--interval", "0.1", "--output", str(out)]
    res = nettop(*cmd, "--", sys.executable, "-c", SOCKETS_HELD)
    assert res.returncode == 0, res.stderr
    recs = records(out)
    check_shape(recs)
    root = recs[0]["pid"]
    counts = [
        p["connection_count"]
        for s in samples(recs)
        for p in s["processes"]
        if p["pid"] == root and not p["exited"]
    ]
    seen = [c for i, c in enumerate(counts) if i == 0 or c != counts[i - 1]]
    assert seen in ([0, 4, 2], [0, 4, 2, 0]), counts  # 0 again: the exit's final sample


def test_held_start_counts_the_first_bytes(net: Network, tmp_path: Path) -> None:
    """CMD sends as soon as Python is up and exits: nothing is lost to the BPF compile."""
    require_root()
    out = tmp_path / "held.jsonl"
    port = str(net.ports["tcp4"])
    cmd = [sys.executable, GEN, "tcp", "--name", "ntu-held", "--to", net.ns_v4, "--port", port]
    cmd += ["--up", "400000", "--down", "0", "--conns", "1"]
    res = nettop("run", "--backend", "ebpf", "--interval", "0.5", "--output", str(out), "--", *cmd)
    assert res.returncode == 0, res.stderr
    told = json.loads(res.stdout.splitlines()[-1])
    recs = records(out)
    check_shape(recs)
    final = samples(recs)[-1]
    assert within(final["tree"]["sent_bytes"], told["sent"], 0.01), (final["tree"], told)
    root = next(p for p in final["processes"] if p["pid"] == told["pid"])
    assert root["name"] == "ntu-held"  # the trampoline became CMD under the same pid


@pytest.mark.parametrize(
    ("script", "code"), [("exit 7", 7), ("kill -9 $$", 137), ("kill -TERM $$", 143), ("", 0)]
)
def test_exit_code_propagates(tmp_path: Path, script: str, code: int) -> None:
    out = tmp_path / "rc.jsonl"
    res = nettop("run", "--backend", "psutil", "--interval", "0.2", "--output", str(out),
                 "--", "sh", "-c", f"sleep 0.3; {script}")  # fmt: skip
    assert res.returncode == code, res.stderr
    recs = records(out)
    check_shape(recs)
    assert recs[-1]["exit_code"] == code


def test_command_not_found_and_no_command() -> None:
    res = nettop("run", "--backend", "psutil", "--", "/nonexistent/ntu-nothing")
    assert res.returncode == 127
    assert res.stderr.count("\n") == 1 and "not found" in res.stderr
    res = nettop("run", "--backend", "psutil")
    assert res.returncode == 2 and res.stderr.count("\n") == 1


def signalled_run(
    out: Path, sig: signal.Signals, *cmd: str, settle_s: float = 0
) -> tuple[int, str]:
    """`nettop-ui run --output OUT -- CMD`; once CMD prints "ready" (and `settle_s`
    later), send nettop-ui `sig`. Its exit status and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nettop_ui", "run", "--backend", "psutil", "--interval", "0.2",
         "--output", str(out), "--", *cmd],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(settle_s)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def test_sigint_reaches_cmd_and_the_recording_ends_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "int.jsonl"
    child = "import signal, sys, time\n"
    child += "signal.signal(signal.SIGINT, lambda *a: sys.exit(3))\n"
    child += "print('ready', flush=True)\ntime.sleep(60)\n"
    code, err = signalled_run(out, signal.SIGINT, sys.executable, "-c", child, settle_s=0.5)
    assert code == 3, err
    assert "Traceback" not in err
    recs = records(out)  # every line is whole JSON
    check_shape(recs)
    assert recs[-1]["exit_code"] == 3 and recs[-1]["reason"] == "exited"
    assert len(samples(recs)) >= 3


def test_sigterm_reaches_cmd(tmp_path: Path) -> None:
    out = tmp_path / "term.jsonl"
    code, err = signalled_run(out, signal.SIGTERM, "sh", "-c", "echo ready; exec sleep 60")
    assert code == 143, err
    check_shape(records(out))


def test_json_to_stdout_keeps_cmd_output_out_of_the_stream() -> None:
    res = nettop("run", "--json", "--backend", "psutil", "--interval", "0.2",
                 "--", "sh", "-c", "echo not-json; sleep 0.5")  # fmt: skip
    assert res.returncode == 0, res.stderr
    recs = [json.loads(line) for line in res.stdout.splitlines()]
    check_shape(recs)
    assert "not-json" in res.stderr
    quiet = nettop("run", "--json", "--quiet", "--backend", "psutil",
                   "--", "sh", "-c", "echo out; echo err >&2")  # fmt: skip
    assert quiet.returncode == 0 and "out" not in quiet.stderr and "err" not in quiet.stderr


def test_no_children_tracks_only_the_top_process(tmp_path: Path) -> None:
    out = tmp_path / "top.jsonl"
    res = nettop("run", "--no-children", "--backend", "psutil", "--interval", "0.2",
                 "--output", str(out), "--", sys.executable, LOAD, "--cpu", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr
    recs = records(out)
    assert recs[0]["children"] is False
    assert all(len(s["processes"]) == 1 for s in samples(recs))
    assert peak(recs, "cpu_percent") < 150  # one core burning, not two


def test_attach_follows_a_running_tree_until_it_exits(tmp_path: Path) -> None:
    out = tmp_path / "attach.jsonl"
    script = "import subprocess, sys, time\nsys.stdin.readline()\n"
    script += f"subprocess.run([sys.executable, {LOAD!r}, '--cpu', '2'])\n"
    target = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, text=True)
    try:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "nettop_ui", "attach", str(target.pid), "--backend",
             "psutil", "--interval", "0.2", "--output", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not (out.exists() and '"sample"' in out.read_text()):
            assert time.monotonic() < deadline and watcher.poll() is None
            time.sleep(0.1)
        assert target.stdin is not None
        target.stdin.write("go\n")
        target.stdin.close()
        _, err = watcher.communicate(timeout=60)
    finally:
        target.kill()
        target.wait()
    assert watcher.returncode == 0, err
    recs = records(out)
    assert recs[0]["mode"] == "attach" and recs[0]["pid"] == target.pid
    assert recs[-1]["reason"] == "exited" and recs[-1]["exit_code"] is None
    assert peak(recs, "processes") == 3  # the script, treeload, treeload --child
    assert peak(recs, "cpu_percent") > 50


def test_attach_duration_and_missing_pid(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        out = tmp_path / "d.jsonl"
        start = time.monotonic()
        res = nettop("attach", str(sleeper.pid), "--duration", "1", "--interval", "0.2",
                     "--backend", "psutil", "--output", str(out))  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert time.monotonic() - start < 20
        recs = records(out)
        assert recs[-1]["reason"] == "duration" and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    res = nettop("attach", str(sleeper.pid), "--backend", "psutil")
    assert res.returncode == 1
    assert res.stderr == f"nettop-ui: error: no process with PID {sleeper.pid}\n"


def test_adaptive_interval_ramps_up(tmp_path: Path) -> None:
    schedule = IntervalSchedule(0.1, 1.0)
    assert schedule(0.5) == 0.1 and schedule(5.5) == pytest.approx(0.55)
    assert schedule(10) == 1.0 and schedule(100) == 1.0
    out = tmp_path / "adaptive.jsonl"
    res = nettop("run", "--backend", "psutil", "--interval", "0.1", "--max-interval", "1.5",
                 "--output", str(out), "--", "sleep", "12")  # fmt: skip
    assert res.returncode == 0, res.stderr
    recs = records(out)
    assert recs[0]["max_interval_s"] == 1.5
    gaps = [s["interval_s"] for s in samples(recs)[1:-1]]
    # The first second at the base rate (plus the time a sample takes on a busy
    # machine), the last ones at the maximum.
    assert min(gaps[:3]) < 0.5 and 1.4 <= gaps[-1] <= 2.0, gaps
    assert gaps == sorted(gaps) or max(gaps[:3]) < min(gaps[-3:]), gaps


def test_summary_of_truncated_garbage_and_missing_files(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    res = nettop("run", "--backend", "psutil", "--interval", "0.2", "--output", str(out),
                 "--", sys.executable, LOAD, "--cpu", "0.6", "--exit", "4")  # fmt: skip
    assert res.returncode == 4, res.stderr
    full = nettop("summary", str(out))
    assert full.returncode == 0 and full.stderr == ""
    assert "exit code:    4" in full.stdout and "peak" in full.stdout
    lines = out.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    res = nettop("summary", "--json", str(cut))
    assert res.returncode == 0
    assert res.stderr.count("\n") == 1 and "stopped at line 4" in res.stderr
    summary = json.loads(res.stdout)
    assert summary["samples"] == 2 and summary["complete"] is False
    assert summary["exit_code"] is None and summary["duration_s"] is not None
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xffnot json at all\n{}\n")
    res = nettop("summary", str(garbage))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "line 1" in res.stderr
    res = nettop("summary", str(tmp_path / "missing.jsonl"))
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr and "No such file" in res.stderr


# Never leave a process stopped, never lie about the end (issue #11).


def nettop_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nettop_ui", *args]


@pytest.mark.parametrize("stdout", ["closed pipe", "/dev/full"])
def test_run_json_that_cannot_write_never_leaves_cmd_stopped(tmp_path: Path, stdout: str) -> None:
    """`run --json -- CMD | true` and `> /dev/full`: CMD never runs and nothing is left."""
    marker = tmp_path / "ran"
    args = nettop_cmd("run", "--json", "--quiet", "--backend", "psutil", "--", *marked_cmd(marker))
    if stdout == "/dev/full":
        with open("/dev/full", "w") as full:
            res = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
        code, err = res.returncode, res.stderr
    else:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert kill_strays(marker) == []
    assert not marker.exists()
    assert code == 125, err
    assert err.count("\n") == 1 and "CMD was not started" in err, err
    assert "disk full" in err if stdout == "/dev/full" else "stdout" in err


def test_run_output_on_a_full_disk_writes_whole_lines_and_says_so(tmp_path: Path) -> None:
    """A 64 KiB tmpfs, nearly full: one line on stderr, whole JSON lines, CMD's fate told."""
    require_root()
    disk = tmp_path / "small"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    marker = tmp_path / "ran"
    try:
        st = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 12 * 1024))
        out = disk / "run.jsonl"
        res = nettop("run", "--quiet", "--backend", "psutil", "--interval", "0.05",
                     "--output", str(out), "--", *marked_cmd(marker), timeout=60)  # fmt: skip
        left = kill_strays(marker)
        raw = out.read_bytes()
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert "disk full" in res.stderr
    assert len(left) == 1 and left[0][1] != psutil.STATUS_STOPPED and marker.exists()
    assert f"keeps running as PID {left[0][0]}" in res.stderr, res.stderr
    assert raw.endswith(b"\n")
    recs = [json.loads(line) for line in raw.splitlines()]
    assert recs[0]["type"] == "meta" and len(samples(recs)) >= 2


def test_sigkill_to_nettop_ui_while_cmd_is_held_never_leaves_it_stopped(tmp_path: Path) -> None:
    """nettop-ui dies before it releases CMD: CMD exits without running, never stays stopped."""
    marker = tmp_path / "ran"
    for _ in range(30):  # until nettop-ui is caught before it released CMD
        proc = subprocess.Popen(
            nettop_cmd("run", "--quiet", "--backend", "psutil", "--output",
                       str(tmp_path / "k.jsonl"), "--", *marked_cmd(marker)),
        )  # fmt: skip
        me, kids = psutil.Process(proc.pid), list[psutil.Process]()
        while proc.poll() is None and not kids:
            kids = me.children()
        proc.send_signal(signal.SIGSTOP)  # from now on it can release nothing
        time.sleep(1)  # a released CMD has become CMD by then
        try:
            held = kids[0].cmdline() != marked_cmd(marker)
        finally:
            proc.kill()
            proc.wait()
        if held:
            break
        kill_strays(marker)
        marker.unlink(missing_ok=True)
    else:
        pytest.fail("never caught nettop-ui before it released CMD")
    deadline = time.monotonic() + 10
    while strays(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kill_strays(marker) == []
    assert not marker.exists()


def test_run_ebpf_that_cannot_start_never_starts_cmd(tmp_path: Path) -> None:
    """In a user namespace eBPF cannot load: CMD never ran, so no exit code of its own."""
    require(EbpfBackend.probe().available, "needs the ebpf backend")
    require(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    out, marker = tmp_path / "e.jsonl", tmp_path / "ran"
    res = subprocess.run(
        ["unshare", "--user", "--map-root-user",
         *nettop_cmd("run", "--backend", "ebpf", "--output", str(out), "--", *marked_cmd(marker))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert kill_strays(marker) == [] and not marker.exists()
    assert res.returncode == 125, res.stderr
    assert res.stderr.count("\n") == 1 and "CMD was not started" in res.stderr, res.stderr
    end = records(out)[-1]
    assert end["type"] == "end" and end["reason"] == "backend_failed"
    assert end["exit_code"] is None


REUSE = """
import json, os, signal, subprocess, sys, time
out = sys.argv[1]
target = subprocess.Popen(["sleep", "60"])
watcher = subprocess.Popen(
    [sys.executable, "-m", "nettop_ui", "attach", str(target.pid), "--backend", "psutil",
     "--interval", "0.1", "--duration", "20", "--output", out],
    stderr=subprocess.PIPE, text=True,
)
while not (os.path.exists(out) and '"sample"' in open(out).read()):
    time.sleep(0.05)
watcher.send_signal(signal.SIGSTOP)  # it must not see the pid free
target.kill()
target.wait()
for _ in range(50):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(target.pid - 1))
    new = subprocess.Popen(["sleep", "60"])
    if new.pid == target.pid:
        break
    new.kill()
    new.wait()
watcher.send_signal(signal.SIGCONT)
start = time.monotonic()
_, err = watcher.communicate(timeout=60)
took = time.monotonic() - start
new.kill()
new.wait()
print(json.dumps({"pid": target.pid, "new": new.pid, "took": took, "err": err,
                  "code": watcher.returncode}))
"""


def test_attach_stops_when_the_pid_is_reused(tmp_path: Path) -> None:
    """The target exits and a new process gets its PID (in a PID namespace): not followed."""
    require_root()
    require(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    out = tmp_path / "reuse.jsonl"
    res = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", REUSE, str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    told = json.loads(res.stdout)
    assert told["new"] == told["pid"], told  # the PID was reused
    # In a PID namespace the kernel sends no process events: the scan, said once.
    scan = "proc connector not available in a PID or user namespace: finding new processes"
    assert told["code"] == 0 and told["err"] == f"nettop-ui: {scan} by reading all\n", told
    recs = records(out)
    assert recs[-1]["reason"] == "exited" and told["took"] < 10, (recs[-1], told)
    assert samples(recs)[-1]["tree"]["processes"] == 0


@pytest.mark.parametrize("pid", ["-1", "0", "99999999999999999999999", "abc", "1.5"])
def test_attach_bad_pid_is_one_line(pid: str) -> None:
    res = nettop("attach", pid, "--backend", "psutil")
    assert res.returncode != 0 and res.stdout == ""
    assert re.match(r"nettop-ui( attach)?: error: ", res.stderr), res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_sighup_reaches_cmd_and_the_recording_ends_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "hup.jsonl"
    code, err = signalled_run(out, signal.SIGHUP, "sh", "-c", "echo ready; exec sleep 60")
    assert code == 129, err
    recs = records(out)
    check_shape(recs)
    assert recs[-1]["exit_code"] == 129


def test_sighup_ends_the_json_stream_cleanly() -> None:
    proc = subprocess.Popen(
        nettop_cmd("--json", "--backend", "psutil", "--interval", "0.2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline(), proc.stdout.readline()]
        proc.send_signal(signal.SIGHUP)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err == ""
    lines = ("".join(first) + rest).splitlines()
    recs = [json.loads(line) for line in lines]
    assert recs[0]["type"] == "meta" and len(recs) >= 3 and recs[-1]["type"] == "sample"


def test_run_keeps_a_bounded_summary_not_every_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `run` keeps for its summary does not grow with the number of samples."""
    kept: list[jobs._Sinks] = []

    class Spy(jobs._Sinks):
        def __init__(self, args: Any) -> None:
            super().__init__(args)
            kept.append(self)

    monkeypatch.setattr(jobs, "_Sinks", Spy)
    # CMD lives until the recording (argv[1]) has n (argv[2]) samples.
    until = 'import sys, time\nn, line = int(sys.argv[2]), \'"type":"sample"\'\n'
    until += "while open(sys.argv[1]).read().count(line) < n:\n    time.sleep(0.01)\n"
    sizes = {}
    for n in (3, 40):
        out = tmp_path / f"{n}.jsonl"
        cmd = [sys.executable, "-c", until, str(out), str(n)]
        code = jobs.main(["run", "--backend", "psutil", "--interval", "0.05",
                          "--output", str(out), "--", *cmd])  # fmt: skip
        assert code == 0
        state = {k: v for k, v in vars(kept[-1]).items() if k not in ("files", "writers")}
        sizes[len(samples(records(out)))] = len(pickle.dumps(state))
    (few, small), (many, large) = sorted(sizes.items())
    assert many >= few + 30, sizes  # every kept sample would add 100 bytes or more
    assert large < small * 1.2, sizes
    assert kept[-1].summary() == summarize(records(out))  # what it kept is enough


def test_cmd_starts_with_the_signal_dispositions_it_would_have_without_nettop_ui(
    tmp_path: Path,
) -> None:
    """The held trampoline is Python, which ignores SIGPIPE: CMD must not inherit that,
    yet a SIGINT ignored by whoever started nettop-ui stays ignored (as `nohup` and `&` rely on)."""
    show = ["sh", "-c", "grep SigIgn /proc/$$/status"]
    args = ["run", "--backend", "psutil", "--output", str(tmp_path / "s.jsonl"), "--", *show]
    # Without nettop-ui: what this test's own children start with (a shell running the
    # suite in the background, say, has them ignore SIGINT and SIGQUIT).
    direct = subprocess.run(show, capture_output=True, text=True, timeout=60).stdout.split()
    res = nettop(*args)
    assert res.returncode == 0 and res.stdout.split() == direct, (res, direct)
    ignoring = subprocess.run(
        ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *nettop_cmd(*args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    sigint = 1 << (signal.SIGINT - 1)
    expected = ["SigIgn:", f"{int(direct[1], 16) | sigint:016x}"]
    assert ignoring.stdout.split() == expected, ignoring


def test_the_held_sample_does_not_pass_the_trampolines_figures_off_as_cmds() -> None:
    """The first sample is taken while CMD is still held: the process is nettop-ui's
    Python trampoline (9 MB), not CMD. Its memory and CPU are unknown there, not
    CMD's, and it is named as CMD is."""
    res = nettop("run", "--backend", "psutil", "--json", "--", "sleep", "1")
    assert res.returncode == 0, res.stderr
    first = next(r for r in map(json.loads, res.stdout.splitlines()) if r["type"] == "sample")
    (held,) = first["processes"]
    assert (held["name"], held["cmdline"]) == ("sleep", ["sleep", "1"])
    assert held["rss_bytes"] is None and held["cpu_percent"] is None
    assert first["tree"]["rss_bytes"] is None
