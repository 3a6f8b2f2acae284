"""The cheap socket count: processes that have not run are skipped, the counts stay exact.

Real processes holding real loopback sockets, some shared with a child (a higher pid,
which holds them once the parent lets go, so a stale record of the parent would
miscount them). Every count is checked against the full walk
(procfs.inet_socket_counts, every process's fd links read) for the test's processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.psutil_backend import PsutilBackend
from nettop_ui import inetdiag, procfs
from nettop_ui.collector import Collector, Snapshot
from nettop_ui.core import TrafficSample
from nettop_ui.monitor import monitor
from nettop_ui.tui import NettopApp
from nettop_ui.tui.source import MonitorSource
from tests.netenv import require_root, spawn_on_pid
from tests.tmuxterm import column, pid_of, table_rows
from tests.tui_fixtures import screen_lines, wait_for

# Holds a TCP connection to the port in argv[1] and a UDP socket, both shared with a
# child that sleeps; prints the child's pid. Then one command a line on stdin, each
# answered "ok": "close" closes its newest TCP connection, "open" opens another.
SHARER = """
import os, socket, sys, time
port = int(sys.argv[1])
conns = [socket.create_connection(("127.0.0.1", port))]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
kid = os.fork()
if kid == 0:
    time.sleep(120)
    os._exit(0)
print(kid, flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        conns.pop().close()
    else:
        conns.append(socket.create_connection(("127.0.0.1", port)))
    print("ok", flush=True)
"""

# Opens /dev/null until it has as many fds as argv[1] says, none a socket.
FILLER = """
import os, sys, time
while os.stat("/proc/self/fd").st_size < int(sys.argv[1]):
    os.open("/dev/null", os.O_RDONLY)
print("ready", flush=True)
time.sleep(120)
"""


@dataclass
class Sharer:
    proc: subprocess.Popen[str]
    kid: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self, what: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.kid, 9)
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield server


@pytest.fixture
def sharers(listener: socket.socket) -> Iterator[list[Sharer]]:
    """Start more with `start(sharers, listener)`; all are stopped at the end."""
    made: list[Sharer] = []
    yield made
    for s in made:
        s.stop()


def start(made: list[Sharer], listener: socket.socket) -> Sharer:
    port = str(listener.getsockname()[1])
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-c", SHARER, port], stdin=pipe, stdout=pipe, text=True
    )
    assert proc.stdout is not None
    sharer = Sharer(proc, int(proc.stdout.readline()))
    made.append(sharer)
    assert sharer.kid > sharer.pid  # the child's pid is higher: the parent's sockets count first
    return sharer


def assert_as_full_walk(counts: dict[int, int] | None, pids: Collection[int]) -> None:
    """`counts` is what reading every process's links finds, for these processes (the
    others on the machine open and close sockets of their own meanwhile)."""
    full = procfs.inet_socket_counts()
    assert counts is not None and full is not None
    assert {p: counts.get(p, 0) for p in pids} == {p: full.get(p, 0) for p in pids}


def test_quiet_processes_are_not_looked_at_and_keep_their_sockets(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    counter = procfs.SocketCounter(full_every_s=1e9)  # the full walk out of the way
    a = start(sharers, listener)
    ours = [os.getpid(), a.pid, a.kid]
    assert_as_full_walk(counter.count(procfs.list_pids()), ours)
    # Both asleep: neither is stat'ed, and their sockets are still counted, the parent's.
    pids = procfs.list_pids()
    counts = counter.count(pids, quiet={a.pid, a.kid})
    assert counter.stats == len(pids) - 2
    assert counts is not None and counts.get(a.pid) == 2 and a.kid not in counts
    assert_as_full_walk(counts, ours)
    # The parent wakes and closes its connection, which its child still holds: the
    # child's at the next count (the child still asleep, not looked at).
    a.command("close")
    counts = counter.count(procfs.list_pids(), quiet={a.kid})
    assert counts is not None and counts.get(a.pid) == 1 and counts.get(a.kid) == 1
    assert_as_full_walk(counts, ours)
    a.command("open")
    assert_as_full_walk(counter.count(procfs.list_pids(), quiet={a.kid}), ours)
    # A new process, not quiet (never counted before, it would be looked at anyway).
    b = start(sharers, listener)
    ours += [b.pid, b.kid]
    assert_as_full_walk(counter.count(procfs.list_pids(), quiet={a.pid, a.kid}), ours)


def test_every_link_is_read_again_once_full_every_s_has_passed(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    """The safety net is timed, not counted: a counter called every tick walks every
    process's links once per `full_every_s`, however many counts fall in between."""
    now = [0.0]
    counter = procfs.SocketCounter(full_every_s=150.0, clock=lambda: now[0])
    a = start(sharers, listener)
    pids = procfs.list_pids()
    counter.count(pids)  # the first count reads everyone
    assert counter.links_read >= len(pids) - 5  # (some may have gone since the listing)
    quiet = set(pids) - {os.getpid()}
    for _ in range(149):  # a count a second: none of them walks
        now[0] += 1.0
        counts = counter.count(pids, quiet=quiet)
        assert counter.stats <= 1 and counter.links_read <= 1
    now[0] += 1.0
    counts = counter.count(pids, quiet=quiet)
    assert counter.stats == counter.links_read >= len(pids) - 5  # quiet or not, all
    assert counts is not None and counts.get(a.pid) == 2
    assert_as_full_walk(counts, [os.getpid(), a.pid, a.kid])


