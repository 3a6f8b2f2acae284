"""Golden files: the JSON Lines stream, the run/attach recording and its denet form.

The records come from fixed snapshots built here (no live data), so the files change
only when the schema does: a changed key, value or order shows as a diff under
tests/golden/. After a deliberate schema change, regenerate them with

    NETTOP_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

and review the diff (docs/json-schema.md must say the same).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from nettop_ui.collector import (
    ConnectionState,
    FoldedExited,
    ProcessState,
    Snapshot,
    Unattributed,
)
from nettop_ui.core import Backend, BackendFailure, Coverage, Probe, TrafficSample
from nettop_ui.denet_format import DenetConverter
from nettop_ui.jsonl import JsonlWriter, failure_record, meta_record, sample_record
from nettop_ui.remotes import FoldedHosts, RemoteHostState
from nettop_ui.system import InterfaceStats, SystemStats
from nettop_ui.tree import TreeTracker
from nettop_ui.watch import Target, WatchOptions, tree_sample, watch_meta

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NETTOP_UPDATE_GOLDEN") == "1"
HOST = "golden-host"
T0 = 1_700_000_000.0
ROOT, CHILD, GRANDCHILD, OTHER, SILENT = 4100, 4101, 4102, 4200, 4300
NOTE = "bytes of a gone socket counted late"
HOSTILE = "\x1b[31mevil\u2028name"  # rendered literally, escaped in JSON


class GoldenBackend(Backend):
    """Only what the meta line reads of a backend."""

    name: ClassVar[str] = "golden"
    platforms: ClassVar[tuple[str, ...]] = ("linux",)
    layer: ClassVar[str] = "socket payload"
    coverage: ClassVar[Coverage] = Coverage(("tcp", "udp"), note="made up for the golden files")

    @classmethod
    def probe(cls) -> Probe:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def read(self, interval_s: float) -> TrafficSample:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def _system(tick: int) -> SystemStats:
    return SystemStats(
        ts=T0 + tick,
        cpu_percent=12.5 + tick,
        cpu_per_core=[10.0, 15.0 + tick],
        mem_total=8 << 30,
        mem_used=(3 << 30) + tick * 4096,
        swap_total=1 << 30,
        swap_used=0,
        disk_read_bps=None if tick == 0 else 1000.0 / 3,
        disk_write_bps=None if tick == 0 else 2048.25,
        interfaces={
            "lo": InterfaceStats(5000 + tick * 100, 5000 + tick * 100, 100.0, 100.0),
            "eth0": InterfaceStats(10_000 + tick * 3000, 90_000 + tick * 7001, 3000.0, 7001.04),
        },
    )


def _proc(pid: int, ppid: int, name: str, **figures: Any) -> ProcessState:
    base: dict[str, Any] = {
        "cmdline": [name, "--golden"],
        "user": "alice",
        "sent_bytes": 0,
        "recv_bytes": 0,
        "sent_bps": 0.0,
        "recv_bps": 0.0,
        "cpu_percent": 1.5,
        "cpu_user_s": 0.25,
        "cpu_system_s": 0.125,
        "rss_bytes": 4096 * 250,
        "vms_bytes": 4096 * 1000,
        "read_bytes": 8192,
        "write_bytes": 4096,
        "read_bps": 0.0,
        "write_bps": 0.0,
        "syscall_read_bytes": 65536,
        "syscall_write_bytes": 12288,
        "page_faults_cached": 900,
        "page_faults_disk": 3,
        "threads": 1,
        "connection_count": 0,
    }
    base.update(figures)
    return ProcessState(pid, T0 - 100 + pid / 1000, name, ppid=ppid, **base)


def _exited(p: ProcessState) -> ProcessState:
    """As the collector leaves a process once it has gone (live-only figures unknown)."""
    p.exited, p.exited_at = True, T0 + 2
    p.cpu_percent = p.read_bps = p.write_bps = None
    p.rss_bytes = p.vms_bytes = p.threads = None
    p.gpu_memory_bytes = None
    return p


def _remotes(tick: int) -> list[RemoteHostState]:
    """The collector's remote hosts: curl's server (named), a host with a hostile name,
    loopback (local) and unconnected UDP bytes."""
    return [
        RemoteHostState("10.0.0.9", "remote", "api.example.com", "resolver", 1500 + 1000 * tick,
                        20_000 + 25_000 * tick, 1500.0, 25_000.04, 1, ("tcp",), (443,),
                        {CHILD: "curl"}),
        RemoteHostState("fd00::5", "remote", HOSTILE, "resolver", 10 * tick, 0, 10.0, 0.0),
        RemoteHostState("127.0.0.1", "local", "localhost", "resolver", 300, 200, 0.0, 0.0, 2,
                        ("tcp", "udp"), (22, 53), {OTHER: "sshd"}),
        RemoteHostState("", "remote", None, None, 64, 0, 0.0, 0.0),
    ]  # fmt: skip


def snapshots() -> list[Snapshot]:
    """Three ticks: a tree grows (a child with a connection, a grandchild with a hostile
    name and unknown disk I/O), then the child exits and the grandchild vanishes."""
    conn = ConnectionState("tcp", "10.0.0.2:40000", "10.0.0.9:443", 1500, 20_000, 1500.0, 2e4)
    conn.remote_name = "api.example.com"
    ticks: list[list[ProcessState]] = [
        [
            _proc(ROOT, 1, "sh", cpu_percent=3.0),
            _proc(CHILD, ROOT, "curl", sent_bytes=1500, recv_bytes=20_000, sent_bps=1500.0,
                  recv_bps=20_000.0, connection_count=1, connections={("tcp", "a", "b"): conn}),
            _proc(OTHER, 1, "sshd", user="root", sent_bytes=300, recv_bytes=200, sent_bps=300.0,
                  recv_bps=200.0, connection_count=2),
            _proc(SILENT, 1, "cron", user=None),
        ],
        [
            _proc(ROOT, 1, "sh", cpu_percent=2.25, gpu_memory_bytes=64 << 20, gpu_sm_percent=7.0),
            _proc(CHILD, ROOT, "curl", sent_bytes=3000, recv_bytes=45_000, sent_bps=1500.0,
                  recv_bps=25_000.0, connection_count=1, note=NOTE, page_faults_cached=1200),
            _proc(GRANDCHILD, CHILD, HOSTILE, cmdline=["evil", "\u00fcn\u00efcode"],
                  read_bytes=None, write_bytes=None, read_bps=None, write_bps=None,
                  syscall_read_bytes=None, syscall_write_bytes=None,
                  cpu_percent=None, sent_bytes=10, recv_bytes=0, sent_bps=10.0),
            _proc(OTHER, 1, "sshd", user="root", sent_bytes=300, recv_bytes=200),
            _proc(SILENT, 1, "cron", user=None),
        ],
        [
            _proc(ROOT, 1, "sh", cpu_percent=0.5, read_bytes=9000, write_bytes=5000,
                  read_bps=1234.5678, write_bps=600.04, sent_bytes=7, recv_bytes=3,
                  syscall_read_bytes=70_000, syscall_write_bytes=20_000,
                  page_faults_cached=1500, page_faults_disk=5,
                  sent_bps=4.666666, recv_bps=2.0),
            _exited(_proc(CHILD, ROOT, "curl", sent_bytes=3500, recv_bytes=45_000,
                          sent_bps=333.33333, note=NOTE, page_faults_cached=1250)),
            _proc(OTHER, 1, "sshd", user="root", sent_bytes=300, recv_bytes=200),
            _proc(SILENT, 1, "cron", user=None),
        ],
    ]  # fmt: skip
    return [
        Snapshot(
            ts=T0 + i + (0.5 if i == 2 else 0.0),
            interval_s=1.5 if i == 2 else 1.0,
            processes=procs,
            unattributed=Unattributed(64 * i, 128 * i, 64.0, 128.04),
            system=_system(i),
            folded=FoldedExited(2, 900, 1800) if i == 2 else None,
            remotes=_remotes(i),
            remotes_folded=FoldedHosts(3, 4000, 5000) if i == 2 else FoldedHosts(),
        )
        for i, procs in enumerate(ticks)
    ]


def stream_records() -> Iterator[dict[str, Any]]:
    """What `nettop-ui --json` writes for these ticks, in both of its detail levels."""
    yield meta_record(GoldenBackend, 1.0, T0 - 1, "the golden backend")
    for snap in snapshots():
        yield sample_record(snap)
        yield sample_record(snap, all_processes=True, with_connections=True)
    # A backend without per-connection data: `remotes` is null, not an empty list.
    yield sample_record(dataclasses.replace(snap, remotes=None, remotes_folded=None))
    yield failure_record(BackendFailure("golden", "it stopped", ts=T0 + 3, fallback="psutil"))


def run_records() -> Iterator[dict[str, Any]]:
    """What `nettop-ui run --json -- sh` writes for these ticks, each written as it comes
    (as the sinks do)."""
    target = Target()
    target.pid, target.cmdline, target.executable = ROOT, ["sh", "--golden"], "/bin/sh"
    target.start_time, target.mode = T0 - 100 + ROOT / 1000, "run"
    opts = WatchOptions(GoldenBackend, "the golden backend", 1.0, 5.0)
    tracker = TreeTracker(ROOT)
    yield watch_meta(target, opts, T0 - 1)
    for snap in snapshots():
        yield tree_sample(snap, tracker, target)
    end = T0 + 4
    yield {"type": "end", "ts": end, "ended": end, "started": T0 - 1, "duration_s": 5.0,
           "reason": "exited", "exit_code": 0}  # fmt: skip


def _written(records: Iterable[dict[str, Any]], through: Callable[[Any], Any] | None = None) -> str:
    out = io.StringIO()
    write = JsonlWriter(out).write
    sink = through(write) if through else write
    for record in records:
        sink(record)
    return out.getvalue()


@pytest.fixture(autouse=True)
def _fixed_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: HOST)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("stream.jsonl", lambda: _written(stream_records())),
        ("run.jsonl", lambda: _written(run_records())),
        ("run.denet.jsonl", lambda: _written(run_records(), DenetConverter)),
    ],
)
def test_output_matches_its_golden_file(name: str, make: Callable[[], str]) -> None:
    path = GOLDEN / name
    text = make()
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="ascii")
    assert path.exists(), f"{path} is missing; make it with NETTOP_UPDATE_GOLDEN=1"
    golden = path.read_text(encoding="ascii")
    assert text == golden, (
        f"{name} differs from {path}: the schema changed. If that was meant, regenerate with "
        "NETTOP_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py, review the "
        "diff and update docs/json-schema.md"
    )


def test_a_recorded_sample_does_not_change_after_it_was_made() -> None:
    """A sink may keep the records (the Python API does): a later tick must not rewrite
    an earlier sample's members (an exited flag, a child count)."""
    assert _written(list(run_records())) == _written(run_records())
