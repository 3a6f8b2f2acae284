"""Inputs for the TUI tests: a fully scripted snapshot stream and a scripted backend.

`scripted_snapshots()` builds Snapshots by hand (fixed pids, names, numbers, clock), so
an SVG screenshot of the app is identical on every machine. `ScriptedBackend` is a real
`Backend` that reports scripted byte counts for real processes the test spawned, so the
collector joins them with real /proc facts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nettop_ui.collector import ConnectionState, ProcessState, Snapshot, Unattributed
from nettop_ui.core import (
    Backend,
    ConnectionTraffic,
    Coverage,
    Probe,
    ProcessTraffic,
    TrafficSample,
)
from nettop_ui.gpu import GpuSampler
from nettop_ui.history import SeriesSet
from nettop_ui.profile import ProcessProfile, ThreadOffCpu
from nettop_ui.remotes import RemoteTable
from nettop_ui.services import service_of
from nettop_ui.system import InterfaceStats, SystemStats

T0 = 1_700_000_000.0  # the scripted clock
KIB = 1024
MIB = 1024 * 1024
HOSTILE_NAME = "[red]x[/red]\x1b]0;pwned\x07\u202eevil"


# -- fully scripted snapshots (screenshots) ---------------------------------------------


@dataclass
class Proc:
    pid: int
    ppid: int
    name: str
    user: str
    up: float  # bytes/s now
    down: float
    cmdline: list[str] = field(default_factory=list)
    cpu: float = 0.0
    rss: int = 10 * MIB
    conns: int = 0
    exited: bool = False
    read: float = 0.0
    write: float = 0.0


PROCS = [
    Proc(1, 0, "systemd", "root", 0, 0, ["/sbin/init"], 0.0, 12 * MIB),
    Proc(612, 1, "sshd", "root", 1.2 * KIB, 300, ["sshd: /usr/sbin/sshd -D"], 0.0, 9 * MIB, 2),
    Proc(900, 1, "nginx", "root", 0, 0, ["nginx: master process /usr/sbin/nginx"], 0.0, 6 * MIB),
    Proc(
        901,
        900,
        "nginx",
        "www-data",
        5.5 * MIB,
        180 * KIB,
        ["nginx: worker process"],
        22.5,
        40 * MIB,
        48,
    ),
    Proc(
        902,
        900,
        "nginx",
        "www-data",
        2.1 * MIB,
        90 * KIB,
        ["nginx: worker process"],
        11.0,
        38 * MIB,
        31,
    ),
    Proc(
        1300,
        1,
        "postgres",
        "postgres",
        40 * KIB,
        900 * KIB,
        ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"],
        6.3,
        210 * MIB,
        12,
        read=2 * MIB,
        write=512 * KIB,
    ),
    Proc(2001, 612, "bash", "alice", 0, 0, ["-bash"], 0.0, 5 * MIB),
    Proc(
        2002,
        2001,
        "python3",
        "alice",
        800 * KIB,
        12 * MIB,
        ["python3", "train.py", "--epochs", "3"],
        97.0,
        1900 * MIB,
        4,
        read=8 * MIB,
    ),
    Proc(
        2003,
        2001,
        "curl",
        "alice",
        0,
        0,
        ["curl", "-O", "https://example.test/big.iso"],
        0.0,
        0,
        0,
        exited=True,
    ),
    Proc(2100, 2, "[kworker/0:1]", "root", 0, 0, [], 0.1, 0),
    Proc(
        2200,
        2001,
        HOSTILE_NAME,
        "alice",
        3 * KIB,
        1 * KIB,
        [HOSTILE_NAME, "--title", "[bold]x[/bold]\nnext line\tTAB", "A" * 5000],
        0.5,
        3 * MIB,
        1,
    ),
    Proc(2300, 1, "chronyd", "_chrony", 0, 0, ["/usr/sbin/chronyd", "-F", "1"], 0.0, 4 * MIB, 1),
]


# Where the system's processes run (any other: alice's login session).
SESSION = "/user.slice/user-1000.slice/session-3.scope"
CGROUPS = {
    1: "/init.scope",
    612: "/system.slice/ssh.service",
    900: "/system.slice/nginx.service",
    901: "/system.slice/nginx.service",
    902: "/system.slice/nginx.service",
    1300: "/system.slice/system-postgresql.slice/postgresql@15-main.service",
    2100: "/",
    2300: "/system.slice/chrony.service",
}


def _history(p: Proc, n: int) -> SeriesSet:
    hist = SeriesSet(("sent_bps", "recv_bps", "cpu_percent", "rss_bytes"), 300)
    for i in range(n):
        wave = 0.5 + 0.5 * ((i * 7 + p.pid) % 11) / 10
        hist.append(
            T0 + i,
            sent_bps=p.up * wave,
            recv_bps=p.down * (1.5 - wave),
            cpu_percent=p.cpu * wave,
            rss_bytes=p.rss * (0.8 + 0.2 * i / max(n, 1)),
        )
    return hist


def _state(p: Proc, n: int, with_history: bool) -> ProcessState:
    state = ProcessState(p.pid, T0 - 1000 - p.pid, p.name)
    state.cmdline = list(p.cmdline)
    state.user = p.user
    state.ppid = p.ppid
    state.cgroup = CGROUPS.get(p.pid, SESSION)
    state.service = service_of(state.cgroup)
    state.sent_bps = 0.0 if p.exited else p.up
    state.recv_bps = 0.0 if p.exited else p.down
    state.sent_bytes = int(p.up * n * 0.9) + (700 * MIB if p.exited else 0)
    state.recv_bytes = int(p.down * n * 0.9) + (3 * 1024 * MIB if p.exited else 0)
    state.exited = p.exited
    state.cpu_percent = None if p.exited else p.cpu
    state.rss_bytes = None if p.exited else p.rss
    state.read_bps = None if p.exited else p.read
    state.write_bps = None if p.exited else p.write
    state.syscall_read_bytes = int(p.read * n) * 3  # reads from the page cache too
    state.syscall_write_bytes = int(p.write * n)
    state.page_faults_cached, state.page_faults_disk = 1000 + p.pid + n, p.pid % 7
    state.threads = 1 if not p.exited else None
    state.connection_count = p.conns
    if with_history:
        state.history = _history(p, n)
    for pid, proto, local, remote, up, down in CONNS:
        if pid == p.pid:
            state.connections[(proto, local, remote)] = ConnectionState(
                proto, local, remote, int(up * n), int(down * n), up, down, T0 + n
            )
    return state


# The scripted connections: (pid, protocol, local, remote, up B/s, down B/s). nginx's
# workers (children of 900) do the talking; two processes share 203.0.113.7 and two
# 198.51.100.20; postgres talks over loopback (a local host); the hostile name talks too.
CONNS = [
    (901, "tcp", "10.0.0.2:443", "203.0.113.7:51234", 3 * MIB, 60 * KIB),
    (901, "tcp", "10.0.0.2:443", "198.51.100.20:40110", 2 * MIB, 100 * KIB),
    (901, "tcp", "10.0.0.2:443", "[2001:db8::5]:443", 0.5 * MIB, 20 * KIB),
    (902, "tcp", "10.0.0.2:443", "203.0.113.7:51300", 2 * MIB, 90 * KIB),
    (612, "tcp", "10.0.0.2:22", "198.51.100.20:50022", 1.2 * KIB, 300),
    (2002, "tcp", "10.0.0.2:40522", "192.0.2.80:443", 800 * KIB, 12 * MIB),
    (2002, "tcp", "10.0.0.2:40524", "192.0.2.80:443", 10 * KIB, 2 * MIB),
    (1300, "tcp", "127.0.0.1:5432", "127.0.0.1:41000", 40 * KIB, 900 * KIB),
    (2200, "tcp", "10.0.0.2:39000", "192.0.2.99:8080", 3 * KIB, 1 * KIB),
    (2300, "udp", "10.0.0.2:123", "192.0.2.123:123", 90, 90),
]
# What the resolver would have said (nothing fills names yet: issue 13's names part).
NAMES = {
    "203.0.113.7": "edge.example.test",
    "198.51.100.20": "office.example.test",
    "192.0.2.80": "objects.example.test",
    "192.0.2.123": "ntp\x1b]0;pwned\x07[red]x[/red]\u202e.test",  # a PTR is untrusted too
}


def _remotes(table: RemoteTable, states: list[ProcessState], tick: int) -> list[Any]:
    """One tick of the scripted connections through the real RemoteTable, names filled
    in before the recount (which copies them onto the connections, as in the collector):
    a copy of each host as of this tick."""
    deltas = [
        ConnectionTraffic(pid, proto, local, remote, int(up), int(down))
        for pid, proto, local, remote, up, down in CONNS
    ]
    table.apply(deltas, 1.0, T0 + tick)
    for host in table.hosts.values():
        host.name = NAMES.get(host.address)
        host.name_source = "resolver" if host.name else None
    table.refresh((s.pid, s.name, list(s.connections.values())) for s in states)
    return [copy.copy(h) for h in table.hosts.values()]


def _system(i: int) -> SystemStats:
    cores = [20.0 + (i * 13 + c * 29) % 70 for c in range(4)]
    return SystemStats(
        ts=T0 + i,
        cpu_percent=sum(cores) / len(cores),
        cpu_per_core=cores,
        mem_total=16 * 1024 * MIB,
        mem_used=int((6.2 + 0.05 * i) * 1024 * MIB),
        swap_total=2 * 1024 * MIB,
        swap_used=128 * MIB,
        disk_read_bps=(2 + (i % 5)) * MIB,
        disk_write_bps=(1 + (i % 3)) * 512 * KIB,
        interfaces={
            "eth0": InterfaceStats(10**10, 10**11, (8 + i % 4) * MIB, (13 + i % 6) * MIB),
            "lo": InterfaceStats(10**9, 10**9, 120 * KIB, 120 * KIB),
            "wg0": InterfaceStats(10**8, 10**8, 0.0, 0.0),
        },
    )


def scripted_snapshots(
    count: int = 40, gpu: GpuSampler | None = None, extra: Sequence[Proc] = ()
) -> list[Snapshot]:
    """`count` ticks of a fixed little machine; only the last carries process histories.

    With `gpu` (a sampler answered by tests/fake_nvml.py), each tick carries its sample,
    joined to the processes (`extra` ones too) by pid as the collector joins them."""
    snaps = []
    table = RemoteTable()
    for i in range(1, count + 1):
        last = i == count
        states = [_state(p, i, last) for p in [*PROCS, *extra]]
        stats = gpu.sample() if gpu is not None else None
        if stats is not None:
            for state in states:
                state.gpu_memory_bytes = stats.process_memory.get(state.pid)
        snaps.append(
            Snapshot(
                ts=T0 + i,
                interval_s=1.0,
                processes=states,
                remotes=_remotes(table, states, i),
                unattributed=Unattributed(2 * MIB, 5 * MIB, 3 * KIB, 9 * KIB),
                system=_system(i),
                gpu=stats,
                gpu_unavailable=gpu.unavailable if gpu is not None else "no NVIDIA GPU",
            )
        )
    return snaps


def scripted_profile(i: int) -> ProcessProfile:
    """Tick `i` of train.py's `--profile` counts: a main thread and two loader threads
    blocked on reads, a steady mix of syscalls."""
    threads = (
        ThreadOffCpu(2002, 2002, 120_000_000 * i),
        ThreadOffCpu(2002, 2010, 400_000_000 * i),
        ThreadOffCpu(2002, 2011, 280_000_000 * i),
    )
    counts = {"read": 900 * i, "futex": 400 * i, "mmap": 60 * i, "openat": 30 * i}
    counts |= {"getppid": 5 * i, "sendto": 20 * i, "clock_gettime": 90 * i}
    return ProcessProfile(
        offcpu_ns=800_000_000 * i,
        offcpu_disk_ns=150_000_000 * i,
        offcpu_file_ns=350_000_000 * i,
        offcpu_network_ns=20_000_000 * i,
        offcpu_sleep_ns=280_000_000 * i,
        offcpu_events=40 * i,
        offcpu_max_ns=95_000_000,
        syscalls=sum(counts.values()),
        threads=threads,
        syscall_counts=counts,
        offcpu_percent=80.0,
        syscalls_per_s=float(sum(counts.values()) // i),
    )


def profiled_snapshots(count: int = 40) -> list[Snapshot]:
    """`scripted_snapshots` with `--profile` counts for train.py (pid 2002)."""
    snaps = scripted_snapshots(count)
    for i, snap in enumerate(snaps, start=1):
        snap.profiles = {}
        for state in snap.processes:
            if state.pid == 2002:
                state.ebpf = snap.profiles[2002] = scripted_profile(i)
    return snaps


class FixedClock:
    """A monotonic clock that says what the test wants."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- a scripted backend over real processes ---------------------------------------------