def test_a_socket_whose_holder_is_not_listed_is_searched_for_among_the_unsure_only(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    """A listed socket no listed process holds (a short-lived client's, gone by the
    time it is searched for; here one started after the listing) is searched for among
    the processes that ran since their links were read, never among the quiet ones,
    whose links were read since they last ran: at 2,000 processes, not 2,000 reads."""
    counter = procfs.SocketCounter(full_every_s=1e9)
    a = start(sharers, listener)
    pids = procfs.list_pids()
    counter.count(pids)
    start(sharers, listener)  # its sockets are listed, it is not
    others = set(pids) - {os.getpid()}  # trusted as quiet: the test's own process ran
    counts = counter.count(pids, quiet=others)
    assert counts is not None and (counts.get(a.pid), counts.get(a.kid)) == (2, None)
    # Only the processes not trusted as quiet (this one, and any the first count could
    # not read) were looked at, and no other's links read.
    assert counter.links_read <= counter.stats < len(pids) / 2


def test_a_reused_pid_with_as_many_fds_is_read_again(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    """A process exits, leaving its sockets to its child (a higher pid), and a new one,
    holding no socket, gets its pid with as many open fds: the old one's record must not
    keep claiming the child's sockets."""
    require_root()
    counter = procfs.SocketCounter(full_every_s=1e9)
    a = start(sharers, listener)
    fds = os.stat(f"/proc/{a.pid}/fd").st_size
    assert_as_full_walk(counter.count(procfs.list_pids()), [a.pid, a.kid])
    a.proc.kill()
    a.proc.wait()
    new = spawn_on_pid(
        a.pid, [sys.executable, "-c", FILLER, str(fds)], stdout=subprocess.PIPE, text=True
    )
    assert new is not None, "could not recycle the pid"
    try:
        assert new.stdout is not None and new.stdout.readline().strip() == "ready"
        assert os.stat(f"/proc/{a.pid}/fd").st_size == fds
        counts = counter.count(procfs.list_pids(), quiet={a.kid})
        assert counts is not None and counts.get(a.kid) == 2 and a.pid not in counts
        assert_as_full_walk(counts, [a.pid, a.kid])
    finally:
        new.kill()
        new.wait()


def tick(collector: Collector) -> dict[int, int | None]:
    snap = collector.ingest(TrafficSample(time.time(), 1.0, None))
    return {p.pid: p.connection_count for p in snap.processes if not p.exited}


def test_collector_skips_the_processes_that_slept_through_every_scan_since_its_count(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    """The collector passes as quiet only the processes whose schedstat read the same at
    every scan since its last count: one that ran at any of them is looked at."""
    collector = Collector(gpu=False, system=False, resolve=False, connection_count_every_s=0.0)
    a = start(sharers, listener)
    ours = [os.getpid(), a.pid, a.kid]
    try:
        tick(collector)
        tick(collector)  # the first scan that can tell who slept
        counts = tick(collector)
        counter = collector._sockets
        assert counter is not None
        # The sleeping majority (kernel threads, idle daemons, these two) is skipped.
        assert counter.stats < len(counts) / 2
        assert (counts[a.pid], counts[a.kid]) == (2, 0)
        assert_as_full_walk({p: c or 0 for p, c in counts.items()}, ours)
        # The parent closes its shared connection, then sleeps through the next scans:
        # with no count at the scan that saw it run, it is still not quiet at the count.
        a.command("close")
        collector.connection_count_every_s = 1e9
        tick(collector)
        tick(collector)
        collector.connection_count_every_s = 0.0
        counts = tick(collector)
        assert (counts[a.pid], counts[a.kid]) == (1, 1)
        assert_as_full_walk({p: c or 0 for p, c in counts.items()}, ours)
    finally:
        collector.close()


def test_inet_diag_lists_the_sockets_the_tcp_tables_list(listener: socket.socket) -> None:
    """One inet_diag dump, in place of /proc/net/tcp and tcp6, finds exactly the tables'
    sockets among ours: listening (IPv4, IPv6), connected both ways, an IPv4 peer on an
    IPv6 socket, one whose peer closed (CLOSE_WAIT); not one reset by its peer (closed,
    so in neither) nor one never bound."""
    v6 = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    mapped = socket.create_connection(("127.0.0.1", v6.getsockname()[1]))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    half = socket.create_connection(listener.getsockname())
    half_peer, _ = listener.accept()
    half_peer.close()  # `half` is in CLOSE_WAIT
    reset = socket.create_connection(listener.getsockname())
    reset_peer, _ = listener.accept()
    reset_peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    reset_peer.close()  # an RST: `reset` is closed
    unbound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ours = [listener, v6, mapped, client, accepted, half, reset, unbound]
    try:
        time.sleep(0.1)  # the RST and FIN arrive
        mine = {os.fstat(s.fileno()).st_ino for s in ours}
        tables = procfs.inet_rows(("tcp", "tcp6"))
        dumped = inetdiag.tcp_inodes()
        assert tables is not None and dumped is not None
        listed = {int(f[9]) for f in tables} & mine
        assert dumped & mine == listed
        assert len(listed) == len(ours) - 2
        assert os.fstat(reset.fileno()).st_ino not in listed
    finally:
        for s in ours:
            s.close()


def test_json_with_psutil_counts_every_tick_exactly(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    """`--json --backend psutil`: the collector counts the sockets at every tick, the
    processes that slept skipped; a change shows at the next tick, not 5 s later."""
    a = start(sharers, listener)
    cli = [sys.executable, "-m", "nettop_ui", "--json", "--backend", "psutil", "--all"]
    proc = subprocess.Popen(
        [*cli, "--interval", "0.3", "--count", "4"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout

    def counts() -> dict[int, int]:
        record = json.loads(out.readline())
        assert record["type"] == "sample", record
        return {p["pid"]: p["connection_count"] for p in record["processes"] if not p["exited"]}

    try:
        assert json.loads(out.readline())["type"] == "meta"
        first = counts()
        assert (first[a.pid], first[a.kid]) == (2, 0)
        a.command("close")
        counts()  # taken before the close, maybe
        after = counts()
        assert (after[a.pid], after[a.kid]) == (1, 1)
    finally:
        proc.kill()
        proc.wait()


def test_monitor_leaves_the_machine_count_of_psutil_to_the_collector(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    """The psutil backend no longer counts (its samples carry no counts): the collector
    does, every tick, and gets them right."""
    a = start(sharers, listener)
    collector = Collector(gpu=False, system=False, resolve=False)
    seen: list[tuple[dict[int, int] | None, dict[int, int | None]]] = []

    class Keep:
        def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
            live = {p.pid: p.connection_count for p in snap.processes if not p.exited}
            seen.append((sample.connection_counts, live))

        def failure(self, *_: object) -> None:
            raise AssertionError("no failure expected")

        def end(self, _failure: object) -> None:
            pass

    try:
        run = monitor(
            PsutilBackend(), 0.1, Keep(), count=3, collector=collector, handle_signals=False
        )
        asyncio.run(run)
    finally:
        collector.close()
    assert len(seen) == 3
    for counted, live in seen:
        assert counted is None
        assert (live[a.pid], live[a.kid]) == (2, 0)


@cache
def real_reply() -> tuple[bytes, int]:
    """The kernel's first answer to inetdiag's request (listeners come first: this
    one's among them), and the inode of a listener it lists."""
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, inetdiag.NETLINK_SOCK_DIAG) as s,
    ):
        size = inetdiag.HEADER.size + len(inetdiag.REQUEST)
        flags = inetdiag.NLM_F_REQUEST | inetdiag.NLM_F_DUMP
        s.sendto(
            inetdiag.HEADER.pack(size, inetdiag.TCPDIAG_GETSOCK, flags, 1, 0) + inetdiag.REQUEST,
            (0, 0),
        )
        return s.recv(1 << 16), os.fstat(server.fileno()).st_ino


@given(st.integers(0, 4096), st.binary(max_size=64), st.integers(0, 4096))
def test_inet_diag_replies_with_any_damage_never_raise(at: int, junk: bytes, cut: int) -> None:
    """A real reply (whose listener is found), overwritten anywhere with anything and
    cut anywhere: parsed without an exception."""
    reply, listener = real_reply()
    intact: set[int] = set()
    assert inetdiag.parse_reply(reply, intact) is not False and listener in intact
    damaged = (reply[:at] + junk + reply[at + len(junk) :])[:cut]
    assert inetdiag.parse_reply(damaged, set()) in (True, False, None)


async def test_tui_with_psutil_shows_a_change_at_the_next_tick(
    listener: socket.socket, sharers: list[Sharer]
) -> None:
    """The TUI with psutil: the collector counts at every tick, so the CONNS column
    follows a socket changing hands within a tick or two, not 5 s later (25 ticks)."""
    a = start(sharers, listener)
    ticks: list[float] = []

    class Ticks:
        def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
            ticks.append(snap.ts)

        def failure(self, *_: object) -> None:
            raise AssertionError("no failure expected")

        def end(self, _failure: object) -> None:
            pass

    source = MonitorSource(PsutilBackend(), 0.2, sink=Ticks())
    app = NettopApp(source, host="test", filter_text=f"pid:{a.pid},{a.kid}")

    def conns() -> dict[int, str]:
        screen = "\n".join(screen_lines(app))
        return {pid_of(row): column(screen, row, "CONNS") for row in table_rows(screen)}

    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: conns() == {a.pid: "2", a.kid: "0"}, "2 and 0", 30)
        a.command("close")
        closed_at = len(ticks)
        await wait_for(pilot, lambda: conns() == {a.pid: "1", a.kid: "1"}, "1 and 1", 30)
        assert len(ticks) <= closed_at + 3, f"{len(ticks) - closed_at} ticks to show it"
