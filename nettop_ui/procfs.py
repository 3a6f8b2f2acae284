"""Linux fast path for per-process facts: three small /proc reads per process per tick.

psutil reads six or more files per process; with thousands of processes at one tick
a second that is most of a core. Here each tick reads only /proc/PID/stat (comm, ppid,
CPU time, threads, start time), /proc/PID/statm (memory) and /proc/PID/io (disk
bytes), with raw os.read calls. What rarely changes (cmdline, owner) is read when a process is first
seen and again when its comm changes (an exec).

`create_time` is computed exactly as psutil computes it (boot time + start ticks /
CLK_TCK), so the (pid, create_time) identity matches psutil.Process(pid).create_time().
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from functools import lru_cache

import psutil

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(slots=True)
class StatFacts:
    """The fields of /proc/PID/stat nettop-ui uses."""

    comm: str
    ppid: int
    cpu_ticks: int  # utime + stime
    threads: int
    start_ticks: int
    vms_bytes: int
    rss_bytes: int


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
            cpu_ticks=int(fields[11]) + int(fields[12]),
            threads=int(fields[17]),
            start_ticks=int(fields[19]),
            vms_bytes=int(fields[20]),
            rss_bytes=int(fields[21]) * PAGE_SIZE,
        )
    except ValueError:
        return None


def parse_io(raw: bytes) -> tuple[int, int] | None:
    """(read_bytes, write_bytes) from /proc/PID/io: bytes that reached the disk layer."""
    read = write = None
    for line in raw.splitlines():
        key, _, value = line.partition(b":")
        try:
            if key == b"read_bytes":
                read = int(value)
            elif key == b"write_bytes":
                write = int(value)
        except ValueError:
            return None
    if read is None or write is None:
        return None
    return read, write


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


def read_statm(pid: int) -> tuple[int, int] | None:
    try:
        return parse_statm(_read(f"/proc/{pid}/statm"))
    except OSError:
        return None


def read_stat(pid: int) -> StatFacts | None:
    try:
        return parse_stat(_read(f"/proc/{pid}/stat"))
    except OSError:
        return None


def read_io(pid: int) -> tuple[int, int] | None:
    try:
        return parse_io(_read(f"/proc/{pid}/io"))
    except OSError:  # gone, or another user's process without root
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


def list_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


@lru_cache(maxsize=1)
def boot_time() -> float:
    return psutil.boot_time()


def create_time(start_ticks: int) -> float:
    """Process start as Unix time, the same float psutil.Process.create_time() returns."""
    return (start_ticks / CLK_TCK) + boot_time()
