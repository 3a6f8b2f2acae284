"""The eBPF profile of a process: off-CPU time and syscalls, in denet's shape.

`backends/ebpf_profile.py` counts in the kernel; this module names and shapes what it
counted, free of bcc. `ProcessProfile.as_dict()` is the `ebpf` object of a process in the
JSON stream and the recordings (docs/json-schema.md), with denet's keys:
`offcpu` {total_time_ns, total_events, avg_time_ns, max_time_ns, top_blocking_threads
[{pid, tid, time_ms, percentage}]} and `syscalls` {total, by_category, top_syscalls
[{name, count}]}, plus our `bound_by` (docs/profile.md).

Syscall numbers are named from the running architecture's table (the kernel's
unistd header) and grouped into denet 0.10.3's categories: denet groups x86_64
numbers, and `CATEGORIES` holds the same groups by name, so any architecture whose
table we can read groups the same way.
"""

from __future__ import annotations

import functools
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

TOP_THREADS = 10  # denet keeps the top 10 blocking threads
TOP_SYSCALLS = 10  # ... and the top 10 syscalls


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# denet 0.10.3's categories (its src/ebpf/metrics.rs categorize_syscall, x86_64 numbers
# turned into names); a syscall in none of them is "other".
CATEGORIES: dict[str, frozenset[str]] = {
    "file_io": _names(
        """
        read write open close stat fstat lstat lseek ioctl pread64 pwrite64 readv
        writev access dup dup2 sendfile fcntl flock fsync fdatasync truncate
        ftruncate getdents getcwd chdir fchdir rename mkdir rmdir creat link unlink
        symlink readlink chmod utime mknod readahead setxattr lsetxattr fsetxattr
        getdents64 openat mkdirat mknodat fchownat unlinkat renameat linkat
        symlinkat readlinkat fchmodat faccessat pselect6 ppoll unshare fallocate
        timerfd_settime inotify_init1 preadv pwritev name_to_handle_at
        open_by_handle_at syncfs
        """
    ),
    "memory": _names(
        """
        mmap mprotect munmap brk mremap msync mincore madvise arch_prctl
        epoll_create epoll_ctl_old epoll_wait_old remap_file_pages set_tid_address
        mbind set_mempolicy get_mempolicy set_robust_list get_robust_list splice tee
        getrandom memfd_create
        """
    ),
    "process": _names(
        """
        clone fork vfork execve exit wait4 exit_group waitid execveat clone3
        """
    ),
    "signal": _names(
        """
        rt_sigaction rt_sigprocmask rt_sigreturn pause kill rt_sigpending
        rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack tkill tgkill
        signalfd rt_tgsigqueueinfo
        """
    ),
    "ipc": _names(
        """
        pipe shmget shmat shmctl semget semop semctl shmdt msgget msgsnd msgrcv
        msgctl futex mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
        mq_getsetattr kexec_load timerfd_create eventfd pipe2
        """
    ),
    "network": _names(
        """
        socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen
        getsockname getpeername socketpair setsockopt getsockopt accept4 recvmmsg
        sendmmsg
        """
    ),
    "time": _names(
        """
        select sched_yield nanosleep gettimeofday getrlimit getrusage time
        sched_setaffinity sched_getaffinity timer_create timer_settime timer_gettime
        timer_getoverrun timer_delete clock_settime clock_gettime clock_getres
        clock_nanosleep epoll_wait epoll_ctl utimes request_key sync_file_range
        vmsplice move_pages utimensat
        """
    ),
    "security": _names(
        """
        fchmod chown fchown lchown umask setuid setgid setresuid setresgid getresgid
        setfsuid setfsgid getsid capget capset statfs fstatfs sysfs getpriority
        setpriority sched_setparam prctl chroot sync acct settimeofday mount umount2
        epoll_pwait
        """
    ),
    "system": _names(
        """
        uname sysinfo times ptrace getuid syslog vhangup modify_ldt pivot_root
        _sysctl swapoff reboot sethostname setdomainname iopl ioperm create_module
        init_module
        """
    ),
}
CATEGORY_NAMES = (*CATEGORIES, "other")
_CATEGORY_OF = {name: cat for cat, names in CATEGORIES.items() for name in names}

# What the process mostly waits on; "cpu": it mostly runs.
BOUND_BY = ("cpu", "io", "network", "sleep")


def category(name: str) -> str:
    """denet's category of a syscall name."""
    return _CATEGORY_OF.get(name, "other")


def _unistd_headers(machine: str) -> list[Path]:
    build = Path("/lib/modules") / platform.release() / "build"
    arch = {"x86_64": "x86", "aarch64": "arm64"}.get(machine, machine)
    return [
        build / "arch" / arch / "include" / "generated" / "uapi" / "asm" / "unistd_64.h",
        Path("/usr/include") / f"{machine}-linux-gnu" / "asm" / "unistd_64.h",
        Path("/usr/include/asm/unistd_64.h"),
        Path("/usr/include/asm-generic/unistd.h"),  # arm64, riscv64: the generic table
    ]


