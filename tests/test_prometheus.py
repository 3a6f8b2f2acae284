"""The Prometheus exporter: grouping, top-N and monotone counters, then a real Prometheus.

The unit tests feed the exporter snapshots, built directly or by the real collector;
the end-to-end tests run `nettop-ui --prometheus ... --headless --backend ebpf` as a
user would, scraped by a real Prometheus server (Debian's `prometheus` package)
while a test client moves a known number of bytes, and under a burst of 2,000
short-lived processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from backends.ebpf import EbpfBackend
from backends.psutil_backend import PsutilBackend
from nettop_ui.collector import Collector, ProcessState, Snapshot, Unattributed
from nettop_ui.core import ProcessTraffic, TrafficSample
from nettop_ui.gpu import GpuStats
from nettop_ui.monitor import monitor
from nettop_ui.prometheus import (
    IDLE_TIMEOUT_S,
    MAX_CONNECTIONS,
    Exporter,
    ListenError,
    parse_listen,
)
from nettop_ui.remotes import RemoteHostState
from nettop_ui.services import NO_SERVICE
from nettop_ui.tui import MonitorSource, NettopApp
from tests.cgroups import cgroup_tree
from tests.netenv import Network, require, require_root, within
from tests.tui_fixtures import wait_for

PROMETHEUS = "/usr/bin/prometheus"
DOCS = Path(__file__).parent.parent / "docs"
TX = "nettop_process_network_transmit_bytes"
GROUP_FAMILIES = (
    TX,
    "nettop_process_network_receive_bytes",
    "nettop_process_cpu_seconds",
    "nettop_process_read_bytes",
    "nettop_process_write_bytes",
    "nettop_process_syscall_read_bytes",
    "nettop_process_syscall_write_bytes",
    "nettop_process_minor_page_faults",
    "nettop_process_major_page_faults",
    "nettop_process_memory_bytes",
    "nettop_process_num_procs",
)
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def _registry(exporter: Exporter) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(exporter)
    return registry


def render(exporter: Exporter) -> Series:
    return parse(generate_latest(_registry(exporter)).decode())


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, tuple(sorted(labels.items()))))


def groups(series: Series, family: str) -> dict[tuple[tuple[str, str], ...], set[str]]:
    """For one family: the groupnames seen, per combination of the other labels."""
    found: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for (name, labels), _ in series.items():
        if name.removesuffix("_total") != family:
            continue
        rest = tuple(kv for kv in labels if kv[0] != "groupname")
        found.setdefault(rest, set()).add(dict(labels)["groupname"])
    return found


class Monotone:
    """Remembers every counter sample seen and fails if one ever goes down."""

    def __init__(self) -> None:
        self.last: Series = {}

    def check(self, series: Series) -> None:
        for key, v in series.items():
            if not key[0].endswith("_total"):
                continue
            before = self.last.get(key)
            assert before is None or v >= before, f"{key} went from {before} to {v}"
            self.last[key] = v


def proc(
    pid: int,
    name: str,
    sent: int | None = 0,
    recv: int | None = 0,
    cpu: float = 0.0,
    *,
    exited: bool = False,
    created: float | None = 100.0,
) -> ProcessState:
    return ProcessState(
        pid,
        created,
        name,
        user="root",
        sent_bytes=sent,
        recv_bytes=recv,
        cpu_user_s=cpu,
        cpu_system_s=cpu / 2,
        rss_bytes=1000,
        vms_bytes=5000,
        read_bytes=10,
        write_bytes=20,
        exited=exited,
    )


def snap(*procs: ProcessState, unattributed: Unattributed | None = None) -> Snapshot:
    return Snapshot(time.time(), 1.0, list(procs), unattributed, None)


# -- the logic, on snapshots built directly -------------------------------------------


def test_groups_sum_processes_and_first_tick_is_a_baseline() -> None:
    exp = Exporter(EbpfBackend)
    exp.update(snap(proc(1, "web", 100, 10, cpu=50.0), proc(2, "web", 200, 20, cpu=30.0)))
    s = render(exp)
    assert value(s, f"{TX}_total", groupname="web") == 300
    assert value(s, "nettop_process_network_receive_bytes_total", groupname="web") == 30
    # Old processes' CPU time before the monitor's first tick is not ours to count.
    assert value(s, "nettop_process_cpu_seconds_total", groupname="web", mode="user") == 0
    assert value(s, "nettop_process_num_procs", groupname="web") == 2
    assert value(s, "nettop_process_memory_bytes", groupname="web", memtype="resident") == 2000
    info = [dict(k[1]) for k in s if k[0] == "nettop_backend_info"]
    assert info[0]["backend"] == "ebpf" and info[0]["layer"] == EbpfBackend.layer
    assert info[0]["coverage"].startswith("tcp,")
    # Later ticks add deltas; a process born after the first tick counts in full.
    exp.update(
        snap(
            proc(1, "web", 150, 10, cpu=51.0),
            proc(2, "web", 200, 20, cpu=30.5),
            proc(3, "web", 5, 0, cpu=2.0, created=200.0),
        )
    )
    s = render(exp)
    assert value(s, f"{TX}_total", groupname="web") == 355
    assert value(s, "nettop_process_cpu_seconds_total", groupname="web", mode="user") == 3.5
    assert value(s, "nettop_process_num_procs", groupname="web") == 3
    assert value(s, "nettop_exporter_resident_memory_bytes") > 0  # type: ignore[operator]
    assert value(s, "nettop_exporter_cpu_seconds_total", mode="user") is not None


def test_exited_process_keeps_its_bytes_in_the_group() -> None:
    exp = Exporter(EbpfBackend)
    exp.update(snap(proc(1, "job", 1000, 0), proc(2, "job", 10, 0)))
    exp.update(snap(proc(1, "job", 1500, 0, exited=True), proc(2, "job", 10, 0)))
    exp.update(snap(proc(2, "job", 20, 0)))  # pid 1 folded away / forgotten by the collector
    s = render(exp)
    assert value(s, f"{TX}_total", groupname="job") == 1520
    assert value(s, "nettop_process_num_procs", groupname="job") == 1
    # A reused pid (same pid, new create_time) starts from zero: nothing is subtracted.
    exp.update(snap(proc(2, "job", 20, 0), proc(1, "job", 7, 0, created=999.0)))
    assert value(render(exp), f"{TX}_total", groupname="job") == 1527


def test_unknown_bytes_are_left_out_never_zero() -> None:
    exp = Exporter(PsutilBackend)
    exp.update(snap(proc(1, "a", None, None, cpu=1.0)))
    exp.update(snap(proc(1, "a", None, None, cpu=2.0)))
    s = render(exp)
    assert not any(k[0].startswith("nettop_process_network") for k in s)
    assert value(s, "nettop_process_cpu_seconds_total", groupname="a", mode="user") == 1.0
    assert not any(k[0].startswith("nettop_unattributed") for k in s)
    exp2 = Exporter(EbpfBackend)
    exp2.update(snap(proc(1, "a"), unattributed=Unattributed(5, 6)))
    s2 = render(exp2)
    assert value(s2, "nettop_unattributed_network_transmit_bytes_total") == 5
    assert value(s2, "nettop_unattributed_network_receive_bytes_total") == 6


def test_top_n_caps_series_and_counters_never_go_back() -> None:
    """Random traffic, overtaking groups, exits: every counter is monotone, no family ever
    has more than top + 1 groups, a named group shows its whole total since the start, and
    "other" holds exactly the bytes groups moved while they were not named."""
    rng = random.Random(7)
    top = 3
    exp = Exporter(EbpfBackend, top=top, pids=True)
    seen = Monotone()
    procs: dict[int, ProcessState] = {}
    truth: dict[str, int] = {}  # bytes per group since the start
    other = 0  # bytes moved by groups while they were not named
    next_pid = 10
    reshuffles, named_before = 0, set[str]()
    for tick in range(200):
        moved_now: dict[str, int] = {}
        for _ in range(rng.randint(0, 3)):  # births, in one of 12 groups
            procs[next_pid] = proc(next_pid, f"g{rng.randint(0, 11)}", created=1000.0 + tick)
            next_pid += 1
        for p in list(procs.values()):
            if p.exited:
                if rng.random() < 0.3 and not p.sent_bytes:
                    del procs[p.pid]  # the collector forgets idle exited processes
                continue
            moved = rng.randint(0, 50) * (int(p.name[1:]) + 1) if rng.random() < 0.5 else 0
            if tick > 100 and p.name == "g0":
                moved *= 40  # g0 overtakes everyone late: a reshuffle
            p.sent_bytes = (p.sent_bytes or 0) + moved
            moved_now[p.name] = moved_now.get(p.name, 0) + moved
            p.cpu_user_s = (p.cpu_user_s or 0.0) + rng.random()
            if rng.random() < 0.05:
                p.exited = True
        exp.update(snap(*procs.values()))
        s = render(exp)
        seen.check(s)
        for family in GROUP_FAMILIES:
            for rest, names in groups(s, family).items():
                assert len(names) <= top + 1, (family, rest, names)
        tx = groups(s, TX)
        named = next(iter(tx.values()), set()) - {"other"}
        reshuffles += bool(named_before and named != named_before)
        named_before = named
        for group, moved in moved_now.items():
            truth[group] = truth.get(group, 0) + moved
            other += 0 if group in named else moved
        for group in named:
            assert value(s, f"{TX}_total", groupname=group) == truth[group]
        if other:
            assert value(s, f"{TX}_total", groupname="other") == other
    assert reshuffles > 0, "the scenario should move groups in and out of the top"
    assert "g0" in named_before
    pid_series = [k for k in s if k[0] == "nettop_pid_network_transmit_bytes_total"]
    assert len(pid_series) == sum(not p.exited for p in procs.values())


REMOTE_TX = "nettop_remote_network_transmit_bytes_total"


def test_remote_hosts_are_capped_to_the_top_n_and_other_like_groups() -> None:
    """Per remote host: a named host's counter is its total since the start, "other" holds
    exactly what the other hosts moved while they were not named, at most top + 1
    addresses ever, every counter monotone; names and scopes are labels (escaped); and a
    backend without per-connection data (remotes None) exports no remote series."""
    rng = random.Random(11)
    top = 3
    exp = Exporter(EbpfBackend, top=top)
    exp.update(snap(proc(1, "a")))
    assert not any(k[0].startswith("nettop_remote") for k in render(exp))
    seen = Monotone()
    hosts: dict[str, RemoteHostState] = {}
    other = 0
    for tick in range(150):
        moved: dict[str, int] = {}
        for _ in range(rng.randint(0, 3)):
            address = f"192.0.2.{rng.randint(1, 12)}"
            host = hosts.setdefault(address, RemoteHostState(address, "remote"))
            n = rng.randint(1, 100) * (40 if tick > 80 and address == "192.0.2.1" else 1)
            host.sent_bytes += n
            moved[address] = moved.get(address, 0) + n
        if tick == 10:
            hosts["192.0.2.1"] = hosts.get("192.0.2.1") or RemoteHostState("192.0.2.1", "remote")
            hosts["192.0.2.1"].name = "evil\x1b]0;x\x07.example"
        shot = snap(proc(1, "a"))
        shot.remotes = list(hosts.values())
        exp.update(shot)
        s = render(exp)
        seen.check(s)
        sent = {dict(k[1])["address"]: (dict(k[1]), v) for k, v in s.items() if k[0] == REMOTE_TX}
        assert len(sent) <= top + 1
        for address, n in moved.items():
            other += 0 if address in sent else n
        for address, (labels, v) in sent.items():
            if address == "other":
                assert v == other
            else:
                assert v == hosts[address].sent_bytes and labels["scope"] == "remote"
    assert "192.0.2.1" in sent, "the late big talker overtook the others"
    assert sent["192.0.2.1"][0]["name"] == "evil\\x1b]0;x\\x07.example"


def test_gpu_memory_per_group_and_device_only_when_used() -> None:
    """NVML's per-device figures (GpuStats, as gpu.py fills it) become per-group gauges.

    No GPU here: the input is built directly; tests/test_gpu.py covers reading NVML."""
    exp = Exporter(EbpfBackend)
    shot = snap(proc(1, "train"), proc(2, "train"), proc(3, "idle"))
    exp.update(shot)
    assert not any(k[0] == "nettop_process_gpu_memory_bytes" for k in render(exp))
    shot.gpu = GpuStats(process_memory_by_device={"0": {1: 100, 2: 50}, "0/1": {2: 7}})
    exp.update(shot)
    s = render(exp)
    gpu = {k: v for k, v in s.items() if k[0] == "nettop_process_gpu_memory_bytes"}
    assert gpu == {
        ("nettop_process_gpu_memory_bytes", (("gpu", "0"), ("groupname", "train"))): 150,
        ("nettop_process_gpu_memory_bytes", (("gpu", "0/1"), ("groupname", "train"))): 7,
    }


def test_names_like_other_stay_apart_and_control_characters_are_escaped() -> None:
    exp = Exporter(EbpfBackend, top=10)
    names = ["other", "[other]", "[[other]]", "evil\x1b]0;owned\x07\rX", "evil\\x1b]0;owned"]
    exp.update(snap(*(proc(i + 1, name, 100 * (i + 1)) for i, name in enumerate(names))))
    exposition = generate_latest(_registry(exp)).decode()
    assert "\x1b" not in exposition and "\r" not in exposition and "\x07" not in exposition
    series = parse(exposition)
    sent = {dict(k[1])["groupname"]: v for k, v in series.items() if k[0] == f"{TX}_total"}
    assert len(sent) == len(names), sent  # one group each: none merged, none in "other"
    assert sorted(sent.values()) == [100.0 * (i + 1) for i in range(len(names))]
    assert "other" not in sent  # the bucket's name is only ever the bucket


def test_parse_listen() -> None:
    assert parse_listen("9100") == ("127.0.0.1", 9100)
    assert parse_listen("0.0.0.0:9100") == ("0.0.0.0", 9100)
    assert parse_listen("[::1]:0") == ("::1", 0)
    arabic_indic_9100, superscript_2 = "\u0669\u0661\u0660\u0660", "\u00b2"
    for bad in ("", "x", "70000", "::1:9100", "[::1]", ":9100", "host:-1", arabic_indic_9100,
                superscript_2):  # fmt: skip
        with pytest.raises(ListenError):
            parse_listen(bad)


# -- on real collector snapshots ------------------------------------------------------


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


UNIT = "system.slice/ntu-sleep.service"  # where the sleepers run when grouped by cgroup

# Names itself ntu-io, waits for a line, then reads and writes known amounts through
# syscalls and touches fresh pages; prints "done" and waits again.
IO_WORKER = """
import ctypes, mmap, os, sys
ctypes.CDLL(None).prctl(15, b"ntu-io", 0, 0, 0)  # PR_SET_NAME
print("ready", flush=True)
sys.stdin.readline()
n = int(sys.argv[1])
fd = os.open("/dev/null", os.O_WRONLY)
left = n
while left:
    left -= os.write(fd, b"x" * min(left, 65536))
