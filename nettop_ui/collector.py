"""Joins a backend's per-PID byte deltas with psutil process facts into snapshots.

Each process is tracked by its identity (pid, create_time), so a PID the kernel
reuses for a new process starts from zero instead of inheriting the old totals.
Traffic for a PID that is already gone is kept under the backend's name for it,
and a process that had traffic keeps its totals, marked exited, for the whole run; past
`max_exited` exited processes the oldest are folded into one total (`Snapshot.folded`),
so process churn cannot grow memory without bound and no byte is lost.

`Collector.ingest` does blocking psutil work (tens of milliseconds for thousands of
processes); callers run it off the UI thread / event loop.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psutil

from nettop_ui import proc_events, procfs, services
from nettop_ui.core import BackendFailure, ConnectionTraffic, TrafficSample
from nettop_ui.gpu import GpuSampler, GpuStats
from nettop_ui.history import SeriesSet
from nettop_ui.proc_events import TreeScope
from nettop_ui.profile import ProcessProfile, ProfileSource
from nettop_ui.remotes import FoldedHosts, RemoteHostState, RemoteTable
from nettop_ui.resolve import Resolver, start_resolver
from nettop_ui.schema import LIVE_ONLY
from nettop_ui.system import SystemSampler, SystemStats, inet_connection_counts

ProcessKey = tuple[int, float | None]  # (pid, create_time); create_time None when never seen live
HISTORY_SERIES = ("sent_bps", "recv_bps", "cpu_percent", "rss_bytes")
history_row = operator.attrgetter(*HISTORY_SERIES)  # a ProcessState's values, in that order
LINUX = sys.platform.startswith("linux")
SWEEP_CONNECTIONS_S = 5.0  # how often connections idle past connection_keep_s are dropped
RECOUNT_S = 5.0  # the hosts' open connections are recounted at least this often
RENAME_S = 30.0  # every host's name is asked for again at least this often
NO_SCHEDSTAT = b"0 0 0\n"  # /proc/PID/schedstat where the kernel keeps none
FULL_SCAN_EVERY = 10  # scans: a process that has not run has its statm read again
# scans: every process has its cgroup read again, in turns (a move between cgroups is
# rare: a service manager places a process when it starts, and it is read then)
CGROUP_EVERY = 60
# Off Linux, facts come from psutil; on Linux from nettop_ui.procfs (far cheaper).
_PSUTIL_ATTRS = ["name", "ppid", "cmdline", "username", "create_time", "cpu_percent"]
_PSUTIL_ATTRS += ["memory_info", "io_counters", "num_threads", "cpu_times"]


@dataclass(slots=True)
class ConnectionState:
    """One connection of one process, cumulative since first seen."""

    protocol: str
    local: str
    remote: str
    sent_bytes: int = 0
    recv_bytes: int = 0
    sent_bps: float = 0.0
    recv_bps: float = 0.0
    last_seen: float = 0.0
    remote_name: str | None = None  # the remote host's name (RemoteHostState.name)
    remote_scope: str = "remote"  # "local": loopback or this machine's own address


@dataclass(slots=True)
class ProcessState:
    """Everything known about one process identity, as of the latest tick.

    Byte figures are None when the backend cannot know them; process facts are None
    when the process is gone or psutil was denied access.
    """

    pid: int
    create_time: float | None
    name: str
    cmdline: list[str] = field(default_factory=list)
    user: str | None = None
    ppid: int | None = None
    cgroup: str | None = None  # the cgroup v2 path from /proc/PID/cgroup
    service: str | None = None  # a readable name for it: unit, container, pod (services.py)
    sent_bytes: int | None = None
    recv_bytes: int | None = None
    sent_bps: float | None = None
    recv_bps: float | None = None
    cpu_percent: float | None = None
    cpu_user_s: float | None = None  # CPU seconds in user mode since the process started
    cpu_system_s: float | None = None  # ... and in the kernel on its behalf
    rss_bytes: int | None = None
    vms_bytes: int | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None
    read_bps: float | None = None
    write_bps: float | None = None
    # Bytes read(2)/write(2) moved (rchar/wchar), page cache hits included; see docs/disk.md.
    syscall_read_bytes: int | None = None
    syscall_write_bytes: int | None = None
    page_faults_cached: int | None = None  # minor faults: no disk read needed
    page_faults_disk: int | None = None  # major faults: waited for the disk
    threads: int | None = None
    connection_count: int | None = None
    gpu_memory_bytes: int | None = None  # None: no GPU, or not using one
    gpu_sm_percent: float | None = None
    ebpf: ProcessProfile | None = None  # `--profile`: off-CPU time and syscalls (profile.py)
    exited: bool = False
    exited_at: float | None = None
    # What the backend knows it got wrong about this process's bytes (ProcessTraffic.note);
    # kept once set, since the totals include those bytes from then on.
    note: str | None = None
    first_seen: float = 0.0
    details_pending: bool = False  # first_look: cmdline, user, cgroup not read yet
    cpu_ticks: int | None = None  # procfs: utime+stime at the last scan, for cpu_percent
    reaped_ticks: int | None = None  # procfs: cutime+cstime (reaped children) at the last scan
    mem_probe: tuple[int, int, int] | None = None  # procfs: stat's memory figures, last read
    sched: bytes | None = None  # procfs: /proc/PID/schedstat at the last full read
    rested: bool = False  # procfs: asleep since before the last scan (Collector._slept)
    connections: dict[tuple[str, str, str], ConnectionState] = field(default_factory=dict)
    # A stamp, unique in its collector, set whenever one of `connections` is added, moves,
    # comes to rest, is renamed or dropped: a frame copies them again only then (0: none
    # ever). With 10,000 open connections most processes' stay as they were a tick.
    conns_stamp: int = 0
    history: SeriesSet | None = None
    history_tick: int = 0  # the collector's tick of history's newest row (Collector._ticks)

    @property
    def key(self) -> ProcessKey:
        return (self.pid, self.create_time)

    @property
    def had_traffic(self) -> bool:
        return bool(self.sent_bytes or self.recv_bytes)

    @property
    def total_bps(self) -> float | None:
        if self.sent_bps is None or self.recv_bps is None:
            return None
        return self.sent_bps + self.recv_bps


@dataclass(slots=True)
class Unattributed:
    """Bytes the backend saw but could not tie to a process."""

    sent_bytes: int = 0
    recv_bytes: int = 0
    sent_bps: float = 0.0
    recv_bps: float = 0.0


@dataclass(slots=True)
class FoldedExited:
    """Totals of exited talkers no longer listed one by one (see Collector.max_exited)."""

    processes: int = 0
    sent_bytes: int = 0
    recv_bytes: int = 0


@dataclass(slots=True)
class Snapshot:
    """The monitor's state after one tick; what every sink renders."""

    ts: float
    interval_s: float
    processes: list[ProcessState]
    unattributed: Unattributed | None
    system: SystemStats | None
    failure: BackendFailure | None = None
    gpu: GpuStats | None = None
    gpu_unavailable: str | None = None  # why there is no GPU data, e.g. "no NVIDIA GPU"
    folded: FoldedExited | None = None
    # Per remote address (remotes.py); None when the backend has no per-connection view.
    remotes: list[RemoteHostState] | None = None
    remotes_folded: FoldedHosts | None = None
    # Whether the hosts' open connections, protocols, ports and processes were recounted
    # this tick (else they are as in the last snapshot).
    remotes_recounted: bool = True
    # `--profile`: every counted pid's profile, exited ones not yet forgotten too (in
    # run/attach the kernel counts only the tree); None when profiling is off.
    profiles: dict[int, ProcessProfile] | None = None
    # The processes any figure of which may have changed this tick (new, gone, read in
    # full, moved bytes, ...); None: any may have. The others are as in the last snapshot,
    # their history included (see Collector.history_of).
    changed: set[ProcessKey] | None = None