@functools.cache
def syscall_table(machine: str | None = None) -> dict[int, str]:
    """Syscall number -> name on this machine's architecture (empty when no header
    says: the names then read `syscall_N`)."""
    for header in _unistd_headers(machine or platform.machine()):
        try:
            text = header.read_text()
        except OSError:
            continue
        table = {
            int(nr): name
            for name, nr in re.findall(r"^#define __NR(?:3264)?_(\w+)\s+(\d+)\s*$", text, re.M)
        }
        if table:
            return table
    return {}


def syscall_name(nr: int) -> str:
    return syscall_table().get(nr) or f"syscall_{nr}"


@dataclass(frozen=True, slots=True)
class ThreadOffCpu:
    pid: int
    tid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class ProcessProfile:
    """What the kernel counted for one process since profiling began.

    `threads` and `syscall_counts` are None when the process got no detail (the TUI
    keeps them for the process being shown): unknown, not empty.
    """

    offcpu_ns: int = 0
    # offcpu_ns by what it waited on (backends/ebpf_profile.py): uninterruptible sleep
    # (D: disk I/O, mostly), a file I/O syscall, a network one, anything else.
    offcpu_disk_ns: int = 0
    offcpu_file_ns: int = 0
    offcpu_network_ns: int = 0
    offcpu_sleep_ns: int = 0
    offcpu_events: int = 0
    offcpu_max_ns: int = 0
    syscalls: int = 0
    threads: tuple[ThreadOffCpu, ...] | None = None
    syscall_counts: Mapping[str, int] | None = None  # by name
    # Over the last tick (the collector's): off-CPU time in % of the interval (threads
    # add up: 4 blocked threads are 400%) and syscalls per second; None on the first.
    offcpu_percent: float | None = None
    syscalls_per_s: float | None = None
    # A replayed recording holds the top threads and syscalls only: the categories and
    # the threads' total as recorded, instead of sums over what is held.
    recorded_categories: Mapping[str, int] | None = None
    recorded_threads_ns: int | None = None

    def with_rates(self, before: ProcessProfile | None, dt: float) -> ProcessProfile:
        """This profile with the rates since `before` (the same process, `dt` s earlier);
        without `before`, the rates unknown."""
        if before is None or dt <= 0:
            return replace(self, offcpu_percent=None, syscalls_per_s=None)
        offcpu = max(self.offcpu_ns - before.offcpu_ns, 0) / (dt * 1e9) * 100
        calls = max(self.syscalls - before.syscalls, 0) / dt
        return replace(self, offcpu_percent=round(offcpu, 1), syscalls_per_s=round(calls, 1))

    @property
    def offcpu_avg_ns(self) -> int:
        return self.offcpu_ns // self.offcpu_events if self.offcpu_events else 0

    def by_category(self) -> dict[str, int] | None:
        if self.recorded_categories is not None:
            return dict(self.recorded_categories)
        if self.syscall_counts is None:
            return None
        out = dict.fromkeys(CATEGORY_NAMES, 0)
        for name, count in self.syscall_counts.items():
            out[category(name)] += count
        return out

    def top_syscalls(self) -> list[tuple[str, int]] | None:
        if self.syscall_counts is None:
            return None
        ranked = sorted(self.syscall_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:TOP_SYSCALLS]

    def top_threads(self) -> list[tuple[ThreadOffCpu, float]] | None:
        """The threads blocked longest, with their share (%) of all threads' off-CPU time."""
        if self.threads is None:
            return None
        total = self.recorded_threads_ns or sum(t.time_ns for t in self.threads)
        ranked = sorted(self.threads, key=lambda t: (-t.time_ns, t.tid))[:TOP_THREADS]
        return [(t, 100.0 * t.time_ns / total if total else 0.0) for t in ranked]

    def as_dict(self, cpu_s: float | None = None) -> dict[str, Any]:
        """The `ebpf` object (denet's keys); `cpu_s`, the process's CPU time, for bound_by."""
        threads = self.top_threads()
        offcpu: dict[str, Any] = {
            "total_time_ns": self.offcpu_ns,
            "total_events": self.offcpu_events,
            "avg_time_ns": self.offcpu_avg_ns,
            "max_time_ns": self.offcpu_max_ns,
            "wait_ns": {
                "disk": self.offcpu_disk_ns,
                "file": self.offcpu_file_ns,
                "network": self.offcpu_network_ns,
                "sleep": self.offcpu_sleep_ns,
            },
            "top_blocking_threads": None
            if threads is None
            else [
                {
                    "pid": t.pid,
                    "tid": t.tid,
                    "time_ms": round(t.time_ns / 1e6, 3),
                    "percentage": round(share, 2),
                }
                for t, share in threads
            ],
        }
        top = self.top_syscalls()
        syscalls = {
            "total": self.syscalls,
            "by_category": self.by_category(),
            "top_syscalls": None if top is None else [{"name": n, "count": c} for n, c in top],
        }
        return {"offcpu": offcpu, "syscalls": syscalls, "bound_by": bound_by(self, cpu_s)}


