"""The collector joins backend byte deltas with real process facts, keyed by identity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from nettop_ui.collector import Collector, ProcessState, Snapshot
from nettop_ui.core import BackendFailure, ProcessTraffic, TrafficSample
from nettop_ui.jsonl import sample_record
from tests.netenv import require_root, spawn_on_pid

# A child that names itself, allocates 64 MiB, writes 3 MiB to disk, then burns CPU.
WORKER = r"""
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
block = bytearray(64 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
with open(sys.argv[2], "wb") as f:
    f.write(os.urandom(3 * 1024 * 1024))
    f.flush()
    os.fsync(f.fileno())
print("ready", flush=True)
end = time.time() + float(sys.argv[3])
while time.time() < end:
    pass
"""


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, "ntu-worker", str(tmp_path / "out.bin"), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout and proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


def sample(interval: float, *traffic: ProcessTraffic, **kw: int) -> TrafficSample:
    return TrafficSample(time.time(), interval, list(traffic), **kw)  # type: ignore[arg-type]


def find(snap: Snapshot, pid: int) -> list[ProcessState]:
    return [p for p in snap.processes if p.pid == pid]


def test_real_process_facts(worker: subprocess.Popen[str]) -> None:
    collector = Collector(gpu=False)
    collector.ingest(sample(0.5))
    time.sleep(1.0)
    snap = collector.ingest(sample(1.0))
    (p,) = find(snap, worker.pid)
    assert p.name == "ntu-worker"  # the kernel comm, as `ps -o comm=` shows it
    ps_comm = subprocess.run(
        ["ps", "-o", "comm=", "-p", str(worker.pid)], capture_output=True, text=True
    ).stdout.strip()
    assert p.name == ps_comm
    assert p.cmdline[1:3] == ["-c", WORKER]
    assert p.user == subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert p.rss_bytes is not None and p.rss_bytes >= 64 * 1024 * 1024
    assert p.cpu_percent is not None and p.cpu_percent > 50  # one busy core is ~100
    if os.geteuid() == 0 or p.user == os.environ.get("USER"):
        assert p.write_bytes is not None and p.write_bytes >= 3 * 1024 * 1024
    assert p.threads == 1
    assert p.ppid == os.getpid()
    # A process that moved nothing has zero bytes, known, not unknown.
    assert (p.sent_bytes, p.recv_bytes) == (0, 0)


def test_traffic_accumulates_and_rates(worker: subprocess.Popen[str]) -> None:
    collector = Collector(gpu=False)
    pid = worker.pid
    collector.ingest(sample(1.0, ProcessTraffic(pid, 1000, 4000)))
    snap = collector.ingest(sample(2.0, ProcessTraffic(pid, 3000, 0)))
    (p,) = find(snap, pid)
    assert (p.sent_bytes, p.recv_bytes) == (4000, 4000)
    assert (p.sent_bps, p.recv_bps) == (1500.0, 0.0)
    assert p.history is not None and p.history["sent_bps"].values() == [1000.0, 1500.0]


def test_rates_follow_each_ticks_movers() -> None:
    """Each tick every process's rate is what it moved in that tick: one that moved last
    tick and not in this one is back at 0 B/s with its total kept, and every process
    that never moved reads 0 B/s (the collector touches only the movers of this tick
    and the last)."""
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(3)]
    a, b, c = (p.pid for p in procs)
    collector = Collector(gpu=False, system=False, count_connections=False)
    ticks = [
        [ProcessTraffic(a, 100, 200), ProcessTraffic(b, 10, 0)],
        [ProcessTraffic(b, 30, 40), ProcessTraffic(b, 30, 0)],  # two reports, one process
        [],
        [ProcessTraffic(a, 6, 8)],
    ]
    totals = {pid: [0, 0] for pid in (a, b, c)}
    try:
        for traffic in ticks:
            snap = collector.ingest(sample(2.0, *traffic))
            moved = {pid: [0, 0] for pid in (a, b, c)}
            for t in traffic:
                moved[t.pid][0] += t.sent_bytes
                moved[t.pid][1] += t.recv_bytes
                totals[t.pid][0] += t.sent_bytes
                totals[t.pid][1] += t.recv_bytes
            for pid in (a, b, c):
                (state,) = find(snap, pid)
                assert [state.sent_bytes, state.recv_bytes] == totals[pid]
                rates = [state.sent_bps, state.recv_bps]
                assert rates == [moved[pid][0] / 2.0, moved[pid][1] / 2.0]
            others = [s for s in snap.processes if s.pid not in (a, b, c)]
            assert others and all((s.sent_bps, s.recv_bps) == (0.0, 0.0) for s in others)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_exited_process_keeps_totals_and_unknown_pid_uses_backend_name() -> None:
    collector = Collector(gpu=False, exited_keep_s=0.0)
    proc = subprocess.Popen(["sleep", "30"])
    collector.ingest(sample(1.0, ProcessTraffic(proc.pid, 500, 700)))
    proc.kill()
    proc.wait()
    # A pid that is gone and was never seen alive: named by the backend.
    with open("/proc/sys/kernel/pid_max") as f:
        ghost = int(f.read()) + 1  # beyond pid_max: never a live pid
    collector.ingest(sample(1.0, ProcessTraffic(ghost, 10, 20, name="shortlived")))
    time.sleep(0.01)
    snap = collector.ingest(sample(1.0))
    (p,) = find(snap, proc.pid)
    assert p.exited and (p.sent_bytes, p.recv_bytes) == (500, 700)
    assert (p.sent_bps, p.recv_bps) == (0.0, 0.0)
    # What only a live process has is unknown once it has gone, not its last value.
    live_only = (p.cpu_percent, p.rss_bytes, p.vms_bytes, p.read_bps, p.write_bps, p.threads)
    assert live_only == (None,) * 6, live_only
    (g,) = find(snap, ghost)
    assert g.exited and g.name == "shortlived" and (g.sent_bytes, g.recv_bytes) == (10, 20)
    assert g.cpu_percent is None and g.rss_bytes is None  # unknown, not zero


def test_exited_idle_process_is_forgotten_after_keep_time() -> None:
    collector = Collector(gpu=False, exited_keep_s=0.0)
    proc = subprocess.Popen(["sleep", "30"])
    collector.ingest(sample(1.0))
    proc.kill()
    proc.wait()
    collector.ingest(sample(1.0))
    time.sleep(0.01)
    snap = collector.ingest(sample(1.0))
    assert find(snap, proc.pid) == []


def test_reused_pid_starts_from_zero() -> None:
    require_root()
    collector = Collector(gpu=False)
    first = subprocess.Popen(["sleep", "30"])
    pid = first.pid
    collector.ingest(sample(1.0, ProcessTraffic(pid, 111, 222)))
    first.kill()
    first.wait()
    collector.ingest(sample(1.0))
    second = spawn_on_pid(pid, ["sleep", "30"])
    assert second is not None, "could not recycle the pid"
    try:
        snap = collector.ingest(sample(1.0, ProcessTraffic(pid, 5, 6)))
        states = sorted(find(snap, pid), key=lambda p: p.exited)
        assert len(states) == 2
        new, old = states
        assert not new.exited and (new.sent_bytes, new.recv_bytes) == (5, 6)
        assert old.exited and (old.sent_bytes, old.recv_bytes) == (111, 222)
        assert new.create_time != old.create_time
    finally:
        second.kill()
        second.wait()


def test_unattributed_bucket_accumulates() -> None:
    collector = Collector(gpu=False, has_unattributed=True)
    collector.ingest(sample(1.0, unattributed_sent=100, unattributed_recv=50))
    snap = collector.ingest(sample(2.0, unattributed_sent=100, unattributed_recv=0))
    u = snap.unattributed
    assert u is not None and (u.sent_bytes, u.recv_bytes) == (200, 50)
    assert (u.sent_bps, u.recv_bps) == (50.0, 0.0)


def test_backend_without_per_process_bytes_reports_unknown() -> None:
    collector = Collector(gpu=False, per_process_bytes=False)
    snap = collector.ingest(TrafficSample(time.time(), 1.0, None, connection_counts={}))
    me = find(snap, os.getpid())[0]
    assert me.sent_bytes is None and me.recv_bytes is None and me.sent_bps is None
    assert me.read_bytes is not None  # disk I/O is known, and is not network I/O


def test_failure_is_carried_in_snapshot() -> None:
    collector = Collector(gpu=False)
    snap = collector.ingest(BackendFailure("nethogs", "nethogs exited: killed"))
    assert snap.failure is not None and snap.failure.message == "nethogs exited: killed"


def test_churn_folds_the_oldest_exited_talkers_and_keeps_every_byte() -> None:
    collector = Collector(max_exited=3, exited_keep_s=0.0, system=False, gpu=False)
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(5)]
    try:
        collector.ingest(sample(1.0, *[ProcessTraffic(p.pid, 100, 10) for p in procs]))
        for p in procs:
            p.kill()
            p.wait()
        collector.ingest(sample(1.0))
        snap = collector.ingest(sample(1.0))
    finally:
        for p in procs:
            p.kill()
    listed = [s for s in snap.processes if s.pid in {p.pid for p in procs}]
    assert len(listed) == 3 and all(s.exited for s in listed)
    assert snap.folded is not None and snap.folded.processes == 2
    total_sent = sum(s.sent_bytes or 0 for s in listed) + snap.folded.sent_bytes
    assert (total_sent, snap.folded.recv_bytes) == (500, 20)
    record = sample_record(snap)
    assert record["exited_folded"] == {"processes": 2, "sent_bytes": 200, "recv_bytes": 20}


# Runs in a child: it lowers its own fd limit. The hard limit goes below what ProcFiles
# needs to hold files, so every read opens /proc afresh, as it does near the limit.
OUT_OF_FDS = r"""
import json, os, resource, subprocess, sys, time
from nettop_ui import procfs
from nettop_ui.collector import Collector
from nettop_ui.core import TrafficSample

resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
target = subprocess.Popen(["sleep", "60"])
time.sleep(0.2)
collector = Collector(gpu=False, system=False, count_connections=False)
real_list_pids = procfs.list_pids


def use_up_fds():
    # Every descriptor below the lowest free one is in use: with the soft limit there,
    # the next open fails with EMFILE, as when other threads hold the rest.
    free = os.dup(0)
    os.close(free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (free, 256))


real_every_pid = collector._every_pid  # the proc connector's pid set, where it works


def listed_then_out_of_fds():
    pids = real_list_pids()
    use_up_fds()
    return pids


def every_then_out_of_fds():
    pids = real_every_pid()
    if pids is not None:
        use_up_fds()
    return pids


def tick(out_of_fds=None):
    if out_of_fds == "after listing":
        procfs.list_pids = listed_then_out_of_fds
        collector._every_pid = every_then_out_of_fds
    elif out_of_fds == "before listing":
        use_up_fds()
    try:
        snap = collector.ingest(TrafficSample(time.time(), 0.3, []))
    except OSError as exc:
        return f"ingest raised {exc!r}"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        procfs.list_pids = real_list_pids
        collector._every_pid = real_every_pid
    (state,) = [p for p in snap.processes if p.pid == target.pid]
    return {"exited": state.exited, "cpu_percent": state.cpu_percent}


ticks = [tick(), tick("after listing"), tick(), tick("before listing"), tick(), tick()]
target.kill()
target.wait()
ticks.append(tick())
print(json.dumps(ticks))
"""


def test_failed_stat_read_is_not_an_exit() -> None:
    """One /proc/PID/stat read failing with EMFILE marked a live process exited for good.

    The failure is real: the child's fd limit is really reached (right after the /proc
    listing, which needs a descriptor too), and the collector's own reads get EMFILE
    from the kernel. Only the process really being gone (ENOENT/ESRCH) is an exit.
    """
    res = subprocess.run(
        [sys.executable, "-c", OUT_OF_FDS], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    first, after_listing, lifted, before_listing, lifted2, settled, killed = json.loads(res.stdout)
    assert first["exited"] is False
    # Out of fds: nothing could be read, so nothing is known, but nothing has exited.
    assert after_listing == {"exited": False, "cpu_percent": None}
    assert lifted["exited"] is False
    assert before_listing == {"exited": False, "cpu_percent": None}
    assert lifted2["exited"] is False
    assert settled == {"exited": False, "cpu_percent": 0.0}  # read again: a sleeper, 0%
    assert killed["exited"] is True  # really gone: exited


def test_cpu_of_a_process_started_since_the_last_scan_is_known(tmp_path: Path) -> None:
    """All its CPU time was used within the interval: its first tick's CPU is known
    (a tree sum over members is unknown while any member's is)."""
    collector = Collector(gpu=False, system=False, count_connections=False)
    collector.ingest(sample(0.5))
    time.sleep(0.05)
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, "ntu-born", str(tmp_path / "out.bin"), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout and proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        started = time.monotonic()
        snap = collector.ingest(sample(0.5))
        cpu_s = sum(psutil.Process(proc.pid).cpu_times()[:2])
        # The worker (one thread) used at most this much CPU between the scan and cpu_s.
        elapsed = time.monotonic() - started
        (p,) = find(snap, proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert p.cpu_percent is not None
    # its CPU seconds over the sample's 0.5 s (read right after the scan: within the
    # CPU it used from the scan's start to that read, and the kernel charges CPU time a
    # whole clock tick at a time, so one may land in that short window)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert 100 * (cpu_s - elapsed - tick) / 0.5 <= p.cpu_percent <= 100 * cpu_s / 0.5 + 2


def test_first_look_knows_what_stat_says_then_the_first_sample_fills_in_the_rest(
    worker: subprocess.Popen[str],
) -> None:
    """Before the first sample, `first_look` reads /proc/PID/stat (and statm) alone: the
    name, parent, threads and memory are right, the rest is unknown (None), never 0. The
    first sample then fills in every fact as a collector that never looked finds it, and
    its CPU rate is known at once (the first look's CPU time is its start)."""
    collector = Collector(gpu=False, has_unattributed=True)
    looked = collector.first_look()
    assert looked is not None and looked.unattributed is None  # no bytes seen yet
    assert looked.system is None  # no CPU % over the few ms since the sampler started
    (p,) = find(looked, worker.pid)
    assert (p.name, p.ppid, p.threads) == ("ntu-worker", os.getpid(), 1)
    assert p.rss_bytes is not None and p.rss_bytes >= 64 * 1024 * 1024
    unknown = ["user", "cgroup", "service", "cpu_percent", "read_bytes", "read_bps"]
    unknown += ["sent_bytes", "recv_bytes", "sent_bps", "recv_bps", "connection_count"]
    assert {name: getattr(p, name) for name in unknown} == dict.fromkeys(unknown)
    assert collector.first_look() is None  # once: it never overwrites what it knows
    time.sleep(1.0)
    snap = collector.ingest(sample(1.0, ProcessTraffic(worker.pid, 1000, 4000)))
    fresh = Collector(gpu=False).ingest(sample(1.0))
    (p,) = find(snap, worker.pid)
    (q,) = find(fresh, worker.pid)
    facts = ("name", "cmdline", "user", "ppid", "cgroup", "service", "threads", "write_bytes")
    assert {f: getattr(p, f) for f in facts} == {f: getattr(q, f) for f in facts}
    assert p.cmdline[1:3] == ["-c", WORKER] and p.user is not None and p.cgroup is not None
    assert (p.sent_bytes, p.recv_bytes, p.sent_bps, p.recv_bps) == (1000, 4000, 1000.0, 4000.0)
    # Every other process moved nothing in that sample: 0, no longer unknown.
    (me,) = find(snap, os.getpid())
    assert (me.sent_bytes, me.recv_bytes, me.sent_bps, me.recv_bps) == (0, 0, 0.0, 0.0)
    assert p.connection_count == 0 and q.cpu_percent is None
    assert p.cpu_percent is not None and p.cpu_percent > 50  # one busy core is ~100
    assert snap.unattributed is not None
