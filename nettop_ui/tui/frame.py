"""Frozen copies of a collector snapshot, made in the collecting thread, read by the UI.

The collector mutates its `ProcessState`s on every tick from a worker thread; the UI
re-sorts, filters and redraws at any moment (a key press, a resize). So each tick is
turned into a `Frame` of immutable views right after `Collector.ingest` returns, still
off the UI thread, and the UI only ever reads frames.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from nettop_ui.collector import Collector, ConnectionState, ProcessKey, ProcessState, Snapshot
from nettop_ui.core import BackendFailure, TrafficSample
from nettop_ui.gpu import GpuStats
from nettop_ui.history import SeriesSet
from nettop_ui.profile import ProcessProfile
from nettop_ui.remotes import RemoteHostState
from nettop_ui.system import SystemStats

SPARK_SECONDS = 60.0


def spark_points(interval_s: float) -> int:
    """How many points of history a sparkline shows at this refresh interval."""
    return max(1, math.ceil(SPARK_SECONDS / (interval_s if interval_s > 0 else 1.0)))


@lru_cache(maxsize=1 << 12)
def row_key(pid: int, create_time: float | None) -> str:
    """The DataTable row key of one process identity (cached: a float repr is not cheap,
    and a process that moves bytes gets a new view every tick). A few thousand: each
    entry costs some 300 bytes, and exited processes' stay until pushed out."""
    return f"{pid}:{create_time}"


@dataclass(frozen=True, slots=True)
class ConnView:
    """One connection of one process, as of one tick."""

    protocol: str
    local: str
    remote: str
    sent_bytes: int
    recv_bytes: int
    sent_bps: float
    recv_bps: float
    remote_name: str | None = None
    remote_scope: str = "remote"


@dataclass(frozen=True, slots=True)
class RemoteView:
    """One remote address as of one tick (nettop_ui.remotes.RemoteHostState, frozen)."""

    address: str  # "" for bytes without a remote endpoint
    scope: str  # "local" or "remote"
    name: str | None
    name_source: str | None
    sent_bytes: int
    recv_bytes: int
    sent_bps: float | None  # None once the backend failed
    recv_bps: float | None
    connection_count: int | None  # None: not known (the history does not record it)
    protocols: tuple[str, ...]
    ports: tuple[int, ...]
    pids: tuple[tuple[int, str], ...]  # processes talking now: (pid, name), by pid

    @property
    def key(self) -> str:
        return self.address

    @property
    def total_bps(self) -> float | None:
        if self.sent_bps is None or self.recv_bps is None:
            return None
        return self.sent_bps + self.recv_bps

    @property
    def total_bytes(self) -> int:
        return self.sent_bytes + self.recv_bytes


@dataclass(frozen=True, slots=True)
class HistoryView:
    """The recorded history of one process: timestamps and four series (NaN = unknown)."""

    ts: tuple[float, ...]
    sent_bps: tuple[float, ...]
    recv_bps: tuple[float, ...]
    cpu_percent: tuple[float, ...]
    rss_bytes: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ProcessView:
    """One process identity as of one tick. None means unknown, never zero."""

    pid: int
    create_time: float | None
    name: str
    cmdline: tuple[str, ...] = ()
    user: str | None = None
    ppid: int | None = None
    cgroup: str | None = None
    service: str | None = None
    sent_bytes: int | None = None
    recv_bytes: int | None = None
    sent_bps: float | None = None
    recv_bps: float | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    read_bps: float | None = None
    write_bps: float | None = None
    syscall_read_bytes: int | None = None
    syscall_write_bytes: int | None = None
    page_faults_cached: int | None = None
    page_faults_disk: int | None = None
    threads: int | None = None
    connection_count: int | None = None
    gpu_memory_bytes: int | None = None
    ebpf: ProcessProfile | None = None  # `--profile` (nettop_ui/profile.py)
    exited: bool = False
    note: str | None = None  # what the backend knows it gets wrong about these bytes
    spark: tuple[float, ...] = ()  # total bps over the last SPARK_SECONDS, oldest first
    connections: tuple[ConnView, ...] = ()
    # The table's row key: made once, read for every process on every tick.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", row_key(self.pid, self.create_time))

    @property
    def identity(self) -> ProcessKey:
        return (self.pid, self.create_time)

    @property
    def total_bps(self) -> float | None:
        if self.sent_bps is None or self.recv_bps is None:
            return None
        return self.sent_bps + self.recv_bps

    @property
    def total_bytes(self) -> int | None:
        if self.sent_bytes is None or self.recv_bytes is None:
            return None
        return self.sent_bytes + self.recv_bytes

    @property
    def had_traffic(self) -> bool:
        return bool(self.sent_bytes or self.recv_bytes)