def _psutil_io(io: Any) -> procfs.IoFacts:
    """psutil's io_counters as IoFacts; the syscall bytes are unknown (None) where psutil
    has no read_chars/write_chars (macOS, the BSDs)."""
    return procfs.IoFacts(
        io.read_bytes,
        io.write_bytes,
        getattr(io, "read_chars", None),
        getattr(io, "write_chars", None),
    )


def _psutil_faults(mem: Any) -> tuple[int | None, int | None]:
    """(minor, major) page faults from psutil's memory_info: macOS gives every fault
    (`pfaults`) and those that paged in from disk (`pageins`); elsewhere unknown."""
    faults, pageins = getattr(mem, "pfaults", None), getattr(mem, "pageins", None)
    if faults is None or pageins is None:
        return None, None
    return max(faults - pageins, 0), pageins


def clean_surrogates(text: str) -> str:
    """psutil decodes /proc with surrogateescape; make such text encodable, visibly."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", errors="surrogateescape")
        return raw.decode("utf-8", errors="backslashreplace")


class Collector:
    """Turns backend samples into snapshots. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        *,
        per_process_bytes: bool = True,
        has_unattributed: bool = False,
        history_size: int = 300,
        exited_keep_s: float = 60.0,
        max_exited: int = 2000,
        count_connections: bool = True,
        connection_keep_s: float = 30.0,
        connection_count_every_s: float = 5.0,
        system: bool = True,
        gpu: bool = True,
        resolve: bool = True,
        profiler: ProfileSource | None = None,
        scope: TreeScope | None = None,
    ) -> None:
        self.per_process_bytes = per_process_bytes
        self._looked_unsampled = False  # first_look's states await their first bytes
        # Points of per-process history, for the TUI's sparklines only: 0 keeps none
        # (the headless modes; 300 points are ~6 KB a process, 12 MB at 2,000).
        self.history_size = history_size
        self.exited_keep_s = exited_keep_s
        # Process churn would otherwise grow the list (and memory) without bound: beyond
        # this many exited talkers the oldest are folded into one total, bytes conserved.
        self.max_exited = max_exited
        self.folded = FoldedExited()
        self.count_connections = count_connections
        self.connection_keep_s = connection_keep_s
        self.started = time.time()
        self.processes: dict[ProcessKey, ProcessState] = {}
        self._live_by_pid: dict[int, ProcessKey] = {}
        self._gone_by_pid: dict[int, ProcessKey] = {}
        # the exited processes still listed, in the order they exited: `_forget_old` walks
        # these, not every process
        self._exited: dict[ProcessKey, None] = {}
        self.unattributed = Unattributed() if has_unattributed else None
        self._system = SystemSampler() if system else None
        self._gpu = GpuSampler() if gpu else None
        self._gpu_stats: GpuStats | None = None
        self._self_pid = os.getpid()
        self.last_failure: BackendFailure | None = None
        # Counting sockets per process walks every fd of every process: do it seldom.
        self.connection_count_every_s = connection_count_every_s
        self._counts: dict[int, int] | None = None
        self._counts_at = 0.0
        self._counts_applied: dict[int, int] | None = None  # the counts set on processes
        # This tick's changed processes (Snapshot.changed); None: every one may have.
        self._changed: set[ProcessKey] | None = None
        # Ticks so far, and the timestamps of the last `history_size`: a process whose
        # figures did not change gets no row of history until it is read or changes
        # (`history_of`), when its last row is repeated for the ticks it missed.
        self._ticks = 0
        self._tick_ts: deque[float] = deque(maxlen=max(history_size, 1))
        self._files: procfs.ProcFiles | None = None  # Linux: /proc files held between scans
        self._scans = 0
        # When the last /proc scan began, in the clock of a process's start_ticks.
        self._scanned_ticks: float | None = None
        self._sockets: procfs.SocketCounter | None = None  # Linux: who holds which socket
        self._slept_pids: set[int] = set()  # the last scan's processes that had not run
        self._quiet: set[int] | None = None  # those that slept through every scan since
        # Made by the first sample with a per-connection view; None: no such backend.
        self.remotes: RemoteTable | None = None
        self._movers: dict[ProcessKey, ProcessState] = {}  # the processes that moved last tick
        # The connections that moved last tick, with their process.
        self._moving: list[tuple[ProcessState, ConnectionState]] = []
        self._stamps = 0  # the last ProcessState.conns_stamp given
        self._swept_at = 0.0  # when idle connections were last dropped
        # Bumped whenever a connection is opened or dropped: the hosts' open counts are
        # recounted only then (or after a name arrives, or every RECOUNT_S).
        self._connections_changed = 0
        self._recounted: tuple[int, int] = (-1, -1)  # (connections changed, names version)
        self._recounted_at = 0.0
        self._named_at = 0.0
        self._per_connection = False  # the latest sample had a per-connection view
        self.resolve = resolve  # look up the remote hosts' names (`--no-resolve`: not)
        self._resolver: Resolver | None = None  # started with the first connection seen
        self.profiler = profiler
        self._profiles: dict[int, ProcessProfile] | None = None
        # run/attach: the one tree whose processes are read (and whose bytes are kept).
        self.scope = scope
        self._every: proc_events.EveryProcess | None = None
        self._every_tried = False

    # -- process facts -------------------------------------------------------------

    def _scan(self, now: float, dt: float) -> None:
        """Refresh facts for every live process and mark the vanished ones exited."""
        seen = self._scan_procfs(now, dt) if LINUX else self._scan_psutil(now, dt)
        if self._files is not None:
            for pid in self._live_by_pid.keys() - seen.keys():
                self._files.forget(pid)
        # Gone, or its pid now another process's: the pairs no longer seen (a set
        # difference, not a walk over every process).
        for pid, key in self._live_by_pid.items() - seen.items():
            if key in self.processes:
                state = self.processes[key]
                self._catch_up(state, self._ticks - 1)  # its rows while it lived
                state.exited, state.exited_at = True, now
                self._exited[key] = None
                for name in LIVE_ONLY:  # gone with the process (its memory too): unknown
                    setattr(state, name, None)
                self._gone_by_pid[pid] = key
                self._touch(key)
        self._live_by_pid = seen

    def _new_state(self, key: ProcessKey, name: str, now: float) -> ProcessState:
        state = ProcessState(key[0], key[1], name, first_seen=now)
        if self.per_process_bytes:
            state.sent_bytes = state.recv_bytes = 0
            state.sent_bps = state.recv_bps = 0.0
        self.processes[key] = state
        self._touch(key)
        return state

    def _touch(self, key: ProcessKey) -> None:
        """Note that a figure of process `key` may have changed this tick."""
        if self._changed is not None:
            self._changed.add(key)

    def _scan_procfs(self, now: float, dt: float) -> dict[int, ProcessKey]:
        """Read /proc for every process; skip what a process cannot have changed.

        A single-threaded process that has not been on a CPU since the last scan (its
        /proc/PID/schedstat, run time and run count, reads the same) cannot have changed
        its CPU time, threads, memory mappings, disk I/O, name or command line, so its
        stat, statm and io are not read again: most processes sleep through most
        seconds, and this halves the reads. What can change without it running is read
        anyway: its parent (when the parent exits: every process whose parent just
        vanished is read in full), and in turns every FULL_SCAN_EVERY scans its memory
        (reclaim) and every CGROUP_EVERY scans its cgroup (`_reread_asleep`).
        """
        seen: dict[int, ProcessKey] = {}
        if self._files is None:
            self._files = procfs.ProcFiles()
        files = self._files
        self._scans += 1
        slept = self._slept_pids = set()  # the pids that have not run since the last scan
        scanned_ticks, self._scanned_ticks = self._scanned_ticks, procfs.boot_ticks()
        try:
            listed = self.scope.pids() if self.scope is not None else self._every_pid()
            pids = listed if listed is not None else procfs.list_pids()
        except OSError:  # out of fds, say: nothing read, so nothing is known to have exited
            self._changed = None
            for live in self._live_by_pid.values():
                if live in self.processes:
                    self._unread(self.processes[live])
            return dict(self._live_by_pid)
        live_by_pid, processes, scans = self._live_by_pid, self.processes, self._scans
        orphaned = live_by_pid.keys() - set(pids)  # their children have a new parent
        get_known, get_state, read = live_by_pid.get, processes.get, files.read
        held, pread = files.held_fds.get, os.pread
        for pid in pids:
            known = get_known(pid)
            state = get_state(known) if known is not None else None
            sched = None
            if state is None or state.threads == 1:
                # before stat: a later run shows. `files.read`, written out (the hot path)
                fd = held((pid, "schedstat"))
                try:
                    sched = pread(fd, 256, 0) if fd is not None else read(pid, "schedstat", 256)
                except OSError:  # that process is gone (`read` opens the path afresh)
                    sched = read(pid, "schedstat", 256)
                # The hot path (most processes, most ticks): it has not run.
                if state is not None and sched is not None and sched == state.sched:
                    slept.add(pid)
                    if state.ppid not in orphaned:
                        seen[pid] = known  # type: ignore[assignment]
                        if not state.rested:
                            self._slept(state, dt)
                        if not (pid + scans) % FULL_SCAN_EVERY:
                            self._reread_asleep(state, files, (pid + scans) % CGROUP_EVERY == 0)
                        continue
            try:
                st = files.stat(pid)
            except OSError:  # unreadable this time, not gone (see procfs.GONE)
                if known is not None and known in self.processes:
                    self._unread(self.processes[known])
                    self._touch(known)
                    seen[pid] = known
                continue
            if st is None:  # exited between listing and reading
                continue
            key: ProcessKey = (pid, procfs.create_time(st.start_ticks))
            state = self.processes.get(key)
            # new, exec'd into something else, or seen by first_look only
            if state is None or state.name != st.comm or state.details_pending:
                if state is None:
                    state = self._new_state(key, st.comm, now)
                state.name, state.details_pending = st.comm, False
                state.cmdline = procfs.read_cmdline(pid)
                state.user = procfs.read_user(pid)
                self._read_cgroup(state, files)
            elif (pid + self._scans) % CGROUP_EVERY == 0:  # moved since? in turns
                self._read_cgroup(state, files)
            # "0 0 0": a kernel without scheduler statistics, where it would never move
            state.sched = sched if st.threads == 1 and sched != NO_SCHEDSTAT else None
            state.rested = False
            # The process's memory moves by its own page faults and (un)mappings, or by
            # reclaim, which moves the approximate RSS in stat too: when none of those
            # moved, statm would say what it said last time, give or take that error.
            probe = (st.vms_bytes, st.rss_bytes, st.faults)
            if probe != state.mem_probe:
                mem = files.statm(pid)
                state.vms_bytes, state.rss_bytes = mem if mem else (st.vms_bytes, st.rss_bytes)
                state.mem_probe = probe
            born = scanned_ticks is not None and st.start_ticks > scanned_ticks
            if dt > 0 and (state.cpu_ticks is not None or born):
                # A process started since the last scan used all its CPU time in this interval.
                used = max(st.cpu_ticks - (state.cpu_ticks or 0), 0) / procfs.CLK_TCK
                state.cpu_percent = round(100.0 * used / dt, 1)
            self._take_stat(state, st)
            self._update_io(state, files.io(pid), dt)
            self._touch(key)
            seen[pid] = key
        return seen

    @staticmethod
    def _take_stat(state: ProcessState, st: procfs.StatFacts) -> None:
        """What /proc/PID/stat says about `state` (its CPU rate is worked out before)."""
        state.ppid, state.threads = st.ppid, st.threads
        state.cpu_ticks, state.reaped_ticks = st.cpu_ticks, st.reaped_ticks
        state.cpu_user_s = st.user_ticks / procfs.CLK_TCK
        state.cpu_system_s = st.system_ticks / procfs.CLK_TCK
        state.page_faults_cached, state.page_faults_disk = st.minor_faults, st.major_faults

    def first_look(self) -> Snapshot | None:
        """Every live process from its /proc/PID/stat and statm alone, before the first
        sample, so a display need not wait for the backend's first interval and the full
        scan: name, parent, threads, CPU time so far, memory, GPU memory. Everything else is unknown
        (None) until the first `ingest`, which reads the rest (command line, user,
        cgroup, disk I/O, sockets) and has the CPU time taken here to work out a rate
        from. No bytes are known yet, nor unattributed ones, nor machine-wide figures.
        None off Linux, in a scope, or once anything was ingested."""
        if not LINUX or self.scope is not None or self.processes or self.last_failure:
            return None
        if self._files is None:
            self._files = procfs.ProcFiles()
        now = time.time()
        self._scanned_ticks = procfs.boot_ticks()
        try:
            pids = procfs.list_pids()
        except OSError:
            return None
        gpu = self._gpu_stats = self._gpu.sample() if self._gpu else None  # no "no GPU" now
        for pid in pids:
            try:
                st = self._files.stat(pid)
            except OSError:
                continue
            if st is None:
                continue
            key: ProcessKey = (pid, procfs.create_time(st.start_ticks))
            state = ProcessState(pid, key[1], st.comm, first_seen=now, details_pending=True)
            mem = self._files.statm(pid)
            if mem is not None:
                state.vms_bytes, state.rss_bytes = mem
                state.mem_probe = (st.vms_bytes, st.rss_bytes, st.faults)
            self._take_stat(state, st)
            if gpu is not None:
                state.gpu_memory_bytes = gpu.process_memory.get(pid)
            self.processes[key] = state
            self._live_by_pid[pid] = key
        self._looked_unsampled = True
        self._changed = None
        # No machine-wide figures: the CPU's would be measured over the few ms since the
        # sampler started (0%), and rates need two readings; the panels wait for a sample.
        snap = self.snapshot(now, 0.0, None)
        snap.unattributed = None
        return snap

    @staticmethod
    def _read_cgroup(state: ProcessState, files: procfs.ProcFiles) -> None:
        """The process's cgroup and service; kept as they were if the file is unreadable."""
        cgroup = services.read_cgroup(state.pid, files)
        if cgroup is not None and cgroup != state.cgroup:
            state.cgroup, state.service = cgroup, services.service_of(cgroup)

    @staticmethod
    def _unread(state: ProcessState) -> None:
        """A live process whose files could not be read this tick: what changes from
        tick to tick is unknown, and the next read starts afresh (no rate over a gap)."""
        state.cpu_percent = state.read_bps = state.write_bps = None
        state.cpu_ticks = state.reaped_ticks = state.sched = state.mem_probe = None
        state.read_bytes = state.write_bytes = None
        state.syscall_read_bytes = state.syscall_write_bytes = None
        state.page_faults_cached = state.page_faults_disk = None

    def _slept(self, state: ProcessState, dt: float) -> None:
        """What a full read finds for a process that has not run since the last scan: no
        CPU, no disk I/O. Once that is so, it is `rested`: nothing changes while it
        sleeps on, but what others can change (`_reread_asleep`)."""
        if dt <= 0:
            return
        was = (state.cpu_percent, state.read_bps, state.write_bps)
        if state.cpu_ticks is not None:
            state.cpu_percent = 0.0
        if state.read_bytes is not None and state.write_bytes is not None:
            state.read_bps = state.write_bps = 0.0
        if was != (state.cpu_percent, state.read_bps, state.write_bps):
            self._touch(state.key)
        else:
            state.rested = True

    def _reread_asleep(self, state: ProcessState, files: procfs.ProcFiles, cgroup: bool) -> None:
        """What can change while a process sleeps, read in turns: its memory (reclaim,
        swap) and, where `cgroup`, its cgroup (moved by a service manager)."""
        was = state.vms_bytes, state.rss_bytes, state.service, state.cgroup
        mem = files.statm(state.pid)
        if mem is not None:
            state.vms_bytes, state.rss_bytes = mem
        if cgroup:
            self._read_cgroup(state, files)
        if was != (state.vms_bytes, state.rss_bytes, state.service, state.cgroup):
            self._touch(state.key)

    def _scan_psutil(self, now: float, dt: float) -> dict[int, ProcessKey]:
        self._changed = None  # every process's figures are set afresh
        seen: dict[int, ProcessKey] = {}
        for proc in psutil.process_iter(_PSUTIL_ATTRS, ad_value=None):
            info = proc.info
            key: ProcessKey = (proc.pid, info["create_time"])
            state = self.processes.get(key)
            if state is None:
                state = self._new_state(key, clean_surrogates(info["name"] or "?"), now)
            state.name = clean_surrogates(info["name"] or state.name)
            state.cmdline = [clean_surrogates(a) for a in (info["cmdline"] or [])]
            state.user = info["username"]
            state.ppid = info["ppid"]
            state.cpu_percent = info["cpu_percent"]
            state.threads = info["num_threads"]
            times = info["cpu_times"]
            state.cpu_user_s, state.cpu_system_s = (
                (times.user, times.system) if times else (None, None)
            )
            mem = info["memory_info"]
            state.rss_bytes, state.vms_bytes = (mem.rss, mem.vms) if mem else (None, None)
            io = info["io_counters"]
            self._update_io(state, _psutil_io(io) if io else None, dt)
            state.page_faults_cached, state.page_faults_disk = _psutil_faults(mem)
            seen[proc.pid] = key
        return seen

    @staticmethod
    def _update_io(state: ProcessState, io: procfs.IoFacts | None, dt: float) -> None:
        if io is None:
            state.read_bytes = state.write_bytes = state.read_bps = state.write_bps = None
            state.syscall_read_bytes = state.syscall_write_bytes = None
            return
        if state.read_bytes is not None and state.write_bytes is not None and dt > 0:
            state.read_bps = max(io.read_bytes - state.read_bytes, 0) / dt
            state.write_bps = max(io.write_bytes - state.write_bytes, 0) / dt
        state.read_bytes, state.write_bytes = io.read_bytes, io.write_bytes
        state.syscall_read_bytes = io.syscall_read_bytes
        state.syscall_write_bytes = io.syscall_write_bytes

    # -- traffic ---------------------------------------------------------------------

    def _state_for_traffic(self, pid: int, backend_name: str | None, now: float) -> ProcessState:
        key = self._live_by_pid.get(pid) or self._gone_by_pid.get(pid)
        if key is not None and key in self.processes:
            return self.processes[key]
        # Never seen alive: it started and exited within one interval.
        key = (pid, None)
        state = self.processes.get(key)
        if state is None:
            state = ProcessState(pid, None, backend_name or "?", first_seen=now)
            if self.scope is not None:  # a tree's process forked and gone between two ticks
                state.ppid = self.scope.parent_of(pid)
            state.sent_bytes = state.recv_bytes = 0
            state.exited, state.exited_at = True, now
            self._exited[key] = None
            self.processes[key] = state
            self._gone_by_pid[pid] = key
            self._touch(key)
        return state

    def _apply_traffic(self, sample: TrafficSample, now: float) -> None:
        dt = sample.interval_s if sample.interval_s > 0 else 1.0
        self._per_connection = sample.connections is not None
        if sample.processes is None:
            return
        moved: dict[ProcessKey, tuple[int, int]] = {}
        movers: dict[ProcessKey, ProcessState] = {}
        for t in sample.processes:
            if self.scope is not None and not self.scope.wants(t.pid):
                continue
            state = self._state_for_traffic(t.pid, t.name, now)
            if t.note is not None:
                state.note = t.note
            key = state.key
            sent, recv = moved.get(key, (0, 0))
            moved[key] = (sent + t.sent_bytes, recv + t.recv_bytes)
            movers[key] = state
        # With per-process bytes every process starts at 0 B and 0 B/s (`_new_state`), so
        # only this tick's movers and last tick's (back to rest) need touching: at 10,000
        # processes a walk over all of them is a good part of a tick. Without (or after
        # `FrameCollector.fail_traffic`), every process's figures are set, as before.
        # The first sample after `first_look` sets them all too: its states began unknown.
        every = not self.per_process_bytes or self._looked_unsampled
        rest = self.processes.values() if every else self._movers.values()
        self._looked_unsampled = False
        if every:
            self._changed = None
        for state in rest:
            if state.key not in moved:
                state.sent_bytes = state.sent_bytes or 0
                state.recv_bytes = state.recv_bytes or 0
                state.sent_bps = state.recv_bps = 0.0
                self._touch(state.key)
        for key, state in movers.items():
            self._touch(key)
            sent, recv = moved[key]
            state.sent_bytes = (state.sent_bytes or 0) + sent
            state.recv_bytes = (state.recv_bytes or 0) + recv
            state.sent_bps, state.recv_bps = sent / dt, recv / dt
        self._movers = movers
        if sample.connections is not None:
            self._apply_connections(sample.connections, dt, now)
            if self.remotes is None:
                self.remotes = RemoteTable()
                if self.resolve and self._resolver is None:  # DNS answers from now on
                    self._resolver = start_resolver()
            self.remotes.apply(sample.connections, dt, now)
        if self.unattributed is not None:
            us, ur = sample.unattributed_sent or 0, sample.unattributed_recv or 0
            self.unattributed.sent_bytes += us
            self.unattributed.recv_bytes += ur
            self.unattributed.sent_bps, self.unattributed.recv_bps = us / dt, ur / dt

    def _apply_connections(self, conns: list[ConnectionTraffic], dt: float, now: float) -> None:
        """Add one interval's bytes per connection. Only the connections that moved last
        time are set back to rest, and the idle ones are swept out only every
        SWEEP_CONNECTIONS_S: with 10,000 open connections (bench/tui --view hosts) a walk
        over all of them every tick is most of a tick's cost."""
        moving: list[tuple[ProcessState, ConnectionState]] = []
        for c in conns:
            if self.scope is not None and not self.scope.wants(c.pid):
                continue
            state = self._state_for_traffic(c.pid, None, now)
            ckey = (c.protocol, c.local, c.remote)
            conn = state.connections.get(ckey)
            if conn is None:
                conn = state.connections[ckey] = ConnectionState(c.protocol, c.local, c.remote)
                self._connections_changed += 1
            conn.sent_bytes += c.sent_bytes
            conn.recv_bytes += c.recv_bytes
            conn.sent_bps, conn.recv_bps = c.sent_bytes / dt, c.recv_bytes / dt
            conn.last_seen = now
            moving.append((state, conn))
            self._stamp(state)
        for state, conn in self._moving:
            if conn.last_seen != now:
                conn.sent_bps = conn.recv_bps = 0.0
                self._stamp(state)
        self._moving = moving
        if now - self._swept_at >= SWEEP_CONNECTIONS_S:
            self._swept_at = now
            for state in self.processes.values():
                if not state.connections:
                    continue
                for ckey, conn in list(state.connections.items()):
                    if now - conn.last_seen > self.connection_keep_s:
                        del state.connections[ckey]
                        self._connections_changed += 1
                        self._stamp(state)

    def _stamp(self, state: ProcessState) -> None:
        """Mark `state`'s connections changed (see ProcessState.conns_stamp)."""
        self._stamps += 1
        state.conns_stamp = self._stamps
        self._touch(state.key)

    def _refresh_remotes(self) -> None:
        """Recount the open connections per host, name the hosts (from the resolver's
        cache: a name not known yet arrives on a later tick), and copy each host's name
        and scope onto its connections."""
        remotes = self.remotes
        if remotes is None:
            return
        names, now = 0, time.monotonic()
        if self.resolve:
            if self._resolver is None:
                self._resolver = start_resolver()
            names = self._resolver.version
            # Asking again also renews the names whose time in the cache is up.
            if names != self._recounted[1] or remotes.added or now - self._named_at >= RENAME_S:
                lookup = self._resolver.lookup
                for named in remotes.hosts.values():
                    named.name, named.name_source = lookup(named.address)
                self._named_at = now
        recount = (self._connections_changed, names)
        remotes.recounted = False
        if recount != self._recounted or remotes.added or now - self._recounted_at >= RECOUNT_S:
            talking = [p for p in self.processes.values() if p.connections]
            renamed = remotes.refresh((p.pid, p.name, p.connections.values()) for p in talking)
            for p in talking:
                if p.pid in renamed:
                    self._stamp(p)
            self._recounted, self._recounted_at = recount, now
        remotes.added = False

    # -- the tick --------------------------------------------------------------------

    def ingest(self, item: TrafficSample | BackendFailure) -> Snapshot:
        """Fold one backend sample (or failure) into the state and return a snapshot."""
        now = time.time()
        if isinstance(item, BackendFailure):
            self.last_failure = item
            self._changed = None
            return self.snapshot(now, 0.0)
        dt = item.interval_s
        self._changed = self._begin_tick()
        self._ticks += 1
        self._tick_ts.append(now)
        self._scan(now, dt)
        self._apply_traffic(item, now)
        counts = self._socket_counts(item.connection_counts, now)
        gpu = self._gpu_stats = self._gpu.sample() if self._gpu else None
        self._apply_counts(counts, gpu)
        if self.history_size:
            changed = self.processes.keys() if self._changed is None else self._changed
            for key in changed:
                state = self.processes.get(key)
                if state is not None and not state.exited:
                    self._record_history(state, now)
        if self.profiler is not None:
            self._apply_profiles(self.profiler, dt)
        self._forget_old(now)
        self._refresh_remotes()
        system = self._system.sample() if self._system else None
        return self.snapshot(now, dt, system)

    def _begin_tick(self) -> set[ProcessKey] | None:
        """The changed processes a tick starts with: none (None: take every one as changed)."""
        return set()

    def _apply_counts(self, counts: dict[int, int] | None, gpu: GpuStats | None) -> None:
        """Each process's open sockets and GPU use. While the counts are as they were
        (read every few seconds, or read again and the same), only the changed processes
        (new ones among them) need theirs set."""
        changed, applied = self._changed, self._counts_applied
        if changed is None or gpu is not None or (counts is not applied and counts != applied):
            states = list(self.processes.items())
        else:
            states = [(key, self.processes[key]) for key in changed if key in self.processes]
        self._counts_applied = counts
        for key, state in states:
            was = (state.connection_count, state.gpu_memory_bytes, state.gpu_sm_percent)
            if gpu is not None:
                state.gpu_memory_bytes = (
                    gpu.process_memory.get(key[0]) if not state.exited else None
                )
                state.gpu_sm_percent = gpu.process_sm_percent.get(key[0])
            if not state.exited:
                state.connection_count = counts.get(key[0], 0) if counts is not None else None
            else:
                state.connection_count = 0 if counts is not None else None
            if changed is not None and was != (
                state.connection_count,
                state.gpu_memory_bytes,
                state.gpu_sm_percent,
            ):
                changed.add(key)

    def _apply_profiles(self, profiler: ProfileSource, dt: float) -> None:
        """Each live process's profile; an exited one keeps its last totals, its rates
        unknown. The kernel's counts of processes gone are dropped (their pid may come
        back), except in a watched tree, whose sum includes children that came and went
        between two scans."""
        profiles = self._profiles = profiler.read()
        self._changed = None  # rates move for every process that ran
        for key, state in self.processes.items():
            if not state.exited:
                new = profiles.get(key[0])
                state.ebpf = new.with_rates(state.ebpf, dt) if new is not None else None
            elif state.ebpf is not None:
                state.ebpf = state.ebpf.with_rates(None, 0.0)
        if not profiler.filtered:
            gone = self._gone_by_pid
            profiler.forget(p for p in profiles if p in gone and p not in self._live_by_pid)

    def _socket_counts(self, given: dict[int, int] | None, now: float) -> dict[int, int] | None:
        """Open sockets per pid: `given` (the backend's), else the collector's own count,
        taken every `connection_count_every_s`, which skips the processes that slept
        through every scan since the previous one (`_quiet`)."""
        slept = self._slept_pids
        self._quiet = slept if self._quiet is None else self._quiet & slept
        if given is not None or not self.count_connections:
            return given
        if now - self._counts_at >= self.connection_count_every_s:
            self._counts, self._counts_at = self._count_sockets(self._quiet), now
            self._quiet = None
        return self._counts

    def _count_sockets(self, quiet: set[int]) -> dict[int, int] | None:
        if not LINUX:
            return inet_connection_counts()
        if self.scope is not None and self.scope.fallback is None:  # the tree's sockets only
            counts = procfs.own_inet_socket_counts(self._live_by_pid)
            return counts if counts is not None else procfs.inet_socket_counts(self._live_by_pid)
        if self._sockets is None:
            self._sockets = procfs.SocketCounter()
        # The scan's listing, not a second one; in a tree, every process's (as before).
        pids = self._live_by_pid.keys() if self.scope is None else None
        return self._sockets.count(pids, quiet)

    def _record_history(self, state: ProcessState, now: float) -> None:
        """This tick's row of `state`'s history (a changed, live process). A row that
        repeats the newest is left for `_catch_up` to write when the history is read:
        a process read again and found the same (most idle ones) stays a row or two."""
        row = history_row(state)
        if state.history is None:
            state.history = SeriesSet(HISTORY_SERIES, self.history_size)
        elif state.history.newest_is(row):
            return
        self._catch_up(state, self._ticks - 1)
        state.history.append_row(now, row)
        state.history_tick = self._ticks

    def _catch_up(self, state: ProcessState, upto: int) -> None:
        """Give a live process's history the rows of the ticks up to `upto` it missed
        while nothing of it changed: its last row again, at those ticks' times."""
        history = state.history
        missed = upto - state.history_tick
        if history is None or not len(history) or state.exited or missed <= 0:
            return
        stamps = self._tick_ts
        end = len(stamps) - 1 - (self._ticks - upto)  # where tick `upto`'s time is
        n = min(missed, history.size, end + 1)
        history.repeat_last(itertools.islice(stamps, end - n + 1, end + 1))
        state.history_tick = upto

    def history_of(self, state: ProcessState) -> SeriesSet | None:
        """`state.history`, with a row for every tick so far (see `_catch_up`)."""
        self._catch_up(state, self._ticks)
        return state.history

    def _forget_old(self, now: float) -> None:
        """Drop exited processes without traffic after a while; keep talkers' totals."""
        exited: list[ProcessState] = []  # the exited processes still listed
        for key in list(self._exited):
            state = self.processes.get(key)
            if state is None or not state.exited:
                del self._exited[key]
                continue
            if state.exited_at is None or now - state.exited_at <= self.exited_keep_s:
                exited.append(state)
            elif state.had_traffic:  # keep the totals for the whole run, drop the rest
                if state.connections:
                    state.connections.clear()
                    self._connections_changed += 1
                    self._stamp(state)
                state.history = None
                exited.append(state)
            else:
                self._drop(key)
        self._fold_oldest_exited(exited)

    def _fold_oldest_exited(self, exited: list[ProcessState]) -> None:
        if len(exited) <= self.max_exited:
            return
        exited.sort(key=lambda s: s.exited_at or 0.0)
        for state in exited[: len(exited) - self.max_exited]:
            self.folded.processes += state.had_traffic
            self.folded.sent_bytes += state.sent_bytes or 0
            self.folded.recv_bytes += state.recv_bytes or 0
            self._drop(state.key)

    def _drop(self, key: ProcessKey) -> None:
        self._exited.pop(key, None)
        if self.processes.pop(key).connections:
            self._connections_changed += 1
        if self._gone_by_pid.get(key[0]) == key:
            del self._gone_by_pid[key[0]]

    def _every_pid(self) -> list[int] | None:
        """Every process's pid from the proc connector's events (`EveryProcess`); None
        where it cannot be had: then /proc is listed (asked once)."""
        if not self._every_tried and LINUX:
            self._every_tried = True
            with contextlib.suppress(proc_events.Unavailable):
                self._every = proc_events.EveryProcess()
        return self._every.pids() if self._every is not None else None

    def close(self) -> None:
        """Release NVML, the held /proc files, the process events and the name lookups;
        call once the last `ingest` returned."""
        if self._every is not None:
            self._every.close()
        if self._resolver is not None:
            self._resolver.close()
        if self._gpu is not None:
            self._gpu.close()
        if self._files is not None:
            self._files.close()
            self._files = None

    def snapshot(self, now: float, dt: float, system: SystemStats | None = None) -> Snapshot:
        # After a fallback to a backend without connections the hosts are no longer
        # counted: none are shown rather than stale ones.
        remotes = self.remotes if self._per_connection else None
        return Snapshot(
            ts=now,
            interval_s=dt,
            processes=list(self.processes.values()),
            unattributed=self.unattributed,
            system=system,
            failure=self.last_failure,
            gpu=self._gpu_stats,
            gpu_unavailable=self._gpu.unavailable if self._gpu else "GPU sampling off",
            folded=self.folded if self.folded.processes else None,
            remotes=list(remotes.hosts.values()) if remotes is not None else None,
            remotes_folded=remotes.folded if remotes is not None else None,
            remotes_recounted=remotes.recounted if remotes is not None else True,
            profiles=self._profiles,
            changed=self._changed,
        )
