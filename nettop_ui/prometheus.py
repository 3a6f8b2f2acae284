"""Prometheus exporter: `nettop-ui --prometheus [HOST:]PORT` serves /metrics.

The exporter is one of the monitor's sinks: every tick reaches `Exporter.update` on the
collector's worker thread, between two collector ticks (next to the TUI too, so it
never holds up the UI's event loop); `update` folds it into per-group counters and
swaps an immutable `View` in under a lock. A scrape (`Exporter.collect`, on the HTTP
server's threads) only reads the latest view, so it never waits on /proc nor sees a
half-updated tick.

Rules (docs/prometheus.md says the same for users):

- Counters are counters, never rates, in base units (bytes, seconds).
- Processes are grouped (`groupname`: program name by default, or user, cgroup,
  service, executable; the cgroup and service are the collector's, nettop_ui.services).
  A group's counter only ever adds each tick's per-process deltas, each
  process tracked by (pid, create_time), so a process that exits takes nothing away.
  Network bytes count from the monitor's start; CPU seconds and disk bytes from the
  start of processes born after the monitor's first tick (older processes count from
  that tick, not from their birth, so the first scrape shows no fake burst).
- At most `top` groups get their own series: those with the most network bytes since
  the start (then CPU seconds), so membership only changes when a group overtakes
  another. The other groups' deltas are added to `groupname="other"`, which never goes
  backwards either. A group that drops out of the top keeps its value and its series
  goes stale; if it comes back, its series resumes from its full total.
- A value the backend cannot know (per-process bytes with the psutil backend) is not
  exported at all, never as 0.
- Remote hosts (a backend with per-connection data) follow the same rule: the `top`
  hosts with the most bytes since the start get their own series, labelled with their
  address, name and scope; the other hosts' deltas go to `address="other"`.
"""

from __future__ import annotations

import contextlib
import heapq
import operator
import os
import re
import socket
import socketserver
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector as PromCollector

from nettop_ui.collector import ProcessKey, ProcessState, Snapshot
from nettop_ui.core import Backend, BackendFailure, TrafficSample
from nettop_ui.remotes import RemoteHostState
from nettop_ui.services import NO_SERVICE

GROUP_BY = ("name", "user", "cgroup", "service", "exe")
DEFAULT_TOP = 50
OTHER = "other"  # the groups beyond the top N
# A program really called "other" is shown as "[other]", one called "[other]" as
# "[[other]]", and so on: never merged with the bucket nor with each other.
_OTHER_LIKE = re.compile(r"(\[*)other(\]*)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")  # and the backslash, so escapes stay unique
MAX_CONNECTIONS = 16  # scrapes served at once; a connection beyond is answered 503
IDLE_TIMEOUT_S = 3.0  # a connection silent this long is closed
BACKLOG = 128
UNKNOWN = "unknown"
UNCONNECTED = "unconnected"  # the address label of bytes without a remote endpoint
# The cumulative per-process figures summed per group, in this order.
COUNTERS = (
    "sent_bytes",
    "recv_bytes",
    "cpu_user_s",
    "cpu_system_s",
    "read_bytes",
    "write_bytes",
    "syscall_read_bytes",
    "syscall_write_bytes",
    "page_faults_cached",
    "page_faults_disk",
)
(
    SENT,
    RECV,
    CPU_USER,
    CPU_SYSTEM,
    READ,
    WRITE,
    SYSCALL_READ,
    SYSCALL_WRITE,
    MINOR_FAULTS,
    MAJOR_FAULTS,
) = range(len(COUNTERS))
# The counters exported as one family each: (name after the prefix, help, index).
PLAIN_COUNTERS = (
    ("read_bytes", "Disk bytes read (/proc/PID/io read_bytes).", READ),
    ("write_bytes", "Disk bytes written (/proc/PID/io write_bytes).", WRITE),
    (
        "syscall_read_bytes",
        "Bytes read(2) and alike returned, page-cache hits and pipes included "
        "(/proc/PID/io rchar).",
        SYSCALL_READ,
    ),
    (
        "syscall_write_bytes",
        "Bytes write(2) and alike took, page cache included (/proc/PID/io wchar).",
        SYSCALL_WRITE,
    ),
    ("minor_page_faults", "Page faults served from memory (minflt).", MINOR_FAULTS),
    ("major_page_faults", "Page faults that waited on the disk (majflt).", MAJOR_FAULTS),
)
FROM_MONITOR_START = (SENT, RECV)  # the others count from the process's start
Values = tuple[float | None, ...]  # one figure per COUNTERS entry; None: unknown
_counters_of = operator.attrgetter(*COUNTERS)