# A child that names itself (prctl PR_SET_NAME) and sleeps until stdin closes. The name
# goes through os.fsencode, so a str with surrogate escapes names it with raw bytes.
NAMED_CHILD = r"""
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, os.fsencode(sys.argv[1]), 0, 0, 0)
print("ready", flush=True)
sys.stdin.read()
"""


@dataclass
class Child:
    """A spawned process with a chosen name."""

    proc: subprocess.Popen[str]
    name: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn_named(name: str, *argv: str, user: str | None = None) -> Child:
    """A Python child whose comm is `name` (cut to 15 bytes by the kernel), argv as given,
    running as `user` (root only) or as this process's user."""
    proc = subprocess.Popen(
        [sys.executable, "-c", NAMED_CHILD, name, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        user=user,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return Child(proc, name)


@contextlib.contextmanager
def named_children(*names: str) -> Iterator[list[Child]]:
    children = [spawn_named(n, "--role", n) for n in names]
    try:
        yield children
    finally:
        for c in children:
            c.stop()


Script = Callable[[int], list[ProcessTraffic]]


class ScriptedBackend(Backend):
    """Reports `script(tick)` as the traffic of each interval; connections for the first pid.

    Set `fail_at` to make the n-th read raise (a backend that dies while running).
    """

    name = "scripted"
    platforms = ("linux",)
    layer = "socket payload"
    coverage: ClassVar[Coverage] = Coverage(protocols=("tcp",), per_connection=True)
    has_unattributed = True

    def __init__(self, script: Script, fail_at: int | None = None) -> None:
        self.script = script
        self.fail_at = fail_at
        self.tick = 0

    @classmethod
    def probe(cls) -> Probe:
        return Probe(True, "scripted")

    async def start(self) -> None:
        return None

    async def read(self, interval_s: float) -> TrafficSample:
        self.tick += 1
        if self.fail_at is not None and self.tick >= self.fail_at:
            from nettop_ui.core import BackendError

            raise BackendError("scripted failure: the capture process died")
        await asyncio.sleep(0)
        traffic = self.script(self.tick)
        conns = [
            ConnectionTraffic(
                t.pid,
                "tcp",
                "127.0.0.1:5000",
                f"127.0.0.1:{40000 + i}",
                t.sent_bytes // 2,
                t.recv_bytes // 2,
            )
            for i, t in enumerate(traffic[:1] * 2)
        ]
        return TrafficSample(
            ts=time.time(),
            interval_s=interval_s,
            processes=traffic,
            connections=conns,
            unattributed_sent=100,
            unattributed_recv=200,
        )

    async def close(self) -> None:
        return None


def steady(rates: dict[int, tuple[int, int]], interval_s: float) -> Script:
    """Each pid moves (up, down) bytes per second, every tick."""

    def script(_tick: int) -> list[ProcessTraffic]:
        return [
            ProcessTraffic(pid, int(up * interval_s), int(down * interval_s))
            for pid, (up, down) in rates.items()
        ]

    return script


def own_pid() -> int:
    return os.getpid()


def screen_lines(app: object) -> list[str]:
    """The screen as plain text lines, like `tmux capture-pane` (reads Textual internals)."""
    screen = app.screen  # type: ignore[attr-defined]
    return [strip.text for strip in screen._compositor.render_strips()]


async def wait_for(
    pilot: Any, predicate: Callable[[], bool], what: str, timeout: float = 8.0
) -> None:
    """Let the app run until `predicate()` holds; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def table_order(app: Any) -> list[str]:
    """Row keys in the order the process table draws them."""
    table = app.main.table
    return [row.key.value for row in table.ordered_rows]


def pid_order(app: Any, pids: list[int]) -> list[int]:
    """`pids` in the order they appear in the table."""
    wanted = {str(p) for p in pids}
    return [int(k.split(":")[0]) for k in table_order(app) if k.split(":")[0] in wanted]


def capture_notices(app: Any) -> list[str]:
    """Every message `app.notify` shows from now on, in order (the toasts still show)."""
    notes: list[str] = []
    notify = app.notify

    def capture(message: str, *args: Any, **kw: Any) -> None:
        notes.append(message)
        notify(message, *args, **kw)

    app.notify = capture
    return notes


async def pick_user(app: Any, pilot: Any, user: str | None) -> None:
    """`u`, then the picker's entry for `user` (None: all users), then enter."""
    from textual.widgets import OptionList

    from nettop_ui.tui.user_picker import UserPicker

    await pilot.press("u")
    await pilot.pause()
    picker = app.screen
    assert isinstance(picker, UserPicker)
    picker.query_one(OptionList).highlighted = picker.choices.index(user)
    await pilot.press("enter")
    await pilot.pause()
    assert app.screen is app.main