@dataclass(frozen=True, slots=True)
class UnattributedView:
    """Bytes the backend saw but could not tie to a process."""

    sent_bytes: int
    recv_bytes: int
    sent_bps: float | None
    recv_bps: float | None


@dataclass(frozen=True, slots=True)
class RecordedFigures:
    """What a `run`/`attach` recording holds in place of the machine-wide figures (which
    it does not record): the tree's own sums, and the bytes on every interface but
    loopback. Rates come from the difference to the sample before; None is unknown.
    The history database (`replay --db`) has the sums over all processes instead: `scope`
    says which processes the sums cover."""

    scope: str = "tree"  # "tree": a run/attach recording's; "all": every process's
    tree_cpu_percent: float | None = None
    tree_rss_bytes: int | None = None
    tree_read_bps: float | None = None
    tree_write_bps: float | None = None
    nic_sent_bps: float | None = None
    nic_recv_bps: float | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything the UI shows for one tick."""

    ts: float
    interval_s: float
    processes: tuple[ProcessView, ...]
    unattributed: UnattributedView | None = None
    system: SystemStats | None = None
    gpu: GpuStats | None = None
    gpu_unavailable: str | None = None
    failure: BackendFailure | None = None
    traffic_known: bool = True  # False once the backend failed: rates are unknown from then
    folded_bytes: tuple[int, int] = (0, 0)  # (sent, recv) of exited processes folded away
    histories: dict[str, HistoryView] = field(default_factory=dict)
    recorded: RecordedFigures | None = None  # a replayed recording: what it has instead
    remotes: tuple[RemoteView, ...] | None = None  # None: the backend has no connections
    remotes_folded: tuple[int, int, int] = (0, 0, 0)  # (hosts, sent, recv) folded away

    def by_key(self) -> dict[str, ProcessView]:
        return {p.key: p for p in self.processes}


def _spark(history: SeriesSet | None, points: int) -> tuple[float, ...]:
    if history is None or not len(history):
        return ()
    sent = history["sent_bps"].last(points)
    recv = history["recv_bps"].last(points)
    return tuple(map(operator.add, sent, recv))  # of equal length: one ring


def _history(history: SeriesSet | None) -> HistoryView:
    if history is None:
        return HistoryView((), (), (), (), ())
    return HistoryView(
        tuple(history.ts),
        tuple(history["sent_bps"]),
        tuple(history["recv_bps"]),
        tuple(history["cpu_percent"]),
        tuple(history["rss_bytes"]),
    )


def _same(
    v: ProcessView, s: ProcessState, sent_bps: Any, recv_bps: Any, spark: Any, conns: bool
) -> bool:
    """Whether view `v` still says everything `s` would put in a new one (`conns`: its
    connections are known to be unchanged). Written out: the hot path of a freeze."""
    return (
        v.sent_bps == sent_bps
        and v.recv_bps == recv_bps
        and v.spark == spark
        and v.sent_bytes == s.sent_bytes
        and v.recv_bytes == s.recv_bytes
        and v.cpu_percent == s.cpu_percent
        and v.rss_bytes == s.rss_bytes
        and v.read_bps == s.read_bps
        and v.write_bps == s.write_bps
        and v.syscall_read_bytes == s.syscall_read_bytes
        and v.syscall_write_bytes == s.syscall_write_bytes
        and v.page_faults_cached == s.page_faults_cached
        and v.page_faults_disk == s.page_faults_disk
        and v.threads == s.threads
        and v.connection_count == s.connection_count
        and v.gpu_memory_bytes == s.gpu_memory_bytes
        and v.ebpf == s.ebpf
        and v.exited == s.exited
        and v.note == s.note
        and v.ppid == s.ppid
        and v.user == s.user
        and v.service == s.service
        and v.cgroup == s.cgroup
        and v.name == s.name
        and v.cmdline == tuple(s.cmdline)
        and (conns or _same_connections(v.connections, s.connections))
    )


def _same_connections(
    views: tuple[ConnView, ...], conns: Mapping[tuple[str, str, str], ConnectionState]
) -> bool:
    """Whether `views` still say what `conns` would (an idle connection: same totals, no
    rate): with thousands of open connections most processes change nothing a tick."""
    if len(views) != len(conns):
        return False
    for v, c in zip(views, conns.values(), strict=True):
        if (
            v.sent_bytes != c.sent_bytes
            or v.recv_bytes != c.recv_bytes
            or v.sent_bps != c.sent_bps
            or v.recv_bps != c.recv_bps
            or v.remote != c.remote
            or v.local != c.local
            or v.protocol != c.protocol
            or v.remote_name != c.remote_name
            or v.remote_scope != c.remote_scope
        ):
            return False
    return True


def view_of(
    state: ProcessState,
    spark_points: int,
    traffic_known: bool = True,
    old: ProcessView | None = None,
    old_stamp: int | None = None,
) -> ProcessView:
    """A frozen copy of one `ProcessState`; `old` itself if it still says the same.

    Most processes change nothing from one tick to the next. Handing on the same view
    lets the UI skip them by identity, and spares the garbage collector thousands of
    new objects a tick. `old_stamp`: the state's `conns_stamp` when `old` was made;
    while it is the same, old's connections are handed on without a look.
    """
    sent_bps, recv_bps = (state.sent_bps, state.recv_bps) if traffic_known else (None, None)
    spark = _spark(state.history, spark_points) if state.had_traffic else ()
    same_conns = old is not None and old_stamp == state.conns_stamp
    if old is not None and _same(old, state, sent_bps, recv_bps, spark, same_conns):
        return old
    conns: tuple[ConnView, ...] = ()
    if same_conns and old is not None:
        conns = old.connections
    elif state.connections:
        conns = tuple(
            ConnView(
                c.protocol,
                c.local,
                c.remote,
                c.sent_bytes,
                c.recv_bytes,
                c.sent_bps,
                c.recv_bps,
                c.remote_name,
                c.remote_scope,
            )
            for c in list(state.connections.values())
        )
    return ProcessView(
        pid=state.pid,
        create_time=state.create_time,
        name=state.name,
        cmdline=tuple(state.cmdline),
        user=state.user,
        ppid=state.ppid,
        cgroup=state.cgroup,
        service=state.service,
        sent_bytes=state.sent_bytes,
        recv_bytes=state.recv_bytes,
        sent_bps=sent_bps,
        recv_bps=recv_bps,
        cpu_percent=state.cpu_percent,
        rss_bytes=state.rss_bytes,
        read_bps=state.read_bps,
        write_bps=state.write_bps,
        syscall_read_bytes=state.syscall_read_bytes,
        syscall_write_bytes=state.syscall_write_bytes,
        page_faults_cached=state.page_faults_cached,
        page_faults_disk=state.page_faults_disk,
        threads=state.threads,
        connection_count=state.connection_count,
        gpu_memory_bytes=state.gpu_memory_bytes,
        ebpf=state.ebpf,
        exited=state.exited,
        note=state.note,
        spark=spark,
        connections=conns,
    )


def build_frame(
    snap: Snapshot,
    watch: Collection[str] = (),
    traffic_known: bool = True,
    previous_remotes: Mapping[str, RemoteView] | None = None,
    views: tuple[ProcessView, ...] | None = None,
    watched: Iterable[ProcessState] | None = None,
) -> Frame:
    """Freeze `snap`; full histories are copied only for the row keys in `watch`.

    `previous_remotes`: the last frame's views of remote hosts by address, handed on
    where nothing changed. `views`: those of `snap.processes`, made already (the
    process views FrameCollector.freeze hands on); None: made here. `watched`: the
    processes of `watch`, found already; None: looked for here.
    """
    if views is None:
        points = spark_points(snap.interval_s)
        views = tuple(view_of(p, points, traffic_known) for p in snap.processes)
    if watched is None:
        watched = watched_in(views, snap.processes, watch)
    histories = {row_key(s.pid, s.create_time): _history(s.history) for s in watched}
    unattributed = None
    if snap.unattributed is not None:
        u = snap.unattributed
        unattributed = UnattributedView(
            u.sent_bytes,
            u.recv_bytes,
            u.sent_bps if traffic_known else None,
            u.recv_bps if traffic_known else None,
        )
    remotes = None
    if snap.remotes is not None:
        old_hosts = previous_remotes or {}
        recounted = snap.remotes_recounted
        remotes = tuple(
            _same_host(old_hosts.get(h.address), h, traffic_known, recounted) for h in snap.remotes
        )
    rf = snap.remotes_folded
    return Frame(
        ts=snap.ts,
        interval_s=snap.interval_s,
        processes=views,
        unattributed=unattributed,
        system=snap.system,
        gpu=snap.gpu,
        gpu_unavailable=snap.gpu_unavailable,
        failure=snap.failure,
        traffic_known=traffic_known,
        folded_bytes=(snap.folded.sent_bytes, snap.folded.recv_bytes) if snap.folded else (0, 0),
        histories=histories,
        remotes=remotes,
        remotes_folded=(rf.hosts, rf.sent_bytes, rf.recv_bytes) if rf else (0, 0, 0),
    )


def watched_in(
    views: Iterable[ProcessView], processes: Iterable[ProcessState], watch: Collection[str]
) -> list[ProcessState]:
    """The processes whose row keys are in `watch`, by a walk over all of them."""
    if not watch:
        return []
    return [state for view, state in zip(views, processes, strict=True) if view.key in watch]


def _same_host(
    old: RemoteView | None, h: RemoteHostState, traffic_known: bool, recounted: bool
) -> RemoteView:
    """`old` when it still says what `h` does (an idle host: the host view then skips its
    row by identity, as the process table does an unchanged process's), else a new view.
    What is open (connections, protocols, ports, processes) changes only in a tick that
    `recounted`: until then a new view takes old's (the same objects, which the host
    view's cells are cached by); the rest is compared field by field."""
    sent_bps, recv_bps = (h.sent_bps, h.recv_bps) if traffic_known else (None, None)
    if old is not None and not recounted:
        count, protocols, ports, pids = old.connection_count, old.protocols, old.ports, old.pids
    else:
        count, protocols, ports = h.connection_count, h.protocols, h.ports
        pids = tuple(sorted(h.pids.items()))
        if old is not None and old.pids == pids:
            pids = old.pids
    if (
        old is not None
        and old.sent_bytes == h.sent_bytes
        and old.recv_bytes == h.recv_bytes
        and old.sent_bps == sent_bps
        and old.recv_bps == recv_bps
        and old.name == h.name
        and old.name_source == h.name_source
        and old.scope == h.scope
        and old.connection_count == count
        and old.protocols == protocols
        and old.ports == ports
        and old.pids is pids
    ):
        return old
    return RemoteView(
        h.address,
        h.scope,
        h.name,
        h.name_source,
        h.sent_bytes,
        h.recv_bytes,
        sent_bps,
        recv_bps,
        count,
        protocols,
        ports,
        pids,
    )


class FrameCollector(Collector):
    """A Collector that also freezes each snapshot into a `Frame`, in the calling thread.

    `watch` (row keys whose full history the UI wants) is replaced whole by the UI
    thread and read here, so no lock is needed. After `fail_traffic()` (the backend
    died) per-process rates are unknown: they are cleared before every scan, so the
    history records gaps instead of repeating the last rate forever.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch: frozenset[str] = frozenset()
        self.frame: Frame | None = None
        # The last frame's views by identity, and their states' conns_stamp then (two
        # dicts on one set of keys: a (view, stamp) pair per process would be 2,000 more
        # objects a tick for the garbage collector to walk).
        self._views: dict[ProcessKey, ProcessView] = {}
        self._conn_stamps: dict[ProcessKey, int] = {}
        self._hosts: dict[str, RemoteView] = {}  # the last frame's, by address
        # Views made again every frame though their process did not change: those whose
        # sparkline still slides (not yet all zeros, or not yet full length).
        self._sliding: set[ProcessKey] = set()
        self._frozen_as: tuple[int, bool] | None = None  # (spark points, traffic_known)
        self.traffic_known = True
        self._lock = threading.Lock()

    def _begin_tick(self) -> set[ProcessKey] | None:
        # Traffic unknown: every process's rates were just cleared (`ingest`).
        return super()._begin_tick() if self.traffic_known else None

    def fail_traffic(self) -> None:
        self.traffic_known = False
        self.per_process_bytes = False  # processes first seen from now on: bytes unknown

    def ingest(self, item: TrafficSample | BackendFailure) -> Snapshot:
        with self._lock:
            if not self.traffic_known:
                for state in self.processes.values():
                    state.sent_bps = state.recv_bps = None
            snap = super().ingest(item)
            self.freeze(snap)
            return snap

    def first_look(self) -> Snapshot | None:
        """`Collector.first_look`, frozen into `self.frame` too."""
        with self._lock:
            snap = super().first_look()
            if snap is not None:
                self.freeze(snap)
            return snap

    def close(self) -> None:
        with self._lock:  # not under an ingest still running in its thread
            super().close()

    def _watched(self, processes: Mapping[ProcessKey, ProcessState]) -> list[ProcessState] | None:
        """The processes of the watched row keys (the cursor's row, the drill-downs'),
        found by the pid in the key, not by a walk over every process each tick; None
        when a process row's key is not found that way (an exited process whose pid
        was taken since, or one gone)."""
        found = []
        for key in self.watch:
            digits = key.partition(":")[0]
            if not digits.isdigit():  # not a process's row: a group's, the unattributed
                continue
            pid = int(digits)
            for candidate in (self._live_by_pid.get(pid), self._gone_by_pid.get(pid)):
                state = processes.get(candidate) if candidate is not None else None
                if state is not None and row_key(state.pid, state.create_time) == key:
                    found.append(state)
                    break
            else:
                return None
        return found

    def freeze(self, snap: Snapshot) -> Frame:
        """Turn `snap` (this collector's latest, or its processes in part) into
        `self.frame`, handing on the views of unchanged processes: only those in
        `snap.changed` (and the sliding sparklines) are looked at, unless anything may
        have changed."""
        points, known = spark_points(snap.interval_s), self.traffic_known
        views, stamps, sliding = self._views, self._conn_stamps, self._sliding
        processes: Mapping[ProcessKey, ProcessState] = self.processes
        if len(snap.processes) != len(processes):  # some left out (TreeFrameCollector)
            processes = {p.key: p for p in snap.processes}
        changed = snap.changed
        if changed is None or self._frozen_as != (points, known):
            changed = set(processes)  # every view made again (or handed on)
        self._frozen_as = (points, known)
        for gone in views.keys() - processes.keys() if len(views) > len(processes) else ():
            del views[gone], stamps[gone]
            sliding.discard(gone)

        def make(key: ProcessKey) -> None:
            state = processes.get(key)
            if state is None:
                return
            if state.had_traffic:  # its sparkline: the rows it missed while unchanged
                self.history_of(state)
            view = views[key] = view_of(state, points, known, views.get(key), stamps.get(key))
            stamps[key] = state.conns_stamp
            if view.spark and (any(view.spark) or len(view.spark) < points):
                sliding.add(key)
            else:
                sliding.discard(key)

        for key in changed | sliding:
            make(key)
        try:
            ordered = tuple(map(views.__getitem__, processes))
        except KeyError:  # one never seen changed (a tree's new member): made now
            for key in processes.keys() - views.keys():
                make(key)
            ordered = tuple(map(views.__getitem__, processes))
        watched = self._watched(processes)
        if watched is None:  # one not found by its pid
            watched = watched_in(ordered, processes.values(), self.watch)
        for state in watched:
            self.history_of(state)
        frame = build_frame(
            snap,
            self.watch,
            known,
            previous_remotes=self._hosts,
            views=ordered,
            watched=watched,
        )
        self._hosts = {h.address: h for h in frame.remotes or ()}
        self.frame = frame
        return frame
