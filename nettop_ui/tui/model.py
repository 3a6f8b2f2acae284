"""What the process table shows: filtering, sorting, the process tree and user groups.

Pure functions from a `Frame` and the `ViewOptions` to an ordered list of `RowData`
(row key, kind, raw values). No Textual here; the table widget only diffs and draws.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nettop_ui.core import sum_known
from nettop_ui.tui.frame import Frame, ProcessView

ViewMode = Literal["flat", "tree", "user"]
RowKind = Literal["proc", "exited", "group", "unattributed"]
UNATTRIBUTED_KEY = "unattributed"


@dataclass(frozen=True, slots=True)
class Column:
    """One process-table column."""

    key: str
    label: str
    total_label: str  # the label in cumulative-totals mode
    width: int  # cells, including the one-cell gap on the left of right-aligned columns
    priority: int  # lower is kept longer when the terminal is narrow
    descending: bool = True  # the natural first direction when sorting on it
    justify: Literal["left", "right"] = "right"
    sortable: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("pid", "PID", "PID", 8, 0, descending=False),
    Column("user", "USER", "USER", 9, 7, descending=False, justify="left"),
    Column("program", "PROGRAM", "PROGRAM", 0, 0, descending=False, justify="left"),
    Column("up", "UP/s", "UP", 9, 1),
    Column("down", "DOWN/s", "DOWN", 9, 1),
    Column("total", "TOTAL/s", "TOTAL", 9, 1),
    Column("spark", "LAST 60s", "LAST 60s", 11, 4, sortable=False),
    Column("cpu", "CPU%", "CPU%", 7, 3),
    Column("mem", "MEM", "MEM", 8, 5),
    Column("read", "DISK R/s", "DISK R/s", 10, 9),
    Column("write", "W/s", "W/s", 9, 9),
    Column("gpu", "GPU MEM", "GPU MEM", 9, 8),
    Column("conns", "CONNS", "CONNS", 7, 6),
)
COLUMN_KEYS: tuple[str, ...] = tuple(c.key for c in COLUMNS)
COLUMN_BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}
INDEX: dict[str, int] = {k: i for i, k in enumerate(COLUMN_KEYS)}
PROGRAM_MIN_WIDTH = 18
# Wider, PROGRAM would leave a short command line a long way from its numbers (130 blank
# cells at 220 columns); the columns keep their 160-column layout, blank on the right.
PROGRAM_MAX_WIDTH = 64


def visible_columns(width: int, has_gpu: bool, keep: tuple[str, ...] = ()) -> tuple[list[str], int]:
    """The columns that fit in `width` cells, and PROGRAM's width: what is left, at most
    PROGRAM_MAX_WIDTH.

    Columns are dropped lowest priority first (those in `keep` never) until PROGRAM gets
    its minimum width; the kept ones stay in their usual order.
    """
    candidates = [c for c in COLUMNS if c.key != "gpu" or has_gpu]
    kept = list(candidates)

    def priority(c: Column) -> int:
        return 1 if c.key in keep else c.priority

    for col in sorted((c for c in candidates if c.key != "program"), key=lambda c: -priority(c)):
        fixed = sum(c.width for c in kept if c.key != "program")
        if width - fixed >= PROGRAM_MIN_WIDTH or priority(col) <= 1:
            break
        kept.remove(col)
    fixed = sum(c.width for c in kept if c.key != "program")
    program = min(max(width - fixed, PROGRAM_MIN_WIDTH // 2), PROGRAM_MAX_WIDTH)
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
    collapsed: frozenset[str] = frozenset()  # tree rows whose children are hidden
    expanded_groups: frozenset[str] = frozenset()  # user groups opened


@dataclass(frozen=True, slots=True)
class Program:
    """The PROGRAM cell's raw parts; `prefix` draws the tree."""

    prefix: str
    name: str
    args: str
    marker: str = ""  # "+" folded (tree, groups), "-" open (groups)

    def __lt__(self, other: Program) -> bool:
        return self.name.lower() < other.name.lower()


@dataclass(frozen=True, slots=True)
class RowData:
    """One table row: its key, what it is, and its raw values in COLUMN_KEYS order."""

    key: str
    kind: RowKind
    values: tuple[Any, ...]
    process: ProcessView | None = None
    children: int = 0  # tree/group: how many rows it holds (rolled into its figures)

    def value(self, column: str) -> Any:
        return self.values[INDEX[column]]


# -- filtering ------------------------------------------------------------------------


# Told apart by RE2's message: syntax it leaves out on purpose, to match in linear time.
_UNSUPPORTED = {
    "invalid perl operator: (?=": "lookaround",
    "invalid perl operator: (?!": "lookaround",
    "invalid perl operator: (?<": "lookaround",
    "invalid escape sequence: \\": "backreferences",
}


Regex = Any  # a compiled re2 pattern (google-re2 ships no type hints)