@dataclass(slots=True)
class Totals:
    """Running sums of COUNTERS for one group; `known` says which ever had a value."""

    values: list[float] = field(default_factory=lambda: [0.0] * len(COUNTERS))
    known: list[bool] = field(default_factory=lambda: [False] * len(COUNTERS))

    def add(self, other: Totals) -> None:
        for i, value in enumerate(other.values):
            self.values[i] += value
            self.known[i] = self.known[i] or other.known[i]

    def exported(self) -> Values:
        return tuple(v if k else None for v, k in zip(self.values, self.known, strict=True))

    def rank(self) -> tuple[float, float]:
        """Network bytes, then CPU seconds: what puts a group in the top N."""
        v = self.values
        return (v[SENT] + v[RECV], v[CPU_USER] + v[CPU_SYSTEM])


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One group's series in a view."""

    group: str
    counters: Values
    procs: int  # live processes
    rss_bytes: int | None
    vms_bytes: int | None
    gpu_memory: tuple[tuple[str, int], ...] = ()  # (device index, bytes), nonzero only


@dataclass(frozen=True, slots=True)
class PidRow:
    """One live process's series (`--prometheus-pids`)."""

    pid: int
    group: str
    counters: Values
    rss_bytes: int | None
    vms_bytes: int | None


@dataclass(frozen=True, slots=True)
class RemoteRow:
    """One remote host's series (label values, escaped) in a view."""

    address: str
    name: str
    scope: str
    sent_bytes: float
    recv_bytes: float


@dataclass(frozen=True, slots=True)
class View:
    """Everything a scrape renders, as of one monitor tick. Never mutated."""

    ts: float
    backend: str
    layer: str
    coverage: str
    groups: tuple[GroupRow, ...]
    pids: tuple[PidRow, ...] | None
    unattributed: tuple[int, int] | None
    remotes: tuple[RemoteRow, ...] | None = None  # None: no per-connection data


def read_exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def escaped(text: str) -> str:
    """`text` as a label value: control characters (ESC, CR, ...) and the backslash
    written as escapes, so two different texts never give the same label."""
    return _CONTROL.sub(lambda m: "\\" if m[0] == "\\" else f"\\x{ord(m[0]):02x}", text)


def group_label(name: str) -> str:
    """`name` as a groupname label value: escaped, and never `other`, the bucket's name
    (see _OTHER_LIKE). Two different names never give the same label."""
    name = escaped(name)
    found = _OTHER_LIKE.fullmatch(name)
    if found and len(found[1]) == len(found[2]):
        return f"[{name}]"
    return name


