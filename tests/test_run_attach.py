"""`nettop-ui run`, `attach` and `summary` as a user runs them, on real process trees.

The workloads (tests/treeload.py, tests/trafficgen.py) burn known CPU, allocate known
memory, write known disk bytes and send known network bytes; the recordings must show
them. Network bytes go only to the servers of tests/netenv.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nettop_ui.core import IntervalSchedule
from tests.netenv import GEN, Network, require_root, within

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
