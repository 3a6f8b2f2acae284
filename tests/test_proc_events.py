"""The proc connector follows a real process tree, and every process (nettop_ui/proc_events.py).

A driver process forks on request: a grandchild that stays, one that is forked, exits
and is reaped before the scope next looks, and a storm of short-lived ones that
overflows the connector's socket; it also opens TCP listeners. The scope must list the
tree (and nothing else), remember the parent of the one that came and went, and make up
for lost events; a collector given the scope reads, counts and keeps only the tree.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nettop_ui import proc_events, procfs
from nettop_ui.collector import Collector
from nettop_ui.core import ProcessTraffic, TrafficSample
from nettop_ui.proc_events import KEEP_EXITED_TICKS, EveryProcess, ProcConnector, TreeScope
from tests.netenv import require_root

DRIVER = """
import os, socket, subprocess, sys
keep, held = [], [socket.socketpair()]  # a UNIX pair: not a TCP/UDP socket
for line in sys.stdin:
    what, n = line.split()
    if what == "sockets":  # TCP listeners on loopback
        held += [socket.create_server(("127.0.0.1", 0)) for _ in range(int(n))]
        print(len(held) - 1, flush=True)
        continue
    if what == "zombie":  # a child that exits, left unreaped until "reap"
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        zombie = pid
        print(pid, flush=True)
        continue
    if what == "reap":
        os.waitpid(zombie, 0)
        print(zombie, flush=True)
        continue
    for _ in range(int(n)):  # children that exit at once, reaped at once
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    if what == "keep":  # then one that stays
        keep.append(subprocess.Popen(["sleep", "60"]))
    print(keep[-1].pid if what == "keep" else pid, flush=True)
"""


@pytest.fixture
def driver() -> Iterator[subprocess.Popen[str]]:
    require_root()
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def listed(scope: TreeScope) -> list[int]:
    """The scope's pids for this tick (never None here: the connector answered)."""
    pids = scope.pids()
    assert pids is not None
    return pids


def ask(driver: subprocess.Popen[str], what: str, n: int) -> int:
    """Have the driver fork `n` short-lived children, then (`keep`) one that stays; the
    pid of the one that stays, or of the last short-lived one. `sockets`: open `n` TCP
    listeners; how many it holds."""
    assert driver.stdin is not None and driver.stdout is not None
    driver.stdin.write(f"{what} {n}\n")
    driver.stdin.flush()
    return int(driver.stdout.readline())


def test_the_scope_lists_the_tree_and_remembers_a_process_that_came_and_went(
    driver: subprocess.Popen[str],
) -> None:
    outsider = subprocess.Popen(["sleep", "60"])
    scope = TreeScope(driver.pid)
    try:
        assert scope.fallback is None
        assert scope.pids() == [driver.pid]
        kept = ask(driver, "keep", 0)
        gone = ask(driver, "flash", 1)  # forked, exited and reaped between two looks
        assert kept in listed(scope)
        assert outsider.pid not in listed(scope) and not scope.wants(outsider.pid)
        assert scope.parent_of(gone) == driver.pid and scope.wants(gone)
        assert gone not in listed(scope)  # gone from /proc: not read again
        for _ in range(KEEP_EXITED_TICKS):
            scope.pids()
        assert not scope.wants(gone) and scope.parent_of(gone) is None  # forgotten in time
        assert kept in listed(scope) and scope.parent_of(kept) == driver.pid
    finally:
        scope.close()
        outsider.kill()
        outsider.wait()


def test_a_trees_collector_reads_counts_and_keeps_only_the_tree(
    driver: subprocess.Popen[str],
) -> None:
    outsider = subprocess.Popen(["sleep", "60"])
    scope = TreeScope(driver.pid)
    collector = Collector(scope=scope, system=False, gpu=False, resolve=False)
    try:
        listening = ask(driver, "sockets", 3)
        kept = ask(driver, "keep", 0)
        moved = [ProcessTraffic(driver.pid, 100, 10), ProcessTraffic(outsider.pid, 7, 7)]
        snap = collector.ingest(TrafficSample(time.time(), 1.0, moved))
        assert {p.pid for p in snap.processes} == {driver.pid, kept}  # not the outsider
        top = next(p for p in snap.processes if p.pid == driver.pid)
        assert (top.sent_bytes, top.recv_bytes) == (100, 10)
        assert top.connection_count == listening == 3  # its own sockets, asked one by one
    finally:
        collector.close()
        scope.close()
        outsider.kill()
        outsider.wait()