zero = os.open("/dev/zero", os.O_RDONLY)
left = n
while left:
    left -= len(os.read(zero, min(left, 65536)))
pages = mmap.mmap(-1, 256 * mmap.PAGESIZE)
for i in range(256):
    pages[i * mmap.PAGESIZE] = 1
print("done", flush=True)
sys.stdin.readline()
"""


def test_disk_signals_count_a_real_process_syscalls_and_page_faults() -> None:
    """rchar/wchar and page faults per group: a real process, old at the first tick (its
    past is not counted), then writes and reads exactly N bytes through syscalls and
    touches 256 fresh pages; the group's counters add exactly that (and the pipe's
    few bytes), and at least 256 minor faults."""
    n = random.randint(1_000_000, 3_000_000)
    worker = subprocess.Popen(
        [sys.executable, "-c", IO_WORKER, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert worker.stdout.readline() == "ready\n"
        collector = Collector(system=False, gpu=False, count_connections=False)
        exp = Exporter(EbpfBackend, top=1000)
        exp.update(collector.ingest(TrafficSample(time.time(), 1.0, [])))
        first = render(exp)
        names = ("syscall_read_bytes", "syscall_write_bytes", "minor_page_faults")
        assert [value(first, f"nettop_process_{m}_total", groupname="ntu-io") for m in names] == [
            0,
            0,
            0,
        ]
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline() == "done\n"
        exp.update(collector.ingest(TrafficSample(time.time(), 1.0, [])))
        s = render(exp)
        read, written, minor = (
            value(s, f"nettop_process_{m}_total", groupname="ntu-io") for m in names
        )
        assert (read, written) == (n + len("go\n"), n + len("done\n"))  # and its pipes'
        assert minor is not None and minor >= 256
        assert value(s, "nettop_process_major_page_faults_total", groupname="ntu-io") == 0
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.parametrize("group_by", ["name", "user", "exe", "cgroup", "service"])
def test_real_collector_snapshots(sleepers: list[subprocess.Popen[bytes]], group_by: str) -> None:
    with contextlib.ExitStack() as stack:
        cgroup = ""
        if group_by in ("cgroup", "service"):  # real cgroups, named as systemd names a unit
            tree = stack.enter_context(cgroup_tree())
            cgroup = {tree.place(p.pid, UNIT) for p in sleepers}.pop()  # all in one
        _check_real_collector_snapshots(sleepers, group_by, cgroup)


def _check_real_collector_snapshots(
    sleepers: list[subprocess.Popen[bytes]], group_by: str, cgroup: str
) -> None:
    collector = Collector(system=False, gpu=False, count_connections=False)
    exp = Exporter(EbpfBackend, group_by=group_by, top=5)
    seen = Monotone()
    a, b, c = (p.pid for p in sleepers)
    ticks = [[(a, 1000)], [(a, 500), (b, 300)], [(c, 200)], [(b, 1)]]
    for i, moves in enumerate(ticks):
        if i == 2:
            sleepers[0].kill()  # exits: its 1,500 bytes stay in the group
            sleepers[0].wait()
        sample = TrafficSample(time.time(), 1.0, [ProcessTraffic(p, n, 0) for p, n in moves])
        shot = collector.ingest(sample)
        exp.update(shot)
        s = render(exp)
        seen.check(s)
        assert len(groups(s, TX)[()]) <= 5 + 1
    expected = {
        "name": "sleep",
        "user": "root" if os.geteuid() == 0 else os.environ.get("USER", ""),
        "exe": os.path.realpath(shutil.which("sleep") or "/usr/bin/sleep"),
        "cgroup": cgroup,
        "service": "ntu-sleep.service",
    }[group_by]
    total = value(s, f"{TX}_total", groupname=expected)
    if group_by != "user":  # the exited sleeper's 1,500 bytes stay in its cgroup's group
        assert total == 2001
    else:  # other processes of this user / cgroup share the group, without traffic
        assert total is not None and total >= 2001
    if group_by == "name":  # two of ours, and any other test's sleep running meanwhile
        live = sum(p.name == "sleep" and not p.exited for p in shot.processes)
        assert value(s, "nettop_process_num_procs", groupname="sleep") == live >= 2
    if group_by in ("cgroup", "service"):
        assert value(s, "nettop_process_num_procs", groupname=expected) == 2
    if group_by == "service":  # most of this machine runs in the root cgroup: no service
        assert value(s, "nettop_process_num_procs", groupname=NO_SERVICE)


def test_group_by_service_from_the_command_line() -> None:
    """`--group-by service`: the real CLI groups a process in a docker container's real
    cgroup (systemd driver) under the container's name, short id here."""
    cid = "3f2a9c1b7d0e" + "5a" * 26
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with cgroup_tree() as tree:
            tree.place(sleeper.pid, f"system.slice/docker-{cid}.scope")
            exporter = ExporterProcess(
                "--backend", "psutil", "--interval", "0.2", "--group-by", "service"
            )
            try:
                exporter.wait_ready()
                deadline = time.monotonic() + 30
                while value(parse(get(exporter.url)), "nettop_process_num_procs",
                            groupname="docker:3f2a9c1b7d0e") != 1:  # fmt: skip
                    assert time.monotonic() < deadline, get(exporter.url)[-3000:]
                    time.sleep(0.3)
            finally:
                err = exporter.stop()
        assert exporter.proc.returncode == 0, err
    finally:
        sleeper.kill()
        sleeper.wait()


