"""Linux fast path for per-process facts: three small /proc reads per process per tick.

psutil reads six or more files per process; with thousands of processes at one tick
a second that is most of a core. Here each tick reads only /proc/PID/stat (comm, ppid,
CPU time, threads, start time), /proc/PID/statm (memory) and /proc/PID/io (disk
and syscall bytes), with raw os.read calls, through `ProcFiles`, which keeps those files open
between ticks. What rarely changes (cmdline, owner) is read when a process is first
seen and again when its comm changes (an exec); its cgroup (nettop_ui.services) then
too, and once every ten scans in turns.

`create_time` is computed exactly as psutil computes it (boot time + start ticks /
CLK_TCK), so the (pid, create_time) identity matches psutil.Process(pid).create_time().
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import pwd
import resource
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import psutil

from nettop_ui import inetdiag

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# The files a scan reads per process (cgroup: when first seen, then one scan in ten).
PER_PROCESS = ("schedstat", "stat", "statm", "io", "cgroup")
# Read at every scan of every process; the others only when it ran, or one scan in ten.
# Near the fd limit, holding these open comes first (ProcFiles._hold).
EVERY_SCAN = frozenset({"schedstat"})
HELD_FD_MIN = 1024  # held files get descriptor numbers from here up (see ProcFiles)
HELD_FD_MAX = 32768  # at most this many held at once, by all ProcFiles together
# The errors that mean the process is gone. Any other (EMFILE, EAGAIN, ENOMEM, ...)
# means only that it could not be read this time.
GONE = frozenset({errno.ENOENT, errno.ESRCH})


@dataclass(slots=True)
class StatFacts:
    """The fields of /proc/PID/stat nettop-ui uses."""

    comm: str
    ppid: int
    threads: int
    start_ticks: int
    vms_bytes: int
    rss_bytes: int  # approximate since Linux 6.2 (see parse_statm)
    minor_faults: int = 0  # minflt: page faults served without the disk (page cache, zeroed)
    major_faults: int = 0  # majflt: page faults that waited for the disk
    user_ticks: int = 0  # utime: CPU time in user mode since the process started
    system_ticks: int = 0  # stime: in the kernel on its behalf
    reaped_ticks: int = 0  # cutime+cstime: CPU of the children it has waited for (reaped)

    @property
    def cpu_ticks(self) -> int:
        return self.user_ticks + self.system_ticks

    @property
    def faults(self) -> int:
        return self.minor_faults + self.major_faults


def _read(path: str, size: int = 4096) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def parse_stat(raw: bytes) -> StatFacts | None:
    """Parse /proc/PID/stat; None if it is not in the kernel's format.

    The comm sits between the first '(' and the *last* ')', since a comm may itself
    contain parentheses, spaces and any byte but NUL.
    """
    start, end = raw.find(b"("), raw.rfind(b")")
    if start < 0 or end < start:
        return None
    fields = raw[end + 2 :].split()
    if len(fields) < 22:
        return None
    try:
        return StatFacts(
            comm=raw[start + 1 : end].decode("utf-8", errors="backslashreplace"),
            ppid=int(fields[1]),
            threads=int(fields[17]),
            start_ticks=int(fields[19]),
            vms_bytes=int(fields[20]),
            rss_bytes=int(fields[21]) * PAGE_SIZE,
            minor_faults=int(fields[7]),
            major_faults=int(fields[9]),
            user_ticks=int(fields[11]),
            system_ticks=int(fields[12]),
            reaped_ticks=int(fields[13]) + int(fields[14]),
        )
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class IoFacts:
    """The counters of /proc/PID/io nettop-ui uses, in bytes since the process started."""

    read_bytes: int  # reached the block layer (a read served from the page cache: not)
    write_bytes: int  # sent towards the block layer (dirtied pages, written back later)
    # rchar: every byte read(2) and friends returned, cached or not; None: unknown (psutil
    # off Linux)
    syscall_read_bytes: int | None
    syscall_write_bytes: int | None  # wchar: every byte write(2) and friends were given


_IO_KEYS = {b"read_bytes": 0, b"write_bytes": 1, b"rchar": 2, b"wchar": 3}


def parse_io(raw: bytes) -> IoFacts | None:
    """The block-layer and syscall bytes of /proc/PID/io; None if any is missing."""
    found: list[int | None] = [None] * len(_IO_KEYS)
    for line in raw.splitlines():
        key, _, value = line.partition(b":")
        at = _IO_KEYS.get(key)
        if at is not None:
            try:
                found[at] = int(value)
            except ValueError:
                return None
    if any(v is None for v in found):
        return None
    return IoFacts(*found)  # type: ignore[arg-type]


def parse_statm(raw: bytes) -> tuple[int, int] | None:
    """(vms_bytes, rss_bytes) from /proc/PID/statm.

    Since Linux 6.2 the RSS in /proc/PID/stat is an approximate per-CPU counter read
    (off by hundreds of KiB); statm sums it precisely, as psutil does.
    """
    fields = raw.split()
    if len(fields) < 2:
        return None
    try:
        return int(fields[0]) * PAGE_SIZE, int(fields[1]) * PAGE_SIZE
    except ValueError:
        return None


def read_cmdline(pid: int) -> list[str]:
    try:
        raw = _read(f"/proc/{pid}/cmdline", 1 << 20)
    except OSError:
        return []
    args = raw.split(b"\0")
    if args and args[-1] == b"":
        args.pop()
    return [a.decode("utf-8", errors="backslashreplace") for a in args]


@lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def read_user(pid: int) -> str | None:
    try:
        return user_name(os.stat(f"/proc/{pid}").st_uid)
    except OSError:
        return None


def read_stat(pid: int) -> StatFacts | None:
    """/proc/PID/stat read once (not held); None when it is gone or unreadable."""
    try:
        return parse_stat(_read(f"/proc/{pid}/stat"))
    except OSError:
        return None


def list_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


@lru_cache(maxsize=1)
def boot_time() -> float:
    return float(psutil.boot_time())


def boot_ticks() -> float:
    """Now, in the clock of /proc/PID/stat's start time: ticks since boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) * CLK_TCK