def _sum_known(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known or not values else None


class Exporter(PromCollector):
    """Turns monitor snapshots into Prometheus metric families; see the module doc."""

    def __init__(
        self,
        backend: type[Backend],
        *,
        group_by: str = "name",
        top: int = DEFAULT_TOP,
        pids: bool = False,
    ) -> None:
        if group_by not in GROUP_BY:
            raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}")
        self.group_by = group_by
        self.top = top
        self.pids = pids
        self._backend = backend
        self._lock = threading.Lock()
        self._view: View | None = None
        self._ticks = 0
        # Per process: its cumulative figures at the last tick, and its group then.
        self._last: dict[ProcessKey, tuple[Values, str]] = {}
        self._read_group: dict[ProcessKey, tuple[str, str]] = {}  # exe: (name, group)
        self._totals: dict[str, Totals] = {}
        self._ever_named: set[str] = set()
        self._other = Totals()
        self._other_used = False
        self._self = psutil.Process()
        self._remote_last: dict[str, tuple[int, int]] = {}  # per address: bytes last tick
        self._remote_other = [0, 0]  # the deltas of the hosts without a series of their own
        self._remote_other_used = False

    # -- the monitor side --------------------------------------------------------------

    def group_of(self, p: ProcessState) -> str:
        if self.group_by == "name":
            group = p.name
        elif self.group_by == "user":
            group = p.user or UNKNOWN
        elif self.group_by == "cgroup":
            group = p.cgroup or UNKNOWN
        elif self.group_by == "service":
            group = p.service or (UNKNOWN if p.cgroup is None else NO_SERVICE)
        else:
            # Read once per process (again after an exec renames it), and only while it
            # lives: a dead process's PID may already belong to another one.
            cached = self._read_group.get(p.key)
            if cached is not None and cached[0] == p.name:
                return cached[1]
            if p.exited or p.create_time is None:
                return cached[1] if cached else UNKNOWN
            group = group_label(read_exe(p.pid) or UNKNOWN)
            self._read_group[p.key] = (p.name, group)
            return group
        return group_label(group)

    def _deltas(self, p: ProcessState, group: str, first_tick: bool, into: Totals) -> None:
        """Add what `p` did since the last tick to `into`; remember its figures."""
        now: tuple[float | None, ...] = _counters_of(p)
        last = self._last.get(p.key)
        if last is not None and last == (now, group):
            return  # the common case: a process that did nothing since the last tick
        prev = last[0] if last is not None else None
        kept: list[float | None] = []
        for i, value in enumerate(now):
            before = prev[i] if prev is not None else None
            kept.append(value if value is not None else before)
            if value is None:
                continue
            if before is not None:
                delta = value - before
            elif prev is None and (i in FROM_MONITOR_START or not first_tick):
                delta = value  # new since the last tick: all of it happened since
            else:
                delta = 0.0  # first look at an old process: its past is not ours to count
            into.values[i] += max(delta, 0.0)
            into.known[i] = True
        self._last[p.key] = (tuple(kept), group)

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self.update(snap)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        self._backend = fallback or self._backend  # the labels name the one producing now
        self.update(snap)

    def end(self, failure: BackendFailure | None) -> None:
        pass

    def update(self, snap: Snapshot) -> None:
        """Fold one snapshot in and publish a new view. Call between collector ticks."""
        first_tick = self._ticks == 0
        self._ticks += 1
        tick: dict[str, Totals] = {}
        live: dict[str, list[ProcessState]] = {}
        seen: set[ProcessKey] = set()
        for p in snap.processes:
            group = self.group_of(p)
            seen.add(p.key)
            self._deltas(p, group, first_tick, tick.setdefault(group, Totals()))
            if not p.exited:
                live.setdefault(group, []).append(p)
        for key in self._last.keys() - seen:  # gone from the snapshot: nothing more to add
            del self._last[key]
            self._read_group.pop(key, None)
        for group, delta in tick.items():
            self._totals.setdefault(group, Totals()).add(delta)
        for group in self._totals.keys() - tick.keys() - self._ever_named:
            del self._totals[group]  # no process left, never had a series of its own
        named = self._named()
        self._ever_named |= named
        others: list[ProcessState] = []
        for group, delta in tick.items():
            if group not in named:
                self._other.add(delta)
                self._other_used = True
                others.extend(live.get(group, ()))
        gpu = snap.gpu.process_memory_by_device if snap.gpu is not None else {}
        rows = [self._row(g, self._totals[g].exported(), live.get(g, []), gpu) for g in named]
        rows.sort(key=lambda r: r.group)
        if self._other_used:
            rows.append(self._row(OTHER, self._other.exported(), others, gpu))
        pid_rows = None
        if self.pids:
            pid_rows = tuple(
                PidRow(p.pid, group, _counters_of(p), p.rss_bytes, p.vms_bytes)
                for group, procs in live.items()
                for p in procs
            )
        u = snap.unattributed
        cov = self._backend.coverage
        remotes = self._remote_rows(snap.remotes) if snap.remotes is not None else None
        view = View(
            ts=snap.ts,
            backend=self._backend.name,
            layer=self._backend.layer,
            coverage=",".join(cov.protocols) + (";per_connection" if cov.per_connection else ""),
            groups=tuple(rows),
            pids=pid_rows,
            unattributed=(u.sent_bytes, u.recv_bytes) if u is not None else None,
            remotes=remotes,
        )
        with self._lock:
            self._view = view

    def _remote_rows(self, hosts: list[RemoteHostState]) -> tuple[RemoteRow, ...]:
        """The top hosts by bytes since the start, each with its own totals (the
        collector's, since the start), then `other`: every other host's deltas."""
        last, self._remote_last = self._remote_last, {}
        for h in hosts:
            self._remote_last[h.address] = (h.sent_bytes, h.recv_bytes)
        # Ties go to the host seen first (the collector's order), for stable series.
        named = heapq.nlargest(self.top, hosts, key=lambda h: h.sent_bytes + h.recv_bytes)
        ranked = {h.address for h in named}
        for h in hosts:
            if h.address in ranked:
                continue
            sent, recv = last.get(h.address, (0, 0))
            self._remote_other[0] += max(h.sent_bytes - sent, 0)
            self._remote_other[1] += max(h.recv_bytes - recv, 0)
            self._remote_other_used = True
        rows = [
            RemoteRow(
                escaped(h.address) or UNCONNECTED,
                escaped(h.name or ""),
                h.scope,
                h.sent_bytes,
                h.recv_bytes,
            )
            for h in named
        ]
        rows.sort(key=lambda r: r.address)
        if self._remote_other_used:
            rows.append(RemoteRow(OTHER, "", "", *self._remote_other))
        return tuple(rows)

    def _named(self) -> set[str]:
        """The top N groups; ties go to the group seen first (dict order), for stability."""
        if len(self._totals) <= self.top:
            return set(self._totals)
        return set(heapq.nlargest(self.top, self._totals, key=lambda g: self._totals[g].rank()))

    @staticmethod
    def _row(
        group: str, counters: Values, procs: list[ProcessState], gpu: dict[str, dict[int, int]]
    ) -> GroupRow:
        memory = tuple(
            (dev, used)
            for dev, by_pid in sorted(gpu.items())
            if (used := sum(by_pid.get(p.pid, 0) for p in procs))
        )
        return GroupRow(
            group,
            counters,
            len(procs),
            _sum_known([p.rss_bytes for p in procs]),
            _sum_known([p.vms_bytes for p in procs]),
            memory,
        )

    # -- the scrape side ---------------------------------------------------------------

    @property
    def view(self) -> View | None:
        with self._lock:
            return self._view

    def collect(self) -> Iterator[Metric]:
        yield from self._own_metrics()
        view = self.view
        if view is None:
            return
        info = InfoMetricFamily("nettop_backend", "The backend measuring network bytes.")
        info.add_metric(
            [], {"backend": view.backend, "layer": view.layer, "coverage": view.coverage}
        )
        yield info
        ts = GaugeMetricFamily(
            "nettop_exporter_last_sample_timestamp_seconds",
            "Unix time of the monitor tick these figures come from.",
            value=view.ts,
        )
        yield ts
        yield from _families("nettop_process", "groupname", view.groups, lambda r: [r.group])
        procs = GaugeMetricFamily(
            "nettop_process_num_procs", "Live processes in the group.", labels=["groupname"]
        )
        gpu = GaugeMetricFamily(
            "nettop_process_gpu_memory_bytes",
            "GPU memory used by the group's live processes, per GPU (NVML).",
            labels=["groupname", "gpu"],
        )
        for r in view.groups:
            procs.add_metric([r.group], r.procs)
            for dev, used in r.gpu_memory:
                gpu.add_metric([r.group, dev], used)
        yield procs
        if gpu.samples:
            yield gpu
        if view.pids is not None:
            yield from _families("nettop_pid", "pid", view.pids, lambda r: [str(r.pid), r.group])
        if view.remotes is not None:
            yield from _remote_families(view.remotes)
        if view.unattributed is not None:
            sent, recv = view.unattributed
            doc = "Network bytes the backend saw but could not tie to a process, since start."
            yield CounterMetricFamily("nettop_unattributed_network_transmit_bytes", doc, value=sent)
            yield CounterMetricFamily("nettop_unattributed_network_receive_bytes", doc, value=recv)

    def _own_metrics(self) -> Iterator[Metric]:
        times = os.times()
        cpu = CounterMetricFamily(
            "nettop_exporter_cpu_seconds",
            "CPU time of the nettop-ui process (monitor, exporter and TUI, all threads).",
            labels=["mode"],
        )
        cpu.add_metric(["user"], times.user)
        cpu.add_metric(["system"], times.system)
        yield cpu
        try:
            rss = self._self.memory_info().rss
        except psutil.Error:
            return
        yield GaugeMetricFamily(
            "nettop_exporter_resident_memory_bytes",
            "Resident memory of the nettop-ui process.",
            value=rss,
        )


