"""The /proc fast path agrees with psutil and never raises on hostile file contents."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import psutil
from hypothesis import given
from hypothesis import strategies as st

from nettop_ui import procfs


def test_stat_facts_match_psutil() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    time.sleep(0.3)  # let it finish exec and settle its memory
    files = procfs.ProcFiles()
    try:
        facts = files.stat(proc.pid)
        ps = psutil.Process(proc.pid)
        assert facts is not None
        assert facts.comm == "sleep"
        assert facts.ppid == os.getpid()
        assert procfs.create_time(facts.start_ticks) == ps.create_time()
        assert files.statm(proc.pid) == (ps.memory_info().vms, ps.memory_info().rss)
        assert facts.threads == ps.num_threads()
        assert procfs.read_cmdline(proc.pid) == ["sleep", "30"]
        assert procfs.read_user(proc.pid) == ps.username()
    finally:
        files.close()
        proc.kill()
        proc.wait()


def test_comm_with_parentheses_and_spaces() -> None:
    raw = b"42 (a) b (c)) S 1 42 42 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 2 0 99 1000 10 x"
    facts = procfs.parse_stat(raw)
    assert facts is not None
    assert facts.comm == "a) b (c)"
    assert (facts.ppid, facts.cpu_ticks, facts.threads, facts.start_ticks) == (1, 10, 2, 99)
    raw = b"42 (x) S 1 42 42 0 -1 4194560 11 5 13 6 7 3 0 0 20 0 2 0 99 1000 10 x"
    facts = procfs.parse_stat(raw)
    assert facts is not None
    assert (facts.minor_faults, facts.major_faults) == (11, 13)  # not the children's 5 and 6


def test_io_parse() -> None:
    raw = b"rchar: 5\nwchar: 6\nsyscr: 1\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\n"
    assert procfs.parse_io(raw) == procfs.IoFacts(4096, 8192, 5, 6)
    assert procfs.parse_io(b"read_bytes: 1\nwrite_bytes: 2\n") is None  # no rchar/wchar
    assert procfs.parse_io(b"read_bytes: x\nwrite_bytes: 1\n") is None
    assert procfs.parse_io(b"") is None


@given(st.binary(max_size=600))
def test_parse_stat_never_raises(raw: bytes) -> None:
    procfs.parse_stat(raw)


@given(st.binary(max_size=600))
def test_parse_io_and_statm_never_raise(raw: bytes) -> None:
    procfs.parse_io(raw)
    procfs.parse_statm(raw)


@given(st.binary(min_size=1, max_size=15).filter(lambda b: b"\0" not in b and b"\n" not in b))
def test_any_comm_bytes_round_trip_visibly(comm: bytes) -> None:
    raw = b"7 (" + comm + b") S 1 7 7 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 100 2 x"
    facts = procfs.parse_stat(raw)
    assert facts is not None
    assert facts.comm == comm.decode("utf-8", errors="backslashreplace")


def test_socket_counts_agree_with_psutil() -> None:
    """The sockets this process holds, counted from /proc/net and the fd links (and the
    cached count), are the ones psutil lists for it."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        expected = len(psutil.Process().net_connections("inet"))
        assert expected >= 4
        counts = procfs.inet_socket_counts()
        assert counts is not None and counts[os.getpid()] == expected
        cached = procfs.SocketCounter().count()
        assert cached is not None and cached[os.getpid()] == expected
        # A tree's count asks each of its sockets its protocol: the same, and a UNIX
        # socket is not one of them.
        unix = socket.socketpair()
        assert procfs.own_inet_socket_counts([os.getpid()]) == {os.getpid(): expected}
        for s in unix:
            s.close()
    finally:
        for s in (listener, client, accepted, udp):
            s.close()


def test_socket_counter_follows_sockets_opened_and_closed_reading_only_what_changed() -> None:
    """Real sockets opened, closed, swapped (one closed and one opened between two counts,
    the fd count unchanged) and held by a child: each count is psutil's; and a count
    reads the fd links of the processes that changed, not of every process."""
    counter = procfs.SocketCounter(full_every_s=1e9)  # the safety net out of the way
    me = psutil.Process()

    def check() -> None:
        counts = counter.count()
        assert counts is not None
        assert counts.get(me.pid, 0) == len(me.net_connections("inet"))

    check()
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    check()
    client.close()
    check()
    accepted.close()  # its fd number is free: the next socket takes it, the count is the same
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    check()
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(listener.getsockname()[1])],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        counts = counter.count()
        assert counts is not None and counts.get(child.pid) == 2  # its connection and UDP
        check()
        counter.count()
        assert counter.links_read < len(procfs.list_pids()) / 2, "read every process's links"
    finally:
        child.kill()
        child.wait()
        listener.close()
        udp.close()
    check()


# Holds a TCP connection to the port in argv[1] and a UDP socket until killed.
HOLDER = """
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
print("ready", flush=True)
time.sleep(60)
"""


# Runs in a child: its fd limit leaves ProcFiles room for only ROOM held files. Full
# reads of ROOM processes fill that room; then every one's schedstat, the file read at
# each scan of each process, is read. Prints how many held files are schedstat files,
# and how many files are held (/proc/self/fd's links: what the kernel holds open).
HOT_FIRST = r"""
import os, resource, subprocess
from nettop_ui import procfs

ROOM = 40
limit = procfs.HELD_FD_MIN + 1024 + ROOM  # _fd_room keeps 1024 spare above HELD_FD_MIN
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
kids = [subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL) for _ in range(ROOM)]
files = procfs.ProcFiles()
for kid in kids:
    for name in ("stat", "statm", "io", "cgroup"):
        assert files.read(kid.pid, name) is not None
for kid in kids:
    assert files.read(kid.pid, "schedstat") is not None
links = set()
for fd in os.listdir("/proc/self/fd"):
    try:
        links.add(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # the listing's own descriptor, closed by now
        pass
read = {f"/proc/{kid.pid}/{name}": name for kid in kids for name in procfs.PER_PROCESS}
held = [read[link] for link in links if link in read]
print(held.count("schedstat"), len(held))
for kid in kids:
    kid.kill()
"""


def test_files_read_every_scan_are_held_first_at_the_fd_limit() -> None:
    """Past the fd limit's room, the file read at every scan (schedstat) is held in place
    of files read one scan in ten: at 10,000 processes the room ran out after the first
    few thousand, and every scan opened the rest's schedstat afresh."""
    res = subprocess.run(
        [sys.executable, "-c", HOT_FIRST], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    held_schedstat, held = map(int, res.stdout.split())
    assert held == 40  # the room, all used
    assert held_schedstat == 40
