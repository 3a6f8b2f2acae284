"""What the process table shows: filtering, sorting, the process tree, user and service groups.

Pure functions from a `Frame` and the `ViewOptions` to an ordered list of `RowData`
(row key, kind, raw values). No Textual here; the table widget only diffs and draws.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import not_
from typing import Any, Literal

from nettop_ui.filter_expr import Filter, FilterError
from nettop_ui.filter_expr import parse as parse_filter
from nettop_ui.format import Scale, Units
from nettop_ui.services import NO_SERVICE
from nettop_ui.tui import columns
from nettop_ui.tui.columns import Column, ColumnSet, args_of
from nettop_ui.tui.columns import Program as Program
from nettop_ui.tui.frame import Frame, ProcessView, RemoteView

ViewMode = Literal["flat", "tree", "user", "service"]
GROUPINGS = ("user", "service")  # the modes that group processes under one row each
UNKNOWN_SERVICE = "(unknown)"  # the group of processes whose cgroup could not be read
View = Literal["processes", "hosts"]  # what the main table lists
RowKind = Literal["proc", "exited", "group", "unattributed", "host", "local", "folded"]
UNATTRIBUTED_KEY = "unattributed"


COLUMN_BY_KEY = columns.TABLE.by_key  # the table's columns by key, for the screen
PROGRAM_MIN_WIDTH = 18
# Wider, PROGRAM would leave a short command line a long way from its numbers (130 blank
# cells at 220 columns); the columns keep their 160-column layout, blank on the right.
PROGRAM_MAX_WIDTH = 64


def visible_columns(
    width: int,
    has_gpu: bool,
    keep: tuple[str, ...] = (),
    table: ColumnSet | None = None,
    omit: tuple[str, ...] = (),
    extra: frozenset[str] = frozenset(),
) -> tuple[list[str], int]:
    """The columns of `table` (default: the process table) that fit in `width` cells, and
    the flexible column's width (PROGRAM's, or the host table's NAME): what is left, at
    most PROGRAM_MAX_WIDTH.

    Columns are dropped lowest priority first (those in `keep` never) until the flexible
    one gets its minimum width; the kept ones stay in their usual order. `omit`: columns
    the view leaves out whatever the width; `extra`: the optional columns the user added.
    """
    table = table or columns.TABLE
    candidates = [
        c
        for c in table.all
        if (not c.needs_gpu or has_gpu) and c.key not in omit and (not c.optional or c.key in extra)
    ]
    flex = table.flex if table.flex not in omit else None
    least = PROGRAM_MIN_WIDTH if flex is not None else 0
    kept = list(candidates)

    def priority(c: Column) -> int:
        return 1 if c.key in keep else c.priority

    for col in sorted((c for c in candidates if c.key != flex), key=lambda c: -priority(c)):
        fixed = sum(c.width for c in kept if c.key != flex)
        if width - fixed >= least or priority(col) <= 1:
            break
        kept.remove(col)
    fixed = sum(c.width for c in kept if c.key != flex)
    program = min(max(width - fixed, PROGRAM_MIN_WIDTH // 2), PROGRAM_MAX_WIDTH) if flex else 0
    return [c.key for c in kept], program


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """The user's choices: sort, filter, grouping, units. Frozen: a change is a new
    `ViewOptions` (`dataclasses.replace`), made in `MainScreen.set_options`."""

    sort: str = "total"
    descending: bool = True
    filter_text: str = ""
    user: str | None = None  # only this user's processes (`u`); None: everyone's
    only_active: bool = False
    mode: ViewMode = "flat"
    totals: bool = False  # cumulative bytes instead of rates
    bits: bool = False
    units: Units = "iec"  # binary (KiB) or decimal (kB, Mbit/s) prefixes
    collapsed: frozenset[str] = frozenset()  # tree rows whose children are hidden
    expanded_groups: frozenset[str] = frozenset()  # user or service groups opened
    view: View = "processes"  # `h`: the processes, or the remote hosts (hosts.py)
    show_local: bool = False  # host view: loopback and this machine's own addresses too
    numeric: bool = False  # host view: addresses only, no names
    extra_columns: frozenset[str] = frozenset()  # optional columns shown (`D`)

    @property
    def scale(self) -> Scale:
        """How figures are written: bytes or bits, in these units."""
        return Scale(self.bits, self.units)


@dataclass(frozen=True, slots=True)
class RowData:
    """One table row: its key, what it is, and its raw values in `columns.TABLE` order
    (a host row's: in `table`'s, the host table's)."""

    key: str
    kind: RowKind
    values: tuple[Any, ...]
    process: ProcessView | None = None
    children: int = 0  # tree/group: how many rows it holds (rolled into its figures)
    host: RemoteView | None = None
    table: ColumnSet | None = None  # None: the process table

    def value(self, column: str) -> Any:
        return self.values[(self.table or columns.TABLE).index[column]]


# -- filtering ------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def compile_filter(text: str) -> tuple[Filter | None, str | None]:
    """The filter box's expression compiled (`nettop_ui.filter_expr`), or why it is not one.

    Cached: compiled once, not on every tick, it remembers the endpoints it tested."""
    try:
        return parse_filter(text), None
    except FilterError as exc:
        return None, str(exc)


class Matcher:
    """The filter box: field terms, text and `!regex` (see `nettop_ui.filter_expr`).

    A bad term filters nothing; `error` says what is wrong with it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.filter, self.error = compile_filter(text)

    @property
    def active(self) -> bool:
        return self.filter is not None and self.filter.active

    def matches(self, p: ProcessView) -> bool:
        return self.filter is None or self.filter.matches_process(p)

    def matches_label(self, label: str) -> bool:
        """A row that is no process, known by its label (the unattributed bytes)."""
        return self.filter is None or self.filter.matches_label(label)


def is_active(p: ProcessView) -> bool:
    """Moved traffic since start; when bytes are unknown, has open connections."""
    if p.sent_bytes is None:
        return bool(p.connection_count)
    return p.had_traffic


# -- values ---------------------------------------------------------------------------


def process_values(
    p: ProcessView, opts: ViewOptions, program: Program | None = None
) -> tuple[Any, ...]:
    """`p`'s own value in every column (`program`: the PROGRAM cell the view draws)."""
    totals = opts.totals
    values = tuple([c.get(p, totals) for c in columns.TABLE.all])
    if program is None:
        return values
    i = columns.TABLE.index["program"]
    return (*values[:i], program, *values[i + 1 :])


def _unattributed_row(frame: Frame, opts: ViewOptions) -> RowData | None:
    u = frame.unattributed
    if u is None:
        return None
    label = Program("", "(unattributed)", "bytes not tied to a process")
    values = tuple(
        label
        if c.key == "program"
        else (c.unattributed(u, opts.totals) if c.unattributed is not None else None)
        for c in columns.TABLE.all
    )
    return RowData(UNATTRIBUTED_KEY, "unattributed", values)


# -- sorting --------------------------------------------------------------------------


def sort_rows(
    rows: list[RowData], column: str, descending: bool, table: ColumnSet | None = None
) -> list[RowData]:
    """Sort on `column`; unknown values last either way; ties by total bytes, then by the
    first column (PID; a host's address), then by the row's key."""
    table = table or columns.TABLE
    try:
        return sorted(rows, key=_order_key(table, column, descending))
    except _NotNumbers:
        return _sort_by_passes(rows, table, column, descending)


def _order_key(
    table: ColumnSet, column: str, descending: bool
) -> Callable[[RowData], tuple[Any, ...]]:
    """`sort_rows`'s order as one key, for numbers only: it raises _NotNumbers on a value
    that is not one (a name can be unequal yet not less, which a tuple would not leave
    to the ties)."""
    idx, total = table.index[column], table.index["total"]
    sort_key = table.all[idx].sort_key

    def key(r: RowData) -> tuple[Any, ...]:
        value = r.values[idx]
        if value is None:
            return (True, _first(r))
        v = sort_key(value)
        if v.__class__ not in _NUMBERS:
            raise _NotNumbers
        return (False, -v if descending else v, -(r.values[total] or 0), _first(r))

    return key


def _first(r: RowData) -> tuple[Any, ...]:
    """The last ties' order: by the first column, then by the row's key."""
    v = r.values[0]
    return (v is None, v if v is not None else 0, r.key)


def _sort_by_passes(
    rows: list[RowData], table: ColumnSet, column: str, descending: bool
) -> list[RowData]:
    """`sort_rows` for a column of names: stable sorts, the last pass first."""
    idx, total = table.index[column], table.index["total"]
    sort_key = table.all[idx].sort_key
    known = sorted((r for r in rows if r.values[idx] is not None), key=_first)
    known.sort(key=lambda r: r.values[total] or 0, reverse=True)
    known.sort(key=lambda r: sort_key(r.values[idx]), reverse=descending)
    return known + sorted((r for r in rows if r.values[idx] is None), key=_first)


_NUMBERS = (int, float)


class _NotNumbers(Exception):
    """A value `sort_rows` cannot sort on at once: the passes one by one."""


class SortedRows:
    """`sort_rows` from one tick to the next, sorting anew only the rows that are new.

    The row caches hand on an unchanged process's (or host's) row as is, so last tick's
    order still holds for those: the new rows are put in their places by bisection, and
    the kept rows' keys are not worked out again. At 2,000 processes a few dozen rows
    change in a second, and a full sort's 2,000 keys were a tenth of the UI thread's
    time. The order is `sort_rows`'s exactly (its ties are broken down to the row key).
    """

    RESORT_SHARE = 4  # more than one row in this many new: a full sort is cheaper

    def __init__(self) -> None:
        self._order: list[RowData] = []
        self._how: tuple[str, bool, ColumnSet] | None = None

    def sort(
        self, rows: list[RowData], column: str, descending: bool, table: ColumnSet | None = None
    ) -> list[RowData]:
        table = table or columns.TABLE
        how = (column, descending, table)
        order = self._placed(rows, how) if how == self._how else None
        if order is None:
            order = sort_rows(rows, column, descending, table)
        self._order, self._how = order, how
        return list(order)

    def _placed(
        self, rows: list[RowData], how: tuple[str, bool, ColumnSet]
    ) -> list[RowData] | None:
        """Last order less the rows gone, with the new ones placed; None: sort anew.
        (The rows are told apart by identity, in C-level loops: a Python loop over
        2,000 rows cost as much as the sort.)"""
        listed = set(map(id, rows))
        order = list(compress(self._order, map(listed.__contains__, map(id, self._order))))
        if len(rows) - len(order) > len(rows) // self.RESORT_SHARE:
            return None
        kept = set(map(id, order))
        key = _order_key(how[2], how[0], how[1])
        try:
            for r in compress(rows, map(not_, map(kept.__contains__, map(id, rows)))):
                bisect.insort(order, r, key=key)
        except _NotNumbers:
            return None
        return order


# -- the three views ------------------------------------------------------------------


def _flat_row(p: ProcessView, opts: ViewOptions) -> RowData:
    return RowData(p.key, "exited" if p.exited else "proc", process_values(p, opts), p)


class RowCache:
    """Flat rows kept from one `build_rows` to the next.

    The collector hands on an unchanged process's `ProcessView` as is (see
    `frame.view_of`), so the row made from it can be handed on too, and the table
    skips it by identity: a tick makes new rows only for the processes that changed.
    The rows a filter hides are kept while their process lives, so clearing the filter
    redraws at once (2,000 rows made anew took ~50 ms).
    """

    def __init__(self) -> None:
        self._rows: dict[str, RowData] = {}
        self._totals: bool | None = None  # the one option flat values depend on
        self._columns: columns.ColumnSet | None = None
        self.order = SortedRows()  # the flat rows' order, kept between ticks too

    def rows(
        self, shown: Iterable[ProcessView], opts: ViewOptions, every: Iterable[ProcessView]
    ) -> list[RowData]:
        """The rows of `shown`; those of `every` other process in the frame are kept."""
        if opts.totals != self._totals or columns.TABLE is not self._columns:
            self._rows, self._totals, self._columns = {}, opts.totals, columns.TABLE
        old = self._rows
        found = []
        for p in shown:
            row = old.get(p.key)
            if row is None or row.process is not p:
                row = old[p.key] = _flat_row(p, opts)
            found.append(row)
        if len(old) > len(found):  # rows hidden by a filter: keep only the live ones'
            live = {p.key for p in every}
            self._rows = {k: r for k, r in old.items() if k in live}
        return found


def build_rows(frame: Frame, opts: ViewOptions, cache: RowCache | None = None) -> list[RowData]:
    """The rows to show, in order, for `frame` under `opts` (flat rows from `cache`)."""
    matcher = Matcher(opts.filter_text)
    procs = (
        list(frame.processes)
        if not opts.only_active and opts.user is None
        else [
            p
            for p in frame.processes
            if (not opts.only_active or is_active(p)) and (opts.user is None or p.user == opts.user)
        ]
    )
    extra = _unattributed_row(frame, opts) if opts.user is None else None  # no one's bytes
    if extra is not None:
        u = frame.unattributed
        busy = u is not None and (u.sent_bytes or u.recv_bytes)
        if (opts.only_active and not busy) or not matcher.matches_label("(unattributed)"):
            extra = None
    if opts.mode == "tree":
        return _tree_rows(procs, matcher, opts, extra)
    if opts.mode in GROUPINGS:
        return _group_rows([p for p in procs if matcher.matches(p)], opts, extra)
    shown = [p for p in procs if matcher.matches(p)] if matcher.active else procs
    if cache is None:
        rows = [_flat_row(p, opts) for p in shown]
    else:
        rows = cache.rows(shown, opts, frame.processes)
    if extra is not None:
        rows.append(extra)
    if cache is None:
        return sort_rows(rows, opts.sort, opts.descending)
    return cache.order.sort(rows, opts.sort, opts.descending)


def group_of(mode: ViewMode, p: ProcessView) -> tuple[str, str]:
    """The row key and the name of `p`'s group in a grouping mode (user or service)."""
    if mode == "user":
        return f"user:{p.user or '?'}", p.user or "?"
    if p.service is not None:
        return f"service:{p.service}", p.service
    label = NO_SERVICE if p.cgroup is not None else UNKNOWN_SERVICE
    return f"no-service:{label}", label  # apart from any service's key, whatever its name


def _group_rows(
    procs: list[ProcessView], opts: ViewOptions, extra: RowData | None
) -> list[RowData]:
    """One row per group (its members' figures combined), each followed by its members
    when opened."""
    groups: dict[str, tuple[str, list[ProcessView]]] = {}
    for p in procs:
        key, name = group_of(opts.mode, p)
        groups.setdefault(key, (name, []))[1].append(p)
    program = columns.TABLE.index["program"]
    group_rows: list[RowData] = []
    members: dict[str, list[RowData]] = {}
    for key, (name, ps) in groups.items():
        rows = [
            RowData(
                p.key,
                "exited" if p.exited else "proc",
                process_values(p, opts, Program("  ", p.name, args_of(p))),
                p,
            )
            for p in ps
        ]
        members[key] = rows
        expanded = key in opts.expanded_groups
        label = f"{len(ps)} process" + ("" if len(ps) == 1 else "es")
        values = [
            c.combine([r.values[i] for r in rows]) if c.combine is not None else None
            for i, c in enumerate(columns.TABLE.all)
        ]
        values[program] = Program("", name, label, "-" if expanded else "+")
        group_rows.append(RowData(key, "group", tuple(values), children=len(rows)))
    if extra is not None:
        group_rows.append(extra)
    out: list[RowData] = []
    for row in sort_rows(group_rows, opts.sort, opts.descending):
        out.append(row)
        if row.key in opts.expanded_groups:
            out.extend(sort_rows(members[row.key], opts.sort, opts.descending))
    return out


def parent_index(procs: Sequence[ProcessView]) -> dict[str, str | None]:
    """Row key -> parent row key (None for a root). A live parent wins a reused PID."""
    by_pid: dict[int, ProcessView] = {}
    for p in procs:
        cur = by_pid.get(p.pid)
        if cur is None or (cur.exited and not p.exited):
            by_pid[p.pid] = p
    parents: dict[str, str | None] = {}
    for p in procs:
        parent = by_pid.get(p.ppid) if p.ppid is not None and p.ppid != p.pid else None
        parents[p.key] = parent.key if parent is not None and parent.key != p.key else None
    # Break any cycle (a reused PID can make one) by making its members roots.
    for key in parents:
        seen = {key}
        up = parents[key]
        while up is not None:
            if up in seen:
                parents[key] = None
                break
            seen.add(up)
            up = parents.get(up)
    return parents


@dataclass(slots=True)
class _Node:
    proc: ProcessView
    own: tuple[Any, ...]  # the process's own values, in `columns.TABLE` order
    children: list[_Node] = field(default_factory=list)
    values: tuple[Any, ...] = ()  # `own`, the rolling-up columns with descendants' added
    size: int = 1


Rolling = list[tuple[int, Callable[[list[Any]], Any]]]  # (column index, combine)


def _roll(node: _Node, rolling: Rolling) -> None:
    """`values` of `node` and its descendants: own values, the `rolling` columns' plus
    every descendant's (iterative: trees can be deep). A leaf, most nodes, is its own."""
    order: list[_Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n.children)
    for n in reversed(order):
        kids = n.children
        if not kids:
            n.values = n.own
            continue
        values = list(n.own)
        for i, combine in rolling:
            values[i] = combine([values[i], *[c.values[i] for c in kids]])
        n.values = tuple(values)
        n.size = 1 + sum(c.size for c in kids)


def _tree_rows(
    procs: list[ProcessView], matcher: Matcher, opts: ViewOptions, extra: RowData | None
) -> list[RowData]:
    parents = parent_index(procs)
    by_key = {p.key: p for p in procs}
    if matcher.active:  # keep the matches and the path to each of them
        keep: set[str] = set()
        for p in procs:
            if matcher.matches(p):
                cur: str | None = p.key
                while cur is not None and cur not in keep:
                    keep.add(cur)
                    cur = parents.get(cur)
        by_key = {k: v for k, v in by_key.items() if k in keep}
    nodes = {k: _Node(p, process_values(p, opts)) for k, p in by_key.items()}
    roots: list[_Node] = []
    for k, node in nodes.items():
        parent = parents.get(k)
        if parent is not None and parent in nodes:
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    rolling: Rolling = [
        (i, c.combine) for i, c in enumerate(columns.TABLE.all) if c.rolls_up and c.combine
    ]
    for root in roots:
        _roll(root, rolling)
    program = columns.TABLE.index["program"]

    def row_of(node: _Node, prefix: str) -> RowData:
        p = node.proc
        marker = "+" if node.children and p.key in opts.collapsed else ""
        values = node.values
        cell = Program(prefix, p.name, args_of(p), marker)
        kind: RowKind = "exited" if p.exited else "proc"
        values = (*values[:program], cell, *values[program + 1 :])
        return RowData(p.key, kind, values, p, children=node.size - 1)

    def ordered(level: list[_Node]) -> list[tuple[_Node, RowData]]:
        rows = {n.proc.key: n for n in level}
        sorted_rows = sort_rows([row_of(n, "") for n in level], opts.sort, opts.descending)
        return [(rows[r.key], r) for r in sorted_rows]

    out: list[RowData] = []
    top = ordered(roots)
    if extra is not None:
        top_rows = sort_rows([r for _, r in top] + [extra], opts.sort, opts.descending)
        node_of = {r.key: n for n, r in top}
        top_items: list[tuple[_Node | None, RowData]] = [(node_of.get(r.key), r) for r in top_rows]
    else:
        top_items = list(top)
    # Depth-first, iterative; `stack` holds (node, row key, prefix for its children, last?).
    stack: list[tuple[_Node | None, RowData, str, str]] = [
        (n, r, "", "") for n, r in reversed(top_items)
    ]
    while stack:
        item, row, lead, branch = stack.pop()
        if item is None:
            out.append(row)
            continue
        node = item
        out.append(row_of(node, lead + branch) if lead or branch else row)
        if not node.children or node.proc.key in opts.collapsed:
            continue
        child_lead = lead + ("" if not branch else ("│  " if branch == "├─" else "   "))
        kids = ordered(node.children)
        for i in range(len(kids) - 1, -1, -1):
            child, crow = kids[i]
            stack.append((child, crow, child_lead, "└─" if i == len(kids) - 1 else "├─"))
    return out