# -- end to end: the real CLI, real traffic, a real Prometheus -------------------------


class ThreadSpy(Exporter):
    """The real exporter, noting which thread runs each `update`."""

    def __init__(self) -> None:
        super().__init__(PsutilBackend)
        self.threads: list[int] = []

    def update(self, snap: Snapshot) -> None:
        self.threads.append(threading.get_ident())
        super().update(snap)


def test_headless_update_runs_on_the_collectors_thread() -> None:
    """`--headless`: monitor() hands each tick to the exporter on its worker thread."""
    exporter = ThreadSpy()

    async def go() -> int:
        await monitor(PsutilBackend(), 0.2, exporter, count=2, handle_signals=False)
        return threading.get_ident()

    loop_thread = asyncio.run(go())
    assert len(exporter.threads) == 2 and loop_thread not in exporter.threads
    assert any(k[0] == "nettop_process_num_procs" for k in render(exporter))


async def test_update_next_to_the_tui_stays_off_the_ui_event_loop() -> None:
    """`--prometheus` with the TUI: the exporter's update runs on the collector's thread,
    so a slow update (many groups, /proc reads for cgroup or exe) never holds up the
    UI's keys and drawing."""
    exporter = ThreadSpy()
    app = NettopApp(MonitorSource(PsutilBackend(), 0.2, sink=exporter), host="test")
    async with app.run_test() as pilot:
        # two ticks (the TUI's first frame, its first look, is no tick of the exporter's)
        await wait_for(pilot, lambda: len(exporter.threads) >= 2, "two updates", timeout=30)
    assert threading.get_ident() not in exporter.threads  # the app's loop runs here
    assert any(k[0] == "nettop_process_num_procs" for k in render(exporter))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