def _families(
    prefix: str,
    first_label: str,
    rows: Sequence[GroupRow] | Sequence[PidRow],
    labels_of: Callable[..., list[str]],
) -> Iterator[Metric]:
    """The counter and memory families for group rows or pid rows; unknown values left out."""
    labels = [first_label, "groupname"] if first_label == "pid" else [first_label]
    what = "since the monitor started"
    tx = CounterMetricFamily(
        f"{prefix}_network_transmit_bytes",
        f"Network bytes sent, in the backend's layer (nettop_backend_info), {what}.",
        labels=labels,
    )
    rx = CounterMetricFamily(
        f"{prefix}_network_receive_bytes",
        f"Network bytes received, in the backend's layer (nettop_backend_info), {what}.",
        labels=labels,
    )
    cpu = CounterMetricFamily(
        f"{prefix}_cpu_seconds", "CPU time, by mode.", labels=[*labels, "mode"]
    )
    plain = [
        (CounterMetricFamily(f"{prefix}_{name}", doc, labels=labels), i)
        for name, doc, i in PLAIN_COUNTERS
    ]
    mem = GaugeMetricFamily(
        f"{prefix}_memory_bytes",
        "Memory of the live processes, by type.",
        labels=[*labels, "memtype"],
    )
    for r in rows:
        lv = labels_of(r)
        c = r.counters
        for counter, i in ((tx, SENT), (rx, RECV), *plain):
            if (value := c[i]) is not None:
                counter.add_metric(lv, value)
        for mode, i in (("user", CPU_USER), ("system", CPU_SYSTEM)):
            if (value := c[i]) is not None:
                cpu.add_metric([*lv, mode], value)
        for memtype, size in (("resident", r.rss_bytes), ("virtual", r.vms_bytes)):
            if size is not None:
                mem.add_metric([*lv, memtype], size)
    families: tuple[Metric, ...] = (tx, rx, cpu, *(f for f, _ in plain), mem)
    for family in families:
        if family.samples:
            yield family


