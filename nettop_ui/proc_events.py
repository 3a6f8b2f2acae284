"""Following one process tree's new descendants without scanning every process, and
every process without listing /proc each tick (`EveryProcess`).

`run`/`attach` need each tick the tree's processes only. Finding new descendants by
reading every process's parent each tick costs as much as the rest of a tick together
on a busy machine, so `TreeScope` learns of them from the kernel's proc connector
(netlink, NETLINK_CONNECTOR / CN_IDX_PROC): one message per fork, exec and exit,
system-wide, read without blocking once per tick. Only a fork whose parent is in the
tree adds a process, so the collector reads the tree's /proc files and nothing else.

The connector works only in the initial PID, user and network namespaces (older
kernels also want CAP_NET_ADMIN); where the kernel refuses it, or does not answer the
subscription, `TreeScope.pids` returns None and the collector scans every process as
before (the caller says so once). A socket filter has the kernel queue only the forks
and exits of whole processes, so a busy machine's threads and execs cost nothing. When the
socket overflows (a fork storm faster than the ticks) the tree is found once by a full
scan of the parents, and the events go on from there.

A process forked and gone between two ticks is never read, but its fork was seen:
`parent_of` names its parent for a few ticks after it exits, so the bytes a backend
counted for it still join the tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import random
import select
import socket
import struct
import time
import weakref

from nettop_ui import procfs

NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE = 1, 2
PROC_EVENT_NONE, PROC_EVENT_FORK, PROC_EVENT_EXIT = 0x0, 0x1, 0x80000000
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_FORK = struct.Struct("=iiii")  # parent pid, parent tgid, child pid, child tgid
_PIDS = struct.Struct("=ii")  # (exit, ack) pid and tgid; an ack's first word is its error
ACK_WAIT_S = 0.5  # how long the kernel may take to confirm the subscription
RECV_BUFFER = 4 << 20  # room for ~100,000 events between two ticks
# The initial namespaces' inode numbers, fixed by the kernel (include/linux/proc_ns.h).
PROC_USER_INIT_INO, PROC_PID_INIT_INO = 0xEFFFFFFD, 0xEFFFFFFC
SO_ATTACH_FILTER = 26
# A classic BPF socket filter: the kernel queues only what `read` keeps (the fork and the
# exit of a whole process, and the subscription's answer), not every exec, comm change
# and thread. Offsets into a datagram: nlmsghdr (16) + cn_msg (20) = 36, the event's
# `what`; its data from 52. Loads are big-endian, so the little-endian `what` values
# appear byte-swapped; comparing two loaded fields needs no swap.
_LD, _JEQ, _JEQ_X, _TAX, _RET = 0x20, 0x15, 0x1D, 0x07, 0x06
_FILTER = (
    (_LD, 0, 0, 36),  # what
    (_JEQ, 10, 0, 0x00000000),  # PROC_EVENT_NONE (the answer): keep
    (_JEQ, 1, 0, 0x01000000),  # PROC_EVENT_FORK
    (_JEQ, 4, 9, 0x00000080),  # PROC_EVENT_EXIT, else drop
    (_LD, 0, 0, 60),  # fork: child pid ...
    (_TAX, 0, 0, 0),
    (_LD, 0, 0, 64),  # ... is its tgid: a process, not a thread
    (_JEQ_X, 4, 5, 0),
    (_LD, 0, 0, 52),  # exit: pid ...
    (_TAX, 0, 0, 0),
    (_LD, 0, 0, 56),  # ... is its tgid: the whole process
    (_JEQ_X, 0, 1, 0),
    (_RET, 0, 0, 0xFFFFFFFF),
    (_RET, 0, 0, 0),
)
KEEP_EXITED_TICKS = 5  # ticks an exited process's parent stays known (late bytes)


class Unavailable(Exception):
    """The proc connector cannot be used here; the message says why, in a few words."""


class ProcConnector:
    """A subscription to the kernel's process events (fork and exit, every process)."""

    def __init__(self) -> None:
        if not _initial_namespaces():
            raise Unavailable("proc connector not available in a PID or user namespace")
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as exc:
            raise Unavailable(f"no proc connector ({os.strerror(exc.errno or 0)})") from None
        try:
            with contextlib.suppress(OSError):  # a smaller buffer only overflows sooner
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            self.sock.bind((0, CN_IDX_PROC))
            self._subscribe()
            with contextlib.suppress(OSError):  # without it, read() drops the rest itself
                _attach_filter(self.sock)
        except OSError as exc:
            self.sock.close()
            raise Unavailable(f"proc connector refused ({os.strerror(exc.errno or 0)})") from None
        except Unavailable:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.overflows = 0  # how often the kernel dropped events (the socket was full)

    def _subscribe(self) -> None:
        """Ask for the events and wait for the kernel's answer, among the other listeners'
        events: an error, or on older kernels without CAP_NET_ADMIN nothing at all."""
        # The answer carries our ack + 1 (its seq is the kernel's own event counter).
        ack = random.randrange(1 << 31)
        op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, ack, len(op), 0) + op
        self.sock.send(_NLMSG.pack(_NLMSG.size + len(cn), NLMSG_DONE, 0, 0, 0) + cn)
        deadline = time.monotonic() + ACK_WAIT_S
        while (left := deadline - time.monotonic()) > 0 and select.select(
            [self.sock], [], [], left
        )[0]:
            for what, data, answer in _events(self.sock.recv(65536)):
                if what == PROC_EVENT_NONE and answer == ack + 1:
                    err = _PIDS.unpack_from(data)[0]
                    if err:
                        raise Unavailable(f"proc connector refused ({os.strerror(err)})")
                    return
        raise Unavailable("proc connector gave no answer (older kernels: CAP_NET_ADMIN)")

    def read(self) -> list[tuple[int, int, int]]:
        """The events since the last read, without waiting: (what, pid, parent pid) for
        the fork of a new process and the exit of a whole one (threads are left out)."""
        found: list[tuple[int, int, int]] = []
        while True:
            try:
                raw = self.sock.recv(65536)
            except BlockingIOError:
                return found
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overflows += 1  # the kernel dropped some: the caller rescans
                continue
            for what, data, _ in _events(raw):
                if what == PROC_EVENT_FORK:
                    _, ptgid, child_pid, child_tgid = _FORK.unpack_from(data)
                    if child_pid == child_tgid:
                        found.append((what, child_tgid, ptgid))
                elif what == PROC_EVENT_EXIT:
                    pid, tgid = _PIDS.unpack_from(data)
                    if pid == tgid:
                        found.append((what, tgid, 0))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            op = struct.pack("=I", PROC_CN_MCAST_IGNORE)
            cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
            self.sock.send(_NLMSG.pack(_NLMSG.size + len(cn), NLMSG_DONE, 0, 0, 0) + cn)
        self.sock.close()


