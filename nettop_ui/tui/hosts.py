"""The remote-host view (`h`): one row per remote address instead of one per process.

`HOST_TABLE` declares its columns the way `columns.TABLE` declares the process table's
(getters over a `RemoteView`, formatters, sort keys), and `build_host_rows` turns a
frame's `remotes` into `RowData` under the same `ViewOptions`: sort, the `/` filter,
rates or totals, bits. Rows are keyed by address; the bytes without a remote address
and the hosts folded away (see `remotes.RemoteTable.max_hosts`) get a row each.
Loopback and this machine's own addresses (scope "local") show only with `L`.

No Textual here: the table widget (`process_table.ProcessTable`) draws these rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nettop_ui.format import Scale
from nettop_ui.resolve import SOURCE as RESOLVER
from nettop_ui.tui.columns import Column, ColumnSet, _count, _traffic
from nettop_ui.tui.frame import Frame, ProcessView, RemoteView
from nettop_ui.tui.model import Matcher, RowData, RowKind, SortedRows, ViewOptions
from nettop_ui.tui.safe import safe_text

UNCONNECTED_KEY = "unconnected"  # the row of bytes without a remote address ("" in remotes)
FOLDED_KEY = "folded"  # the row of the hosts folded away
PORTS_TEXT = 12  # PORTS cell: at most this many characters, "+N" included
ADDRESS_WIDTH = 24


@dataclass(frozen=True, slots=True)
class HostName:
    """The NAME cell: the name, or the address until a name is known; local or not."""

    text: str
    local: bool = False
    reverse: bool = False  # a reverse lookup's name (PTR, /etc/hosts), not one a process asked for

    def __lt__(self, other: HostName) -> bool:
        return self.text.lower() < other.text.lower()


@dataclass(frozen=True, slots=True)
class Talkers:
    """The PROCS cell: how many processes talk to the host, and their names, most first."""

    count: int
    names: tuple[str, ...]

    def __lt__(self, other: Talkers) -> bool:
        return self.count < other.count


def talkers(h: RemoteView) -> Talkers:
    """The processes on `h`, their names ordered by how many of them share it, then A-Z."""
    return _talkers(h.pids)


# Cached: a moving host's row is made again every tick, its processes mostly the same.
@lru_cache(maxsize=4096)
def _talkers(pids: tuple[tuple[int, str], ...]) -> Talkers:
    counts = Counter(name for _pid, name in pids)
    names = sorted(counts, key=lambda n: (-counts[n], n))
    return Talkers(len(pids), tuple(names))


def compact_ports(ports: tuple[int, ...], limit: int = PORTS_TEXT) -> str:
    """`443,80,+3`: as many ports as fit in `limit` characters, then how many more."""
    shown: list[str] = []
    for i, port in enumerate(ports):
        rest = len(ports) - i - 1
        candidate = ",".join([*shown, str(port)]) + (f",+{rest}" if rest else "")
        if len(candidate) > limit:
            return ",".join([*shown, f"+{len(ports) - i}"])
        shown.append(str(port))
    return ",".join(shown)


def _name_text(v: Any, scale: Scale, marked: bool) -> str:
    if v is None:
        return ""
    suffix = (" (ptr)" if v.reverse else "") + ("  (local)" if v.local else "")
    return safe_text(v.text, 120) + suffix  # names are untrusted


def _procs_text(v: Any, scale: Scale, marked: bool) -> str:
    if v is None:
        return ""
    if not v.count:
        return " 0"
    return f" {v.count} " + ",".join(safe_text(n, 40) for n in v.names)


def _up(h: RemoteView, totals: bool) -> Any:
    return h.sent_bytes if totals else h.sent_bps


def _down(h: RemoteView, totals: bool) -> Any:
    return h.recv_bytes if totals else h.recv_bps


HOST_TABLE = ColumnSet(
    (
        Column(
            "address", "ADDRESS", ADDRESS_WIDTH, 0, lambda h, t: h.address,
            lambda v, b, m: safe_text(v, ADDRESS_WIDTH - 1) if v is not None else "",
            descending=False, justify="left", combine=None,
        ),
        Column(
            "name", "NAME", 0, 0, lambda h, t: None, _name_text,
            descending=False, justify="left", combine=None,
        ),
        Column("up", "UP/s", 9, 1, _up, _traffic, "UP"),
        Column("down", "DOWN/s", 9, 1, _down, _traffic, "DOWN"),
        Column("total", "TOTAL", 10, 1, lambda h, t: h.total_bytes, _traffic),
        Column("conns", "CONNS", 7, 3, lambda h, t: h.connection_count, _count),
        Column(
            "proto", " PROTO", 9, 5, lambda h, t: ",".join(h.protocols),
            lambda v, b, m: " " + safe_text(v, 7) if v is not None else "",
            descending=False, justify="left",
        ),
        Column(
            "ports", " PORTS", 14, 4, lambda h, t: h.ports,
            lambda v, b, m: " " + compact_ports(v) if v is not None else "",
            justify="left", sort_key=len,
        ),
        Column(
            "procs", " PROCS", 26, 2, lambda h, t: talkers(h), _procs_text,
            justify="left",
        ),
    )
)  # fmt: skip


def host_matches(
    matcher: Matcher, h: RemoteView, processes: Mapping[int, ProcessView] | None = None
) -> bool:
    """The one place the `/` filter decides on a host: words match its address, name and
    the names of the processes talking to it; field terms as `Filter.matches_host` says
    (`processes`: the frame's, by PID, for user:, service: and cgroup:)."""
    f = matcher.filter
    return f is None or not f.active or f.matches_host(h, processes)


def host_label(h: RemoteView, numeric: bool) -> HostName:
    local = h.scope == "local"
    if not h.address:
        return HostName("(no remote address)", local)
    if numeric or h.name is None:
        return HostName(h.address, local)
    return HostName(h.name, local, reverse=h.name_source == RESOLVER)


def host_values(h: RemoteView, opts: ViewOptions) -> tuple[Any, ...]:
    """`h`'s value in every column of HOST_TABLE."""
    values = [c.get(h, opts.totals) for c in HOST_TABLE.all]
    values[HOST_TABLE.index["name"]] = host_label(h, opts.numeric)
    return tuple(values)


def _folded_row(frame: Frame, opts: ViewOptions) -> RowData | None:
    hosts, sent, recv = frame.remotes_folded
    if not hosts:
        return None
    per_column: dict[str, Any] = {
        "name": HostName(f"({hosts:,} idle hosts folded)"),
        "up": sent if opts.totals else None,  # their rates are not kept
        "down": recv if opts.totals else None,
        "total": sent + recv,
    }
    values = tuple(per_column.get(c.key) for c in HOST_TABLE.all)
    return RowData(FOLDED_KEY, "folded", values, table=HOST_TABLE)


class HostRowCache:
    """Host rows kept from one `build_host_rows` to the next, as `model.RowCache` keeps
    process rows: the frame hands on an idle host's `RemoteView` as is, so its row is
    handed on too and the table skips it by identity."""

    def __init__(self) -> None:
        self._rows: dict[str, RowData] = {}
        self._made_for: tuple[bool, bool] | None = None  # (totals, numeric)
        self.order = SortedRows()  # the rows' order, kept between ticks too

    def row(self, h: RemoteView, opts: ViewOptions) -> RowData:
        made_for = (opts.totals, opts.numeric)
        if made_for != self._made_for:
            self._rows, self._made_for = {}, made_for
        row = self._rows.get(h.address)
        if row is None or row.host is not h:
            kind: RowKind = "local" if h.scope == "local" else "host"
            key = h.address or UNCONNECTED_KEY
            row = RowData(key, kind, host_values(h, opts), host=h, table=HOST_TABLE)
            self._rows[h.address] = row
        return row

    def forget_gone(self, frame: Frame) -> None:
        if len(self._rows) > len(frame.remotes or ()):
            live = {h.address for h in frame.remotes or ()}
            self._rows = {a: r for a, r in self._rows.items() if a in live}


def build_host_rows(
    frame: Frame, opts: ViewOptions, cache: HostRowCache | None = None
) -> list[RowData]:
    """The host rows to show, in order, for `frame` under `opts` (rows from `cache`)."""
    matcher = Matcher(opts.filter_text)
    cache = cache or HostRowCache()
    cache.forget_gone(frame)
    rows: list[RowData] = []
    need_pids = matcher.active or opts.user is not None
    by_pid = {p.pid: p for p in frame.processes if not p.exited} if need_pids else None
    for h in frame.remotes or ():
        local = h.scope == "local"
        if local and not opts.show_local:
            continue
        if opts.only_active and not h.total_bytes:
            continue
        if not host_matches(matcher, h, by_pid):
            continue
        if opts.user is not None and not _talks_as(h, opts.user, by_pid):
            continue
        rows.append(cache.row(h, opts))
    folded = _folded_row(frame, opts)
    if folded is not None and matcher.matches_label("folded"):
        rows.append(folded)
    return cache.order.sort(rows, *host_sort(opts), HOST_TABLE)


def _talks_as(h: RemoteView, user: str, processes: Mapping[int, ProcessView] | None) -> bool:
    """Whether one of the processes talking to `h` now runs as `user` (the `u` picker)."""
    by_pid = processes or {}
    return any((p := by_pid.get(pid)) is not None and p.user == user for pid, _ in h.pids)


def host_sort(opts: ViewOptions) -> tuple[str, bool]:
    """The column and direction hosts sort on: the user's, or TOTAL when the host table
    has no such column (CPU, PID, ...)."""
    if opts.sort in HOST_TABLE.by_key:
        return opts.sort, opts.descending
    return "total", True


def hosts_unknown(backend: str) -> str:
    """The one line the host view shows when the backend has no per-connection data."""
    return (
        f"this backend ({safe_text(backend, 40)}) has no per-connection data: "
        "remote hosts need ebpf or sockdiag"
    )