def _remote_families(rows: Sequence[RemoteRow]) -> Iterator[Metric]:
    labels = ["address", "name", "scope"]
    doc = "Network bytes {} the remote host, in the backend's layer, since the monitor started."
    tx = CounterMetricFamily(
        "nettop_remote_network_transmit_bytes", doc.format("sent to"), labels=labels
    )
    rx = CounterMetricFamily(
        "nettop_remote_network_receive_bytes", doc.format("received from"), labels=labels
    )
    for r in rows:
        tx.add_metric([r.address, r.name, r.scope], r.sent_bytes)
        rx.add_metric([r.address, r.name, r.scope], r.recv_bytes)
    if rows:
        yield tx
        yield rx


# -- serving ------------------------------------------------------------------------------


class ListenError(Exception):
    """A bad `--prometheus` address, or one that cannot be bound: one line for the user."""


def parse_listen(text: str) -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port); the host defaults to 127.0.0.1."""
    host, port = "127.0.0.1", text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ListenError(f"--prometheus {text!r}: expected [IPv6]:PORT")
        port = rest[1:]
    elif ":" in text:
        host, _, port = text.rpartition(":")
        if ":" in host:
            raise ListenError(f"--prometheus {text!r}: put an IPv6 address in brackets, [::1]:PORT")
    if not host:
        raise ListenError(f"--prometheus {text!r}: empty host")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ListenError(f"--prometheus {text!r}: the port must be a number from 0 to 65535")
    return host, int(port)


@dataclass
class MetricsServer:
    """The running HTTP server; `url` is where /metrics is served."""

    httpd: socketserver.BaseServer
    thread: threading.Thread
    url: str

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


INDEX = b'<html><body><a href="/metrics">/metrics</a>: nettop-ui metrics</body></html>\n'
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Handler(BaseHTTPRequestHandler):
    """GET /metrics (and a one-link index at /); 404 for any other path."""

    timeout = IDLE_TIMEOUT_S  # per read and write: a silent client is dropped
    metrics: CollectorRegistry  # set on the subclass `serve` makes

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/metrics":
            encode, kind = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, kind, encode(self.metrics))
        elif path == "/":
            self._reply(200, "text/html; charset=utf-8", INDEX)
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: see /metrics\n")

    def _reply(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # no access log: stderr belongs to the TUI or to the user's one-line messages


class _Server(ThreadingHTTPServer):
    """At most MAX_CONNECTIONS connections served at once, each in its own thread;
    one more is answered 503 and closed at once, so threads and file descriptors stay
    bounded and the monitor, in the same process, can always open /proc files."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], family: int, handler: type[_Handler]) -> None:
        self.address_family = family
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-reply is no error of the exporter's


def serve(exporter: Exporter, listen: str) -> MetricsServer:
    """Serve the exporter's /metrics on `listen` ([HOST:]PORT) in a daemon thread."""
    host, port = parse_listen(listen)
    metrics = CollectorRegistry()
    metrics.register(exporter)
    handler = type("MetricsHandler", (_Handler,), {"metrics": metrics})
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        httpd = _Server((host, port), family, handler)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ListenError(f"cannot serve Prometheus metrics on {host}:{port}: {why}") from None
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    bound = httpd.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return MetricsServer(httpd, thread, f"http://{shown}:{bound}/metrics")
