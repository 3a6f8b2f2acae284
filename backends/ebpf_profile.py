"""`--profile`: off-CPU time and syscall counts per process, from kernel tracepoints.

Hooks (tracepoints only; this project's kernels refuse kprobes and fentry):
- `sched:sched_switch` runs in the task leaving a CPU. When it leaves blocked (state S,
  D or I: sleeping, waiting on I/O, a lock, a pipe, a socket) the time is noted per
  thread; when the same thread is switched in again, the gap is added to its process's
  off-CPU total, event count and maximum, and (with detail) to the thread's total. A
  thread that was only preempted (still runnable) is not blocked and is not counted.
  The gap ends at switch-in, so it includes the wait for a CPU after the wakeup; a gap
  still going on when user space reads is added as far as it goes (not as an event). Each
  gap is also filed by what it waited on: D state is disk; otherwise the syscall the
  thread last entered (noted per thread by sys_enter) names it: a file I/O syscall
  (denet's file_io category: read on a file, pipe or terminal, ...) is file, a network
  one is network, anything else (nanosleep, futex, poll, ...) is sleep.
- `raw_syscalls:sys_enter`, attached raw (its arguments as the kernel passes them,
  not first copied into a trace record: about 20 ns less per syscall here), counts every
  syscall per process and, with detail, per (process, syscall number).
- `sched:sched_process_fork` adds a watched process's children to the watched set, so
  the run/attach tree is followed in the kernel from each child's first instruction.

Scope. The TUI counts totals for every process and asks for detail (per thread, per
syscall) only for the process in its drill-down (`show`); `--json` asks for detail for
all; run/attach count only the watched tree (`watch`), with detail. Everything is
aggregated in the kernel in bounded LRU hashes (profile_prog.c; sizes below): beyond
them the least recently used entries are evicted and their counts lost. User space reads
the cumulative totals once per tick.

Loading. As the traffic program: backends/bpfload.py compiles and attaches it in a
short-lived helper with bcc and hands over the maps' and perf events' descriptors, so
neither bcc nor LLVM stays in this process; maps are read and written with the bpf()
syscall (backends/bpfmap.py). The raw tracepoint keeps it out of bpfload's cache.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from backends import bpfload
from backends.bpfmap import BpfMap
from backends.ebpf import _bcc_missing, _ensure_tracefs, _headers_present, _privileged
from nettop_ui.core import BackendError
from nettop_ui.profile import (
    ProcessProfile,
    ThreadOffCpu,
    category,
    syscall_name,
    syscall_table,
)

PROG = Path(__file__).with_name("profile_prog.c")
PROC_MAX = 16384  # processes with counts (the TUI counts every process)
THREAD_MAX = 65536  # threads blocked at once, and threads with a per-thread total
SYSCALL_MAX = 65536  # (process, syscall) pairs with detail
WATCH_MAX = 16384  # processes (and threads) in the watched tree, or with detail
SYSCALL_NR_MAX = 1024  # syscall numbers classified for what a blocked thread waits on
MAPS = ("watched", "detail", "procs", "threads", "syscalls", "wait_class", "blocked_since")
WAIT_CLASS = {"file_io": 1, "network": 2}  # by category; the kernel's WAIT_FILE, WAIT_NETWORK


class ProcVal(ctypes.Structure):
    _fields_ = [
        ("offcpu_ns", ctypes.c_uint64),
        ("offcpu_wait_ns", ctypes.c_uint64 * 4),  # by WAIT_*: other, file, network, disk
        ("offcpu_events", ctypes.c_uint64),
        ("offcpu_max_ns", ctypes.c_uint64),
        ("syscalls", ctypes.c_uint64),
    ]


class PairKey(ctypes.Structure):
    """thread_key (tgid, tid) and syscall_key (tgid, nr) alike."""

    _fields_ = [("tgid", ctypes.c_uint32), ("other", ctypes.c_uint32)]


class Blocked(ctypes.Structure):
    _fields_ = [
        ("since", ctypes.c_uint64),
        ("tgid", ctypes.c_uint32),
        ("wait", ctypes.c_uint8),
        ("detail", ctypes.c_uint8),
        ("pad", ctypes.c_uint16),
    ]


class ThreadVal(ctypes.Structure):
    _fields_ = [("offcpu_ns", ctypes.c_uint64), ("offcpu_events", ctypes.c_uint64)]


def missing() -> str | None:
    """What keeps `--profile` from running here, in one line; None when nothing does."""
    problem = _bcc_missing()
    if problem:
        return f"--profile needs bcc: {problem}"
    if not _privileged():
        return "--profile needs root or CAP_BPF+CAP_PERFMON; profiling is off"
    if not _headers_present():
        return "--profile needs the kernel headers (run ./install.sh); profiling is off"
    return None


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


ONE = b"\x01"  # a u8 set: in the watched or detail set


def _int(raw: Any) -> int:
    return int.from_bytes(bytes(raw), "little")


class Profiler:
    """The kernel counters for `--profile`. Thread-safe: the collector reads on its
    thread while the TUI changes what is shown."""

    def __init__(self, *, watch: Iterable[int] | None = None, detail_all: bool = False):
        self.filtered = watch is not None
        self._initial = list(watch or ())
        self.detail_all = detail_all
        self._loaded: bpfload.Loaded | None = None
        self._lock = threading.Lock()
        self._shown: set[int] = set()

    def start(self) -> None:
        """Compile and attach; BackendError with one line when that fails."""
        problem = missing()
        if problem:
            raise BackendError(problem)
        _ensure_tracefs()
        cflags = [
            "-w",
            f"-DPROC_MAX={PROC_MAX}",
            f"-DTHREAD_MAX={THREAD_MAX}",
            f"-DSYSCALL_MAX={SYSCALL_MAX}",
            f"-DWATCH_MAX={WATCH_MAX}",
            f"-DSYSCALL_NR_MAX={SYSCALL_NR_MAX}",
            f"-DFILTERED={int(self.filtered)}",
            f"-DDETAIL_ALL={int(self.detail_all)}",
        ]
        try:
            loaded = bpfload.load(PROG, cflags, MAPS)
        except BackendError as exc:
            raise BackendError(str(exc).replace("eBPF program", "profiling program")) from None
        classes = loaded.maps["wait_class"]
        for nr, name in syscall_table().items():
            cls = WAIT_CLASS.get(category(name))
            if cls is not None and nr < SYSCALL_NR_MAX:
                classes.update(_u32(nr), bytes([cls]))
        with self._lock:
            self._loaded = loaded
        self.watch(self._initial)

    def watch(self, pids: Iterable[int]) -> None:
        """Count these processes (and their children from now on), with detail."""
        with self._lock:
            if self._loaded is None:
                self._initial.extend(pids)
                return
            for pid in pids:
                self._loaded.maps["watched"].update(_u32(pid), ONE)
                self._loaded.maps["detail"].update(_u32(pid), ONE)

    def show(self, pids: Iterable[int]) -> None:
        """Keep detail for these processes only (the TUI's drill-down), from now on."""
        wanted = set(pids)
        with self._lock:
            if self._loaded is None or wanted == self._shown:
                return
            table = self._loaded.maps["detail"]
            for pid in self._shown - wanted:
                table.delete(_u32(pid))
            for pid in wanted - self._shown:
                table.update(_u32(pid), ONE)
            self._shown = wanted

    def read(self) -> dict[int, ProcessProfile]:
        """Each counted process's totals since profiling began, by pid."""
        with self._lock:
            if self._loaded is None:
                return {}
            maps = self._loaded.maps
            # The totals first, then the detail: a process still running adds to both
            # meanwhile, and its syscall total is then at least the sum of its calls by
            # name (equal to it when it got detail from its start: run/attach, --json).
            totals = {_int(k): ProcVal.from_buffer_copy(bytes(v)) for k, v in maps["procs"].items()}
            ongoing = self._ongoing(maps["blocked_since"], totals)
            threads: dict[int, list[ThreadOffCpu]] = {}
            for k, v in maps["threads"].items():
                key, val = PairKey.from_buffer_copy(bytes(k)), ThreadVal.from_buffer_copy(bytes(v))
                so_far = ongoing.pop((key.tgid, key.other), 0)
                threads.setdefault(key.tgid, []).append(
                    ThreadOffCpu(key.tgid, key.other, val.offcpu_ns + so_far)
                )
            for (tgid, tid), so_far in ongoing.items():  # blocked since before their first end
                threads.setdefault(tgid, []).append(ThreadOffCpu(tgid, tid, so_far))
            calls: dict[int, dict[str, int]] = {}
            for k, v in maps["syscalls"].items():
                key = PairKey.from_buffer_copy(bytes(k))
                calls.setdefault(key.tgid, {})[syscall_name(key.other)] = _int(v)
            detailed = self.detail_all or self.filtered
            shown = self._shown
            out = {}
            for tgid, p in totals.items():
                detail = detailed or tgid in shown
                counts = calls.get(tgid, {}) if detail else None
                out[tgid] = ProcessProfile(
                    offcpu_ns=p.offcpu_ns,
                    offcpu_sleep_ns=p.offcpu_wait_ns[0],
                    offcpu_file_ns=p.offcpu_wait_ns[1],
                    offcpu_network_ns=p.offcpu_wait_ns[2],
                    offcpu_disk_ns=p.offcpu_wait_ns[3],
                    offcpu_events=p.offcpu_events,
                    offcpu_max_ns=p.offcpu_max_ns,
                    # with detail, the calls by name were read last: they may be more
                    syscalls=max(p.syscalls, sum(counts.values()) if counts else 0),
                    threads=tuple(threads.get(tgid, ())) if detail else None,
                    syscall_counts=counts,
                )
            return out

    def _ongoing(self, blocked: BpfMap, totals: dict[int, ProcVal]) -> dict[tuple[int, int], int]:
        """Add the blocked periods still going on to `totals` (else a thread blocked for an
        hour shows nothing until it wakes); return them by (tgid, tid) for the detail (a
        drill-down opened during one sees that thread at once)."""
        everyone = self.detail_all or self.filtered
        now = time.monotonic_ns()  # CLOCK_MONOTONIC, as bpf_ktime_get_ns
        out: dict[tuple[int, int], int] = {}
        for k, v in blocked.items():
            b = Blocked.from_buffer_copy(bytes(v))
            so_far = max(now - b.since, 0)
            p = totals.setdefault(b.tgid, ProcVal())
            p.offcpu_ns += so_far
            p.offcpu_wait_ns[b.wait & 3] += so_far
            p.offcpu_max_ns = max(p.offcpu_max_ns, so_far)
            if everyone or b.tgid in self._shown:
                out[(b.tgid, _int(k))] = so_far
        return out

    def forget(self, pids: Iterable[int]) -> None:
        """Drop the counts of processes that are gone (their pid may be reused)."""
        gone = set(pids)
        if not gone:
            return
        with self._lock:
            if self._loaded is None:
                return
            maps = self._loaded.maps
            for name in ("threads", "syscalls"):
                table = maps[name]
                table.delete_many(
                    k for k, _v in table.items() if PairKey.from_buffer_copy(k).tgid in gone
                )
            for name in ("procs", "watched", "detail"):
                maps[name].delete_many(_u32(pid) for pid in gone)

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, None
        if loaded is not None:
            loaded.close(wait=False)
