"""nettop_ui.api on real processes: run a command, attach to a pid, summarise."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nettop_ui.api import ProcessMonitor, execute_with_monitoring, summarize
from nettop_ui.watch import TargetError
from tests.strays import kill_strays, marked_cmd

LOAD = str(Path(__file__).parent / "treeload.py")


def test_execute_with_monitoring_returns_code_and_samples(tmp_path: Path) -> None:
    out = tmp_path / "api.jsonl"
    code, samples = execute_with_monitoring(
        [sys.executable, LOAD, "--cpu", "1", "--mem", "50", "--exit", "5"],
        backend="psutil",
        interval_s=0.2,
        output=str(out),
        stdout=subprocess.DEVNULL,
    )
    assert code == 5
    assert len(samples) >= 3 and all(s["type"] == "sample" for s in samples)
    summary = summarize(samples)
    assert summary["rss_bytes_peak"] >= 50 * 1024 * 1024
    assert summary["cpu_percent_peak"] > 0 and summary["samples"] == len(samples)
    from_file = summarize(str(out))
    assert from_file["exit_code"] == 5 and from_file["stopped"] is None
    assert from_file["rss_bytes_peak"] == summary["rss_bytes_peak"]


def test_process_monitor_iterates_live_and_stops() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with ProcessMonitor(pid=sleeper.pid, backend="psutil", interval_s=0.2) as mon:
            seen = []
            for sample in mon:
                seen.append(sample)
                if len(seen) == 3:
                    break
            assert mon.stop() is None  # attached: no exit status of ours
        assert sleeper.poll() is None  # attaching never signals the process
        assert mon.records[-1]["type"] == "end" and mon.records[-1]["reason"] == "stopped"
        assert seen[0]["tree"]["processes"] == 1
    finally:
        sleeper.kill()
        sleeper.wait()


def test_process_monitor_stop_terminates_its_command() -> None:
    mon = ProcessMonitor(cmd=["sleep", "30"], backend="psutil", interval_s=0.2).start()
    next(iter(mon))
    start = time.monotonic()
    assert mon.stop() == 143
    assert time.monotonic() - start < 10


def test_errors() -> None:
    with pytest.raises(TargetError):
        ProcessMonitor(pid=2**22 + 12345, backend="psutil").start()
    with pytest.raises(ValueError):
        ProcessMonitor(backend="psutil")
    with pytest.raises(ValueError):
        ProcessMonitor(cmd=["true"], backend="no-such-backend")


def test_start_with_an_unwritable_output_leaves_no_process(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    mon = ProcessMonitor(
        cmd=marked_cmd(marker), backend="psutil", output=str(tmp_path / "missing" / "x.jsonl")
    )
    with pytest.raises(OSError):
        mon.start()
    assert kill_strays(marker) == [] and not marker.exists()