def create_time(start_ticks: int) -> float:
    """Process start as Unix time, the same float psutil.Process.create_time() returns."""
    return (start_ticks / CLK_TCK) + boot_time()


# -- held files -------------------------------------------------------------------------


def _fd_room() -> int:
    """How many files may be held: raises the soft fd limit towards the hard one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = HELD_FD_MIN + HELD_FD_MAX + 1024
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
            if new > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            return HELD_FD_MAX
        return max(0, min(HELD_FD_MAX, soft - HELD_FD_MIN - 1024))
    return 0


class ProcFiles:
    """Reads /proc/PID files, keeping them open between ticks and re-reading with pread.

    On a /proc file, open and close cost as much as the read itself; held open, the
    files a scan reads for 2,000 processes cost half the CPU. A held file stays bound
    to the process it was opened for: once that one has gone, reading it fails, and
    then the file is closed and the path opened afresh, so a reused PID is never read
    through an old process's file. `forget(pid)` closes a vanished process's files.

    Held files are moved to descriptor numbers from HELD_FD_MIN up, so that thousands
    of them never push the sockets and pipes opened elsewhere past what select() can
    watch. Files are held only while the fd limit leaves room (the soft limit is raised
    towards the hard one once); beyond that each read opens and closes as before. With
    no room left, a file of EVERY_SCAN takes the place of the oldest held other one:
    at 10,000 processes the room runs out, and which files fill it decides how many
    opens a scan costs.
    """

    _held_total: ClassVar[int] = 0  # by every instance: the fd limit is per process
    _instances: ClassVar[weakref.WeakSet[ProcFiles]] = weakref.WeakSet()

    def __init__(self) -> None:
        self._fds: dict[tuple[int, str], int] = {}
        self._seldom: dict[tuple[int, str], None] = {}  # held, not EVERY_SCAN; oldest first
        self._room = _fd_room()
        self._finalizer = weakref.finalize(self, ProcFiles._close_all, self._fds, self._seldom)
        ProcFiles._instances.add(self)

    @property
    def held_fds(self) -> dict[tuple[int, str], int]:
        """(pid, name) -> the descriptor held open for /proc/PID/NAME; read only."""
        return self._fds

    @classmethod
    def held(cls) -> set[int]:
        """Every descriptor held open by any instance."""
        return {fd for files in list(cls._instances) for fd in files._fds.values()}

    def read(self, pid: int, name: str, size: int = 4096) -> bytes | None:
        """The contents of /proc/PID/NAME (at most `size` bytes); None if unreadable."""
        fd = self._fds.get((pid, name))
        if fd is not None:  # the common case, without `_read`'s call (once per process)
            try:
                return os.pread(fd, size, 0)
            except OSError:  # gone: `_read` closes it, and opens the path afresh
                pass
        try:
            return self._read(pid, name, size)
        except OSError:
            return None

    def _read(self, pid: int, name: str, size: int = 4096) -> bytes:
        key = (pid, name)
        fd = self._fds.get(key)
        if fd is not None:
            try:
                return os.pread(fd, size, 0)
            except OSError:  # that process is gone (or no longer ours to read)
                self._close(key)
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, size)
        except OSError:
            os.close(fd)
            raise
        self._hold(key, fd)
        return data

    def stat(self, pid: int) -> StatFacts | None:
        """/proc/PID/stat; None when the process is gone (or the file is not in the
        kernel's format). Raises OSError when it could not be read for another reason
        (out of file descriptors, say): then the process may well be alive."""
        try:
            raw = self._read(pid, "stat")
        except OSError as exc:
            if exc.errno in GONE:
                return None
            raise
        return parse_stat(raw)

    def statm(self, pid: int) -> tuple[int, int] | None:
        raw = self.read(pid, "statm")
        return None if raw is None else parse_statm(raw)

    def io(self, pid: int) -> IoFacts | None:
        raw = self.read(pid, "io")
        return None if raw is None else parse_io(raw)

    def _hold(self, key: tuple[int, str], fd: int) -> None:
        """Keep `fd` (moved up to HELD_FD_MIN or beyond) if there is room; else close it."""
        held = -1
        if ProcFiles._held_total >= self._room and key[1] in EVERY_SCAN and self._seldom:
            self._close(next(iter(self._seldom)))
        if ProcFiles._held_total < self._room:
            with contextlib.suppress(OSError):
                held = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HELD_FD_MIN)
        os.close(fd)
        if held >= 0:
            self._fds[key] = held
            if key[1] not in EVERY_SCAN:
                self._seldom[key] = None
            ProcFiles._held_total += 1

    def _close(self, key: tuple[int, str]) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            self._seldom.pop(key, None)
            ProcFiles._held_total -= 1
            with contextlib.suppress(OSError):
                os.close(fd)

    def forget(self, pid: int, names: tuple[str, ...] = PER_PROCESS) -> None:
        """Close the files held for `pid` (the process has gone)."""
        for name in names:
            self._close((pid, name))

    def close(self) -> None:
        """Close every held file."""
        self._finalizer()

    @staticmethod
    def _close_all(fds: dict[tuple[int, str], int], seldom: dict[tuple[int, str], None]) -> None:
        ProcFiles._held_total -= len(fds)
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        fds.clear()
        seldom.clear()

    def __len__(self) -> int:
        return len(self._fds)


# -- sockets ----------------------------------------------------------------------------

INET_TABLES = ("tcp", "tcp6", "udp", "udp6")
UDP_TABLES = ("udp", "udp6")


def inet_rows(tables: Collection[str] = INET_TABLES) -> list[list[bytes]] | None:
    """The fields of every line of /proc/net/{tcp,tcp6,udp,udp6} (of `tables`; the
    socket's `local_address`, `rem_address` and `inode` are fields 1, 2 and 9); None when
    they cannot be read."""
    rows = []
    for table in tables:
        try:
            with open(f"/proc/net/{table}", "rb") as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:  # no IPv6
            continue
        except OSError:
            return None
        rows += [fields for line in lines if len(fields := line.split(maxsplit=10)) > 9]
    return rows


def inet_inodes() -> set[int] | None:
    """The inodes of every TCP/UDP socket in /proc/net; None when they cannot be read.
    The TCP ones come from one inet_diag dump where the kernel has it (the same sockets
    but for those no process holds, at a fraction of the cost: nettop_ui.inetdiag)."""
    tcp = inetdiag.tcp_inodes()
    rows = inet_rows(INET_TABLES if tcp is None else UDP_TABLES)
    if rows is None:
        return None
    found = {int(fields[9]) for fields in rows if fields[9].isdigit()}
    return found if tcp is None else found | tcp


def proc_net_address(text: bytes) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`0100007F:1F90` (an address in /proc/net/tcp: 32-bit words in host order) ->
    (127.0.0.1, 8080)."""
    hex_addr, _, hex_port = text.partition(b":")
    raw = bytes.fromhex(hex_addr.decode())
    words = [int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, len(raw), 4)]
    packed = b"".join(w.to_bytes(4, "big") for w in words)
    return ipaddress.ip_address(packed), int(hex_port, 16)


def host_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of this network namespace's interfaces."""
    found = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            with contextlib.suppress(ValueError):
                found.add(ipaddress.ip_address(a.address.split("%", 1)[0]))
    return found


def loopback_socket_pids(pids: Collection[int]) -> set[int]:
    """Those of `pids` holding a TCP/UDP socket connected to this host itself
    (127.0.0.0/8, ::1, or an address of one of its interfaces): traffic both of whose
    ends are here, which goes over the loopback device."""
    rows = inet_rows()
    if rows is None or not pids:
        return set()
    here = host_addresses()
    inodes = set()
    for fields in rows:
        try:
            addr, port = proc_net_address(fields[2])
        except ValueError:
            continue
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if port and (addr.is_loopback or addr in here) and fields[9].isdigit():
            inodes.add(int(fields[9]))
    inodes.discard(0)
    return {pid for pid in pids if inodes & (pid_sockets(pid) or set())}


def pid_sockets(pid: int) -> set[int] | None:
    """The socket inodes among /proc/PID/fd's links; None when they cannot be read (gone,
    or not ours to look into). This process's own held /proc files (`ProcFiles`) are
    skipped: thousands of readlinks that could never find a socket."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    if pid == os.getpid():
        skip = {str(fd) for fd in ProcFiles.held()}
        fds = [fd for fd in fds if fd not in skip]
    found = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            inode = socket_inode(os.readlink(f"/proc/{pid}/fd/{fd}"))
            if inode is not None:
                found.add(inode)
    return found


def socket_inode(link: str) -> int | None:
    """`socket:[12345]` (an /proc/PID/fd link target) -> 12345."""
    if link.startswith("socket:[") and link.endswith("]"):
        digits = link[8:-1]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return None


def socket_owners(
    wanted: Collection[int] | None = None, pids: Collection[int] | None = None
) -> dict[int, int]:
    """Socket inode -> the lowest pid holding it, over every /proc/PID/fd this user can
    read (of `pids` only, when given); only the inodes in `wanted`, when given."""
    owners: dict[int, int] = {}
    # Ascending: the first holder found is the lowest.
    for pid in sorted(list_pids() if pids is None else pids):
        for inode in pid_sockets(pid) or ():
            if wanted is None or inode in wanted:
                owners.setdefault(inode, pid)
    return owners


def inet_socket_counts(pids: Collection[int] | None = None) -> dict[int, int] | None:
    """Open TCP/UDP sockets per pid, counted as psutil.net_connections("inet") counts them:
    each socket once, for the first process found holding it (of `pids`, when given)."""
    inodes = inet_inodes()
    if inodes is None:
        return None
    return dict(Counter(socket_owners(inodes, pids).values()))


Fingerprint = tuple[int, int]  # /proc/PID/fd's size (its fds) and inode: SocketCounter
Held = tuple[Fingerprint, frozenset[int]]  # and the socket inodes it found there

INET_PROTOCOLS = frozenset({b"TCP", b"TCPv6", b"UDP", b"UDPv6"})  # sockprotoname's


def own_inet_socket_counts(pids: Collection[int]) -> dict[int, int] | None:
    """`inet_socket_counts` for a few processes (a `run` tree) without reading the
    machine's socket tables (tens of milliseconds with thousands of connections): each of
    their sockets is asked its protocol (the `system.sockprotoname` attribute of the fd
    link). A TCP socket neither bound nor connected counts too (the tables do not list
    it). None where the kernel has no such attribute."""
    own, skip = os.getpid(), {str(fd) for fd in ProcFiles.held()}
    seen: set[int] = set()
    counts: dict[int, int] = {}
    for pid in sorted(pids):  # ascending: a shared socket counts for the lowest pid
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            if pid == own and fd in skip:
                continue
            link = f"/proc/{pid}/fd/{fd}"
            try:
                inode = socket_inode(os.readlink(link))
                if inode is None or inode in seen:
                    continue
                proto = os.getxattr(link, "system.sockprotoname").rstrip(b"\0")
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.ENODATA):
                    return None
                continue
            if proto in INET_PROTOCOLS:
                seen.add(inode)
                counts[pid] = counts.get(pid, 0) + 1
    return counts


class SocketCounter:
    """`inet_socket_counts`, reading the fd links only of the processes that changed.

    Finding who holds which socket means reading the fd links of every process (~50 ms
    for 2,000 of them on an idle machine), while the sockets themselves are listed in
    four small tables. So each process's socket inodes are remembered with its fd table's
    fingerprint (the size of /proc/PID/fd, its number of open fds on Linux 6.2 and later,
    and the directory's inode, new for a new process under a reused pid), and a count
    reads the tables, stats each process, and reads the links again only of a process
    whose fingerprint changed. A process the caller knows has not run since the previous
    count (`quiet`: a single-threaded one whose /proc/PID/schedstat reads the same, see
    Collector) cannot have changed its fd table, so it is not even stat'ed: its sockets
    are kept. A listed socket that then has no known holder (one file closed and a
    socket opened between two counts) is searched for among the processes that ran
    since their links were read (`_unsure`), those holding sockets first, until found.
    Every `full_every_s` seconds (at a count) all links are read again: a descriptor
    replaced by dup2, a holder found out of pid order, and an fd table shared without
    sharing threads (clone with CLONE_FILES but not CLONE_THREAD: rare), which another
    process can change while a quiet one sleeps. In seconds, not counts: the psutil
    backend counts every tick, and a walk of 2,000 processes (~80 ms) every 30 counts
    was most of its socket counting.
    `links_read`: the processes whose links the last count read; `stats`: the processes
    it stat'ed.
    """

    def __init__(
        self, full_every_s: float = 150.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.full_every_s = full_every_s
        self._clock = clock
        self._walked_at = 0.0
        self.links_read = self.stats = 0
        self._held: dict[int, Held] = {}
        self._unsure: set[int] = set()  # ran with as many fds since their links were read
        self._unowned: set[int] = set()  # listed sockets no readable process holds
        # Before Linux 6.2 /proc/PID/fd has size 0: no count, so every process is read.
        # Where the kernel counts, 0 is a real count (kernel threads: most pids on a quiet
        # machine), not a reason to read again.
        try:
            self._fd_counts = os.stat("/proc/self/fd").st_size > 0
        except OSError:
            self._fd_counts = False

    def count(
        self, pids: Collection[int] | None = None, quiet: Collection[int] = ()
    ) -> dict[int, int] | None:
        """Open TCP/UDP sockets per pid. `pids`: the processes there are (None: /proc is
        listed); `quiet`: those of them that have not run since the previous count."""
        inodes = inet_inodes()
        if inodes is None:
            return None
        now = self._clock()
        full = not self._held or now - self._walked_at >= self.full_every_s
        self.links_read = self.stats = 0
        self._refresh(list_pids() if pids is None else pids, every=full, quiet=quiet)
        owners = self._owners(inodes)
        missing = inodes - owners.keys() - self._unowned
        if missing and not full:
            self._search(missing)
            owners = self._owners(inodes)
        self._unowned = inodes - owners.keys()
        if full:
            self._walked_at = now
        return dict(Counter(owners.values()))

    def _refresh(self, pids: Collection[int], every: bool, quiet: Collection[int]) -> None:
        """Stat every process but the quiet ones; read the links of the new and changed
        ones (`every`: all, quiet or not)."""
        held: dict[int, Held] = {}
        unsure: set[int] = set()
        for pid in pids:
            known = self._held.get(pid)
            if known is not None and not every and pid in quiet:
                held[pid] = known
                if pid in self._unsure:
                    unsure.add(pid)
                continue
            self.stats += 1
            try:
                st = os.stat(f"/proc/{pid}/fd")
            except OSError:
                continue
            fingerprint = (st.st_size, st.st_ino)
            if every or known is None or known[0] != fingerprint or not self._fd_counts:
                known = self._read(pid, fingerprint)
            else:
                unsure.add(pid)
            if known is not None:
                held[pid] = known
        self._held, self._unsure = held, unsure

    def _search(self, missing: set[int]) -> None:
        """Read the links of the unsure processes until every socket in `missing` has a
        holder: those holding sockets first, as a new one is mostly opened by a process
        that has others. (One opened by a process gone since, a short-lived client's,
        has none: then every unsure process is read.)"""
        for pid in sorted(self._unsure, key=lambda pid: not self._held[pid][1]):
            if not missing:
                return
            self._unsure.discard(pid)
            known = self._read(pid, self._held[pid][0])
            if known is None:
                del self._held[pid]
                continue
            self._held[pid] = known
            missing -= known[1]

    def _read(self, pid: int, fingerprint: Fingerprint) -> Held | None:
        self.links_read += 1
        sockets = pid_sockets(pid)
        return None if sockets is None else (fingerprint, frozenset(sockets))

    def _owners(self, inodes: set[int]) -> dict[int, int]:
        """Socket inode -> the lowest pid known to hold it."""
        owners: dict[int, int] = {}
        for pid in sorted(self._held):
            sockets = self._held[pid][1]
            if sockets:
                for inode in sockets & inodes:
                    owners.setdefault(inode, pid)
        return owners