def _attach_filter(sock: socket.socket) -> None:
    code = b"".join(struct.pack("=HBBI", *op) for op in _FILTER)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = struct.pack("@HP", len(_FILTER), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def _initial_namespaces() -> bool:
    """Whether this process is in the initial PID and user namespaces: the kernel sends
    process events only there (and their pids are the initial namespace's)."""
    try:
        pid_ns, user_ns = (os.stat(f"/proc/self/ns/{ns}").st_ino for ns in ("pid", "user"))
    except OSError:
        return False
    return (pid_ns, user_ns) == (PROC_PID_INIT_INO, PROC_USER_INIT_INO)


def _events(raw: bytes) -> list[tuple[int, memoryview, int]]:
    """(what, event data, the connector message's ack) of each proc event in a datagram."""
    found: list[tuple[int, memoryview, int]] = []
    view, at = memoryview(raw), 0
    while at + _NLMSG.size <= len(raw):
        length, kind = _NLMSG.unpack_from(raw, at)[:2]
        if length < _NLMSG.size:
            break
        body = at + _NLMSG.size
        if kind not in (NLMSG_NOOP, NLMSG_ERROR) and body + _CN_MSG.size + _EVENT.size <= len(raw):
            idx, val, _, ack = _CN_MSG.unpack_from(raw, body)[:4]
            if (idx, val) == (CN_IDX_PROC, CN_VAL_PROC):
                event = body + _CN_MSG.size
                what = _EVENT.unpack_from(raw, event)[0]
                found.append((what, view[event + _EVENT.size : at + length], ack))
        at += (length + 3) & ~3
    return found


def descendants(root: int, known: set[int]) -> set[int]:
    """`root`, `known` and every process below any of them that is still there, from
    one read of every process's parent (/proc/PID/stat)."""
    children: dict[int, list[int]] = {}
    listed = set()
    for pid in procfs.list_pids():
        st = procfs.read_stat(pid)
        if st is not None:
            listed.add(pid)
            children.setdefault(st.ppid, []).append(pid)
    found, todo = set(), [root, *known]
    while todo:
        pid = todo.pop()
        if pid in listed and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


class TreeScope:
    """The processes of one tree, for the collector: `pids` to read each tick.

    With `include_children` False the tree is the root alone and no events are needed.
    `childless`: the root has no children yet (a held command), so no scan finds them.
    `fallback` says why the connector is not used (None: it is, or none is needed).
    """

    def __init__(self, root: int, include_children: bool = True, childless: bool = False):
        self.root = root
        self.fallback: str | None = None
        self._events: ProcConnector | None = None
        self._live: set[int] = {root}
        self._parents: dict[int, int] = {}  # pid -> parent, for pids forked in the tree
        self._exiting: set[int] = set()  # exited, not yet reaped (still in /proc)
        self._gone: dict[int, int] = {}  # pid -> ticks since it left /proc
        self._overflows = 0  # the connector's overflows the tree was last rescanned for
        if not include_children:
            return
        try:
            self._events = ProcConnector()
        except Unavailable as exc:
            self.fallback = str(exc)
            return
        # Subscribed first, then scanned once: a fork in between is in both, none in neither.
        if not childless:
            self._live = descendants(root, set()) | {root}

    def pids(self) -> list[int] | None:
        """The tree's processes to read this tick (a zombie until it is reaped: its
        files still hold its totals); None: no connector, read every process."""
        if self.fallback is not None:
            return None
        for pid, ticks in list(self._gone.items()):
            if ticks >= KEEP_EXITED_TICKS:
                del self._gone[pid]
                self._parents.pop(pid, None)
            else:
                self._gone[pid] = ticks + 1
        if self._events is not None:
            for what, pid, parent in self._events.read():
                if what == PROC_EVENT_FORK and parent in self._live:
                    self._live.add(pid)
                    self._parents[pid] = parent
                    self._gone.pop(pid, None)
                elif what == PROC_EVENT_EXIT and pid in self._live:
                    self._exiting.add(pid)
            if self._events.overflows != self._overflows:  # lost events: scan once
                self._overflows = self._events.overflows
                self._live = descendants(self.root, self._live) | {self.root}
        pids = sorted(self._live)
        for pid in [p for p in self._exiting if not os.path.exists(f"/proc/{p}")]:
            self._exiting.discard(pid)
            self._live.discard(pid)
            self._gone[pid] = 0
        return pids

    def wants(self, pid: int) -> bool:
        """Whether `pid` is (or was a moment ago) in the tree: its bytes belong to it."""
        return self.fallback is not None or pid in self._live or pid in self._gone

    def parent_of(self, pid: int) -> int | None:
        """The parent of a process forked in the tree, while it is known."""
        return self._parents.get(pid)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None


RELIST_EVERY = 60  # reads: /proc is listed anyway (a leader thread gone before its process)


class EveryProcess:
    """Every process's pid, for the collector's scan of the whole machine.

    /proc is listed once; from then on fork and exit events keep the set, so a tick does
    not list /proc (with 2,000 processes that is 1 to 3 ms, each pid's entry looked up
    in the dentry cache). An exited process stays until it is reaped, as a listing
    shows a zombie. /proc is listed again when the kernel dropped events and every
    RELIST_EVERY reads: the events cover whole processes, and a process whose leader
    thread exited before the others is gone for them but still in /proc.
    Raises `Unavailable` where the connector cannot be used (then list /proc each tick).
    """

    def __init__(self) -> None:
        self._events = ProcConnector()
        self._finalizer = weakref.finalize(self, self._events.close)
        self._live = set(procfs.list_pids())  # after subscribing: no fork falls between
        self._exiting: set[int] = set()  # exited, not yet reaped (still in /proc)
        self._overflows = 0
        self._reads = 0

    def pids(self) -> list[int]:
        """Every process now, in pid order (as /proc lists them)."""
        self._reads += 1
        try:
            events: list[tuple[int, int, int]] | None = self._events.read()
        except OSError:  # the socket failed: /proc tells
            events = None
        overflows = self._events.overflows
        if events is None or overflows != self._overflows or not self._reads % RELIST_EVERY:
            listed = procfs.list_pids()  # (out of fds: raises, and is listed next time)
            self._live, self._exiting, self._overflows = set(listed), set(), overflows
            return listed
        live, exiting = self._live, self._exiting
        for what, pid, _ in events:
            if what == PROC_EVENT_FORK:
                live.add(pid)
                exiting.discard(pid)  # a pid used again
            else:
                exiting.add(pid)
        for pid in [p for p in exiting if not os.path.exists(f"/proc/{p}")]:
            exiting.discard(pid)
            live.discard(pid)
        return sorted(live)

    def close(self) -> None:
        self._finalizer()