@functools.lru_cache(maxsize=32)
def compile_filter(pattern: str) -> tuple[Regex | None, str | None]:
    """The filter regex (case-insensitive, `^`/`$` at each line), or why it is not one.

    RE2 rather than `re`: its time is linear in the text, so no pattern, such as
    `(a+)+$` against a long run of a's, can hold the UI for minutes.
    """
    import re2  # here: 4 MB and 15 ms that only a regex filter needs

    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # it would write on the terminal the TUI draws on
    try:
        return re2.compile("(?m)" + pattern, options), None
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    for start, feature in _UNSUPPORTED.items():
        if message.startswith(start) and (feature != "backreferences" or message[-1:].isdigit()):
            return None, f"regex: no {feature} (RE2 syntax): {message}"
    return None, f"bad regex: {message}"


class Matcher:
    """The filter box: case-insensitive substring, or a regex after a leading `!`.

    Name, command line, user and PID are matched as separate lines, so `^` and `$`
    anchor within each. A regex sees names as the kernel's bytes (UTF-8 when they are).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.error: str | None = None
        self._regex: Regex | None = None
        self._needle = ""
        if text.startswith("!"):
            self._regex, self.error = compile_filter(text[1:])
        else:
            self._needle = text.lower()

    @property
    def active(self) -> bool:
        return bool(self.text) and self.error is None and self.text != "!"

    def haystack(self, p: ProcessView) -> str:
        return "\n".join((p.name, " ".join(p.cmdline), p.user or "", str(p.pid)))

    def matches_text(self, haystack: str) -> bool:
        if not self.active:
            return True
        if self._regex is not None:
            return self._regex.search(haystack.encode("utf-8", "surrogateescape")) is not None
        return self._needle in haystack.lower()

    def matches(self, p: ProcessView) -> bool:
        return not self.active or self.matches_text(self.haystack(p))


def is_active(p: ProcessView) -> bool:
    """Moved traffic since start; when bytes are unknown, has open connections."""
    if p.sent_bytes is None:
        return bool(p.connection_count)
    return p.had_traffic


# -- values ---------------------------------------------------------------------------


def _sum_series(series: Iterable[tuple[float, ...]]) -> tuple[float, ...]:
    """Element-wise sum, aligned on the newest point."""
    items = [s for s in series if s]
    if not items:
        return ()
    n = max(len(s) for s in items)
    out = [0.0] * n
    for s in items:
        off = n - len(s)
        for i, v in enumerate(s):
            if v == v:  # NaN (unknown) adds nothing
                out[off + i] += v
    return tuple(out)


@dataclass(slots=True)
class _Traffic:
    up: Any
    down: Any
    spark: tuple[float, ...]


def _traffic(p: ProcessView, totals: bool) -> _Traffic:
    if totals:
        return _Traffic(p.sent_bytes, p.recv_bytes, p.spark)
    return _Traffic(p.sent_bps, p.recv_bps, p.spark)


def _total(up: Any, down: Any) -> Any:
    return None if up is None or down is None else up + down


def process_values(
    p: ProcessView,
    opts: ViewOptions,
    traffic: _Traffic | None = None,
    program: Program | None = None,
) -> tuple[Any, ...]:
    t = traffic or _traffic(p, opts.totals)
    return (
        p.pid,
        p.user,
        program or Program("", p.name, _args(p)),
        t.up,
        t.down,
        _total(t.up, t.down),
        t.spark,
        p.cpu_percent,
        p.rss_bytes,
        p.read_bps,
        p.write_bps,
        p.gpu_memory_bytes,
        p.connection_count,
    )


def _unattributed_row(frame: Frame, opts: ViewOptions) -> RowData | None:
    u = frame.unattributed
    if u is None:
        return None
    up, down = (u.sent_bytes, u.recv_bytes) if opts.totals else (u.sent_bps, u.recv_bps)
    values = (
        None,
        None,
        Program("", "(unattributed)", "bytes not tied to a process"),
        up,
        down,
        _total(up, down),
        (),
        None,
        None,
        None,
        None,
        None,
        None,
    )
    return RowData(UNATTRIBUTED_KEY, "unattributed", values)


# -- sorting --------------------------------------------------------------------------


def _sort_value(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    return value


def sort_rows(rows: list[RowData], column: str, descending: bool) -> list[RowData]:
    """Sort on `column`; unknown values last either way; ties by total bytes, then PID."""
    idx = INDEX[column]
    total_idx = INDEX["total"]
    known = [r for r in rows if r.values[idx] is not None]
    unknown = [r for r in rows if r.values[idx] is None]
    known.sort(key=lambda r: (r.values[0] is None, r.values[0] or 0))
    known.sort(key=lambda r: r.values[total_idx] or 0, reverse=True)
    unknown.sort(key=lambda r: (r.values[0] is None, r.values[0] or 0))
    known.sort(key=lambda r: _sort_value(r.values[idx]), reverse=descending)
    return known + unknown


# -- the three views ------------------------------------------------------------------


def _flat_row(p: ProcessView, opts: ViewOptions) -> RowData:
    return RowData(p.key, "exited" if p.exited else "proc", process_values(p, opts), p)


class RowCache:
    """Flat rows kept from one `build_rows` to the next.

    The collector hands on an unchanged process's `ProcessView` as is (see
    `frame.view_of`), so the row made from it can be handed on too, and the table
    skips it by identity: a tick makes new rows only for the processes that changed.
    """

    def __init__(self) -> None:
        self._rows: dict[str, RowData] = {}
        self._totals: bool | None = None  # the one option flat values depend on

    def rows(self, procs: Iterable[ProcessView], opts: ViewOptions) -> list[RowData]:
        if opts.totals != self._totals:
            self._rows, self._totals = {}, opts.totals
        old, new = self._rows, {}
        for p in procs:
            row = old.get(p.key)
            new[p.key] = row if row is not None and row.process is p else _flat_row(p, opts)
        self._rows = new
        return list(new.values())


def build_rows(frame: Frame, opts: ViewOptions, cache: RowCache | None = None) -> list[RowData]:
    """The rows to show, in order, for `frame` under `opts` (flat rows from `cache`)."""
    matcher = Matcher(opts.filter_text)
    procs = [
        p
        for p in frame.processes
        if (not opts.only_active or is_active(p)) and (opts.user is None or p.user == opts.user)
    ]
    extra = _unattributed_row(frame, opts) if opts.user is None else None  # no one's bytes
    if extra is not None:
        u = frame.unattributed
        busy = u is not None and (u.sent_bytes or u.recv_bytes)
        if (opts.only_active and not busy) or not matcher.matches_text("(unattributed)"):
            extra = None
    if opts.mode == "tree":
        return _tree_rows(procs, matcher, opts, extra)
    if opts.mode == "user":
        return _user_rows([p for p in procs if matcher.matches(p)], opts, extra)
    shown = [p for p in procs if matcher.matches(p)]
    rows = [_flat_row(p, opts) for p in shown] if cache is None else cache.rows(shown, opts)
    if extra is not None:
        rows.append(extra)
    return sort_rows(rows, opts.sort, opts.descending)


def _user_rows(procs: list[ProcessView], opts: ViewOptions, extra: RowData | None) -> list[RowData]:
    groups: dict[str, list[ProcessView]] = {}
    for p in procs:
        groups.setdefault(p.user or "?", []).append(p)
    group_rows: list[RowData] = []
    members: dict[str, list[RowData]] = {}
    for user, ps in groups.items():
        key = f"user:{user}"
        rows = [
            RowData(
                p.key,
                "exited" if p.exited else "proc",
                process_values(p, opts, program=Program("  ", p.name, _args(p))),
                p,
            )
            for p in ps
        ]
        members[key] = rows
        expanded = key in opts.expanded_groups
        label = f"{len(ps)} process" + ("" if len(ps) == 1 else "es")
        values = (
            None,
            user,
            Program("", user, label, "-" if expanded else "+"),
            *(sum_known(r.values[i] for r in rows) for i in (3, 4, 5)),
            _sum_series(r.values[6] for r in rows),
            *(sum_known(r.values[i] for r in rows) for i in range(7, 13)),
        )
        group_rows.append(RowData(key, "group", values, children=len(rows)))
    if extra is not None:
        group_rows.append(extra)
    out: list[RowData] = []
    for row in sort_rows(group_rows, opts.sort, opts.descending):
        out.append(row)
        if row.key in opts.expanded_groups:
            out.extend(sort_rows(members[row.key], opts.sort, opts.descending))
    return out


def _args(p: ProcessView) -> str:
    """What PROGRAM shows after the name: the arguments, or the whole command line when
    argv[0] is not the program's name (a rewritten title such as "nginx: worker")."""
    if not p.cmdline:
        return ""
    argv0 = p.cmdline[0]
    base = argv0.rsplit("/", 1)[-1]
    if " " not in argv0 and (base == p.name or (len(p.name) >= 15 and base.startswith(p.name))):
        return " ".join(p.cmdline[1:])
    return " ".join(p.cmdline)


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
    children: list[_Node] = field(default_factory=list)
    up: Any = None
    down: Any = None
    spark: tuple[float, ...] = ()
    size: int = 1


def _roll(node: _Node, totals: bool) -> None:
    """Own traffic plus every descendant's (iterative: trees can be deep)."""
    order: list[_Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n.children)
    for n in reversed(order):
        own = _traffic(n.proc, totals)
        n.up = sum_known([own.up, *(c.up for c in n.children)])
        n.down = sum_known([own.down, *(c.down for c in n.children)])
        n.spark = (
            _sum_series([own.spark, *(c.spark for c in n.children)]) if n.children else own.spark
        )
        n.size = 1 + sum(c.size for c in n.children)


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
    nodes = {k: _Node(p) for k, p in by_key.items()}
    roots: list[_Node] = []
    for k, node in nodes.items():
        parent = parents.get(k)
        if parent is not None and parent in nodes:
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    for root in roots:
        _roll(root, opts.totals)

    def row_of(node: _Node, prefix: str) -> RowData:
        p = node.proc
        marker = "+" if node.children and p.key in opts.collapsed else ""
        program = Program(prefix, p.name, _args(p), marker)
        traffic = _Traffic(node.up, node.down, node.spark)
        kind: RowKind = "exited" if p.exited else "proc"
        return RowData(
            p.key, kind, process_values(p, opts, traffic, program), p, children=node.size - 1
        )

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