class ExporterProcess:
    """`nettop-ui --prometheus 127.0.0.1:0 --headless ...`; `url` is the /metrics it logs."""

    def __init__(self, *args: str, fd_limit: int | None = None) -> None:
        def limit_fds() -> None:
            if fd_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nettop_ui", "--prometheus", "127.0.0.1:0", "--headless", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit_fds,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        found = re.search(r"serving Prometheus metrics at (http://\S+)", line)
        assert found, line + self.proc.stderr.read()
        self.url = found.group(1)

    def wait_ready(self, timeout: float = 180) -> Series:
        """Wait for the first tick (the BPF program compiled and attached)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stop()
            series = parse(get(self.url))
            if any(k[0] == "nettop_backend_info" for k in series):
                return series
            time.sleep(0.5)
        raise AssertionError("the exporter published no sample")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return err


def last_tick(url: str, within_s: float) -> float:
    """The exporter's last monitor tick, scraping until it answers (it may be busy)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            ts = parse(get(url)).get(("nettop_exporter_last_sample_timestamp_seconds", ()))
            assert ts is not None
            return ts
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_idle_connections_cannot_take_the_monitor_down() -> None:
    """400 idle connections to an exporter limited to 256 fds: it keeps sampling and
    serving, with a bounded number of threads, and closes the idle connections."""
    exporter = ExporterProcess("--backend", "psutil", "--interval", "0.2", fd_limit=256)
    try:
        exporter.wait_ready()
        threads_before = psutil.Process(exporter.proc.pid).num_threads()
        host, port = urllib.parse.urlsplit(exporter.url).netloc.split(":")
        idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(400)]
        try:
            time.sleep(2)  # the monitor walks /proc every 0.2 s meanwhile
            assert exporter.proc.poll() is None, exporter.stop()
            threads = psutil.Process(exporter.proc.pid).num_threads()
            assert threads <= threads_before + MAX_CONNECTIONS, (threads_before, threads)
            first = last_tick(exporter.url, within_s=IDLE_TIMEOUT_S + 5)
            time.sleep(1)
            assert last_tick(exporter.url, within_s=5) > first  # the monitor still samples
            time.sleep(IDLE_TIMEOUT_S)
            for sock in idle:  # each was answered "busy" or closed once idle too long
                reply = sock.recv(1024)
                assert reply == b"" or reply.startswith(b"HTTP/1.0 503"), reply
            assert exporter.proc.poll() is None
        finally:
            for sock in idle:
                sock.close()
    finally:
        err = exporter.stop()
    assert "Traceback" not in err and "Too many open files" not in err, err