def from_record(ebpf: Any) -> ProcessProfile | None:
    """A recorded `ebpf` object (untrusted: a replayed file) as a profile; None when it is
    absent or not one. The waits by kind and `bound_by` are recomputed from it."""
    try:
        offcpu, calls = ebpf["offcpu"], ebpf["syscalls"]
        waits = offcpu.get("wait_ns") or {}
        top = calls.get("top_syscalls")
        threads = offcpu.get("top_blocking_threads")
        held = (
            None
            if threads is None
            else tuple(
                ThreadOffCpu(int(t["pid"]), int(t["tid"]), int(float(t["time_ms"]) * 1e6))
                for t in threads
            )
        )
        shares = [(float(t["time_ms"]), float(t["percentage"])) for t in threads or ()]
        whole = next((int(ms * 1e6 * 100 / pct) for ms, pct in shares if pct > 0), None)
        cats = calls.get("by_category")
        return ProcessProfile(
            offcpu_ns=int(offcpu["total_time_ns"]),
            offcpu_disk_ns=int(waits.get("disk", 0)),
            offcpu_file_ns=int(waits.get("file", 0)),
            offcpu_network_ns=int(waits.get("network", 0)),
            offcpu_sleep_ns=int(waits.get("sleep", 0)),
            offcpu_events=int(offcpu["total_events"]),
            offcpu_max_ns=int(offcpu["max_time_ns"]),
            syscalls=int(calls["total"]),
            threads=held,
            syscall_counts=None if top is None else {str(t["name"]): int(t["count"]) for t in top},
            recorded_categories=None if cats is None else {str(k): int(v) for k, v in cats.items()},
            recorded_threads_ns=whole,
        )
    except (TypeError, KeyError, ValueError, AttributeError, ZeroDivisionError, OverflowError):
        return None


def merge(profiles: Iterable[ProcessProfile]) -> ProcessProfile | None:
    """The sum over several processes (a tree); None for none. Detail is kept only when
    every one has it (else a part would pass for the whole)."""
    items = list(profiles)
    if not items:
        return None
    threads = None
    if all(p.threads is not None for p in items):
        threads = tuple(t for p in items for t in p.threads or ())
    counts: dict[str, int] | None = None
    if all(p.syscall_counts is not None for p in items):
        counts = {}
        for p in items:
            for name, n in (p.syscall_counts or {}).items():
                counts[name] = counts.get(name, 0) + n
    return ProcessProfile(
        offcpu_ns=sum(p.offcpu_ns for p in items),
        offcpu_disk_ns=sum(p.offcpu_disk_ns for p in items),
        offcpu_file_ns=sum(p.offcpu_file_ns for p in items),
        offcpu_network_ns=sum(p.offcpu_network_ns for p in items),
        offcpu_sleep_ns=sum(p.offcpu_sleep_ns for p in items),
        offcpu_events=sum(p.offcpu_events for p in items),
        offcpu_max_ns=max(p.offcpu_max_ns for p in items),
        syscalls=sum(p.syscalls for p in items),
        threads=threads,
        syscall_counts=counts,
    )


def bound_by(profile: ProcessProfile, cpu_s: float | None) -> str | None:
    """What the process is bound by, or None when its CPU time is unknown.

    "cpu" when it ran at least as long as its threads were blocked; otherwise what the
    blocked time mostly waited on: "io" (the disk, or a file I/O syscall: a file, pipe
    or terminal), "network" (a network syscall) or "sleep" (anything else: sleeps,
    futexes, timers, poll on nothing in particular).
    """
    if cpu_s is None:
        return None
    if cpu_s * 1e9 >= profile.offcpu_ns:
        return "cpu"
    waits = {
        "io": profile.offcpu_disk_ns + profile.offcpu_file_ns,
        "network": profile.offcpu_network_ns,
        "sleep": profile.offcpu_sleep_ns,
    }
    return max(waits, key=lambda k: waits[k])


class ProfileSource(Protocol):
    """What the collector reads each tick (backends/ebpf_profile.Profiler)."""

    filtered: bool  # counts only the watched tree (run/attach)

    def read(self) -> dict[int, ProcessProfile]: ...

    def forget(self, pids: Iterable[int]) -> None: ...

    def watch(self, pids: Iterable[int]) -> None: ...

    def show(self, pids: Iterable[int]) -> None: ...

    def close(self) -> None: ...


_active: ProfileSource | None = None


def active() -> ProfileSource | None:
    """The running profiler (`--profile`), which every collector made from now on reads."""
    return _active


def enable(*, watched_tree: bool = False, detail_all: bool = False) -> str | None:
    """Start profiling for this process's monitors: every process (the TUI; `detail_all`
    for `--json`), or only the trees given to `watch` later (`watched_tree`: run/attach).
    Returns the one line saying why it could not start, or None."""
    global _active
    from backends.ebpf_profile import Profiler  # bcc stays unloaded without --profile
    from nettop_ui.core import BackendError

    profiler = Profiler(watch=[] if watched_tree else None, detail_all=detail_all)
    try:
        profiler.start()
    except BackendError as exc:
        return str(exc)
    _active = profiler
    return None


def disable() -> None:
    global _active
    profiler, _active = _active, None
    if profiler is not None:
        profiler.close()