def test_events_lost_to_a_full_socket_are_made_up_by_one_scan(
    driver: subprocess.Popen[str],
) -> None:
    scope = TreeScope(driver.pid)
    try:
        assert scope._events is not None
        # The kernel's smallest receive buffer: a few events; the storm drops the rest,
        # the fork of the one that stays (the last) among them.
        scope._events.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
        kept = ask(driver, "keep", 200)
        assert kept in listed(scope)
        assert scope._events.overflows > 0
    finally:
        scope.close()


def test_the_kernel_queues_only_the_forks_and_exits_of_whole_processes() -> None:
    """Threads, execs and name changes never reach the socket (the socket filter), so a
    busy machine's threads cost nothing to read."""
    require_root()
    events = ProcConnector()
    try:
        with pytest.raises(BlockingIOError):  # what came before the filter was attached
            while True:
                events.sock.recv(65536)
        threads = [threading.Thread(target=time.sleep, args=(0.01,)) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        subprocess.run(["true"], check=True)  # a fork, an exec, an exit
        time.sleep(0.1)
        kinds = set()
        with pytest.raises(BlockingIOError):
            while True:
                for what, data, _ in proc_events._events(events.sock.recv(65536)):
                    if what == proc_events.PROC_EVENT_FORK:
                        _, _, pid, tgid = proc_events._FORK.unpack_from(data)
                    else:
                        assert what == proc_events.PROC_EVENT_EXIT, hex(what)
                        pid, tgid = proc_events._PIDS.unpack_from(data)
                    assert pid == tgid  # a thread's would differ
                    kinds.add(what)
        assert kinds == {proc_events.PROC_EVENT_FORK, proc_events.PROC_EVENT_EXIT}
    finally:
        events.close()


def in_proc(pid: int) -> bool:
    return pid in procfs.list_pids()


def test_every_process_is_what_a_listing_of_proc_shows(
    driver: subprocess.Popen[str],
) -> None:
    """The whole machine's pids, kept from events, agree with /proc for each kind of
    change: a process that stays, one forked and reaped between two looks, a zombie
    (listed until reaped, as /proc lists it), a kill, and a storm that overflows the
    socket (then /proc is listed again)."""
    every = EveryProcess()
    try:
        assert driver.pid in every.pids()
        kept = ask(driver, "keep", 0)
        gone = ask(driver, "flash", 1)
        pids = every.pids()
        assert kept in pids and gone not in pids
        zombie = ask(driver, "zombie", 0)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{zombie}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        time.sleep(0.05)  # its exit event is queued by now
        assert in_proc(zombie) and zombie in every.pids()  # exited, unreaped: still listed
        ask(driver, "reap", 0)
        assert not in_proc(zombie) and zombie not in every.pids()
        outsider = subprocess.Popen(["sleep", "60"])
        assert outsider.pid in every.pids()
        outsider.kill()
        outsider.wait()
        assert outsider.pid not in every.pids()
        every._events.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
        stays = ask(driver, "keep", 200)  # its fork lost in the storm
        assert stays in every.pids()
        assert every._events.overflows > 0
        mine = {p for p in procfs.list_pids() if p in every.pids()}
        assert {driver.pid, kept, stays} <= mine
    finally:
        every.close()


def test_a_collector_of_every_process_sees_them_start_and_exit() -> None:
    """The collector (with the connector, as root) shows a process started since the
    last tick, and marks one killed since as exited, as with a listing of /proc."""
    require_root()
    collector = Collector(system=False, gpu=False, resolve=False, count_connections=False)
    try:
        collector.ingest(TrafficSample(time.time(), 1.0, []))
        assert collector._every is not None  # the connector answered: it is what is tested
        born = subprocess.Popen(["sleep", "60"])
        snap = collector.ingest(TrafficSample(time.time(), 1.0, []))
        state = next(p for p in snap.processes if p.pid == born.pid)
        assert not state.exited and state.name == "sleep"
        born.kill()
        born.wait()
        snap = collector.ingest(TrafficSample(time.time(), 1.0, []))
        assert next(p for p in snap.processes if p.pid == born.pid).exited
    finally:
        collector.close()