def test_only_metrics_is_served() -> None:
    exporter = ExporterProcess("--backend", "psutil", "--interval", "0.2")
    try:
        exporter.wait_ready()
        base = exporter.url.removesuffix("/metrics")
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(f"{base}/anything")
        assert missing.value.code == 404
        assert "/metrics" in get(f"{base}/")  # a tiny index that points to it
        assert "nettop_backend_info" in get(f"{base}/metrics?x=1")
    finally:
        exporter.stop()


class PrometheusServer:
    """The real Prometheus binary, scraping one target every second, in a tmp dir."""

    def __init__(self, tmp: Path, target: str) -> None:
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            json.dumps(  # YAML is a superset of JSON
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "nettop", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log = open(tmp / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.logfile = tmp / "prometheus.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logfile.read_text()[-2000:]
            try:
                get(f"{self.base}/-/ready", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("Prometheus did not become ready: " + self.logfile.read_text()[-2000:])

    def query(self, promql: str) -> list[dict[str, object]]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        reply = json.loads(get(url))
        assert reply["status"] == "success", reply
        return list(reply["data"]["result"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def test_real_prometheus_scrapes_a_clients_bytes(net: Network, tmp_path: Path) -> None:
    require_root()
    require(os.access(PROMETHEUS, os.X_OK), "needs Prometheus (apt install prometheus)")
    exporter = ExporterProcess("--backend", "ebpf", "--interval", "1")
    prom = None
    try:
        exporter.wait_ready()
        target = exporter.url.removeprefix("http://").removesuffix("/metrics")
        prom = PrometheusServer(tmp_path, target)
        client = net.client("ntu-prom-tx", "tcp", "v4", up=3_000_000, down=200_000).wait_done()
        query = f'{TX}_total{{groupname="ntu-prom-tx"}}'
        stable: list[float] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            result = prom.query(query)
            if result:
                stable.append(float(result[0]["value"][1]))  # type: ignore[index]
                if len(stable) >= 4 and len(set(stable[-4:])) == 1 and stable[-1] > 0:
                    break
            time.sleep(1)
        client.finish()
        assert stable, (
            "Prometheus never got the client's series: " + prom.logfile.read_text()[-2000:]
        )
        print(f"Prometheus: {stable[-1]:.0f} bytes sent; the client counted {client.sent}")
        assert within(stable[-1], client.sent, 0.01), (stable[-1], client.sent)
        rx = prom.query('nettop_process_network_receive_bytes_total{groupname="ntu-prom-tx"}')
        assert within(float(rx[0]["value"][1]), client.recv, 0.01)  # type: ignore[index]
        # The same bytes per remote host: only this client talked to the namespace here.
        to_peer = prom.query(f'sum({REMOTE_TX}{{address="{net.ns_v4}"}})')
        assert within(float(to_peer[0]["value"][1]), client.sent, 0.01), to_peer  # type: ignore[index]
        rate = prom.query(f"topk(10, rate({TX}_total[1m]))")
        assert rate, "the README's top-talkers query returns series"
        up = prom.query('up{job="nettop"}')
        assert up and up[0]["value"][1] == "1"  # type: ignore[index]
        info = prom.query("nettop_backend_info")
        assert info[0]["metric"]["backend"] == "ebpf"  # type: ignore[index]
        # Every query of the Grafana dashboard is valid PromQL; the traffic ones have data.
        dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                result = prom.query(target["expr"].replace("$job", "nettop"))
                if "Top talkers" in panel["title"]:
                    assert result, target["expr"]
    finally:
        if prom is not None:
            prom.stop()
        err = exporter.stop()
    assert exporter.proc.returncode == 0, err
    assert "Traceback" not in err


def test_series_stay_capped_through_a_burst_of_2000_processes(tmp_path: Path) -> None:
    require_root()
    bash = shutil.which("bash")
    require(bash is not None, "needs bash")
    top = 20
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    links = tmp_path / "bin"
    links.mkdir()
    names = [f"nb{i:04d}" for i in range(2000)]
    for name in names:  # the comm is the executable's file name: 2,000 distinct programs
        (links / name).symlink_to(bash)  # type: ignore[arg-type]
    exporter = ExporterProcess(
        "--backend", "ebpf", "--interval", "0.5", "--prometheus-top", str(top)
    )
    seen = Monotone()
    scrapes: list[Series] = []
    dropped: list[Exception] = []  # the 2,000 forks can starve the exporter past its timeout
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            try:
                scrapes.append(parse(get(exporter.url)))
            except (OSError, http.client.HTTPException) as exc:
                dropped.append(exc)
            time.sleep(0.2)

    scraper = threading.Thread(target=scrape, daemon=True)
    try:
        exporter.wait_ready()
        scraper.start()
        script = f"echo x >/dev/udp/127.0.0.1/{port}"
        for start in range(0, len(names), 100):  # 100 at a time
            batch = [
                subprocess.Popen([str(links / n), "-c", script]) for n in names[start : start + 100]
            ]
            for p in batch:
                assert p.wait(30) == 0
        time.sleep(3)  # a few more ticks
        done.set()
        scraper.join(30)
    finally:
        done.set()
        err = exporter.stop()
        sink.close()
    assert exporter.proc.returncode == 0, err
    assert len(scrapes) > 10 and len(dropped) < len(scrapes), dropped
    bursts = 0
    for series in scrapes:
        seen.check(series)
        for family in GROUP_FAMILIES:
            for rest, gnames in groups(series, family).items():
                assert len(gnames) <= top + 1, (family, rest, len(gnames))
        bursts = max(
            bursts, len({g for g in groups(series, TX).get((), set()) if g.startswith("nb")})
        )
    last = scrapes[-1]
    print(f"{len(scrapes)} scrapes; at most {bursts} burst groups had their own series")
    assert "other" in groups(last, TX)[()]
    # Every burst process sent "x\n": 4,000 bytes, wherever they are (own series or "other").
    assert sum(v for k, v in last.items() if k[0] == f"{TX}_total") >= 4000
    assert bursts <= top


def test_exporter_runs_alongside_the_tui() -> None:
    """`nettop-ui --prometheus PORT` on a real terminal (tmux): the TUI and /metrics both live."""
    tmux = shutil.which("tmux")
    require(tmux is not None, "needs tmux (apt install tmux)")
    assert tmux is not None
    port = free_port()
    sock = f"ntu-prom-{os.getpid()}"
    cmd = f"{sys.executable} -m nettop_ui --prometheus 127.0.0.1:{port} --backend sockdiag"
    tm = [tmux, "-L", sock]
    subprocess.run(
        [*tm, "new-session", "-d", "-x", "120", "-y", "40", "-c", str(DOCS.parent), cmd],
        check=True,
    )
    try:
        series: Series = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            k[0] == "nettop_process_num_procs" for k in series
        ):
            time.sleep(0.5)
            try:
                series = parse(get(f"http://127.0.0.1:{port}/metrics"))
            except OSError:
                continue
        assert any(k[0] == "nettop_process_num_procs" for k in series), "no metrics from the TUI"
        screen = subprocess.run(
            [*tm, "capture-pane", "-p"], capture_output=True, text=True, check=True
        ).stdout
        assert "PROGRAM" in screen and "sockdiag" in screen, screen
        subprocess.run([*tm, "send-keys", "q"], check=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if subprocess.run([*tm, "has-session"], capture_output=True).returncode != 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the TUI did not quit on q")
    finally:
        subprocess.run([*tm, "kill-server"], capture_output=True)
