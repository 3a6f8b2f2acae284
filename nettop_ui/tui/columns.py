"""The process table's columns: each one declared once, with all it does.

A `Column` owns its getter (a process's own value), how a tree parent or a user group
combines the values of the rows it holds, its sort key and its formatter (the cell's
text). `build_rows` (model.py) turns processes into rows through the getters and
combiners, `sort_rows` sorts on the sort keys, `cells.make_cell` draws through the
formatters. Adding a column is one `Column(...)` in `TABLE` below.

No Textual here, and no Rich beyond what `safe_text` uses: the model imports this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from nettop_ui.core import sum_known
from nettop_ui.format import Scale
from nettop_ui.tui.frame import ProcessView, UnattributedView
from nettop_ui.tui.safe import safe_text

BLOCKS = " ▁▂▃▄▅▆▇█"
SPARK_WIDTH = 10
UNKNOWN = "-"
NOTE_MARK = "*"  # after a byte figure the backend knows it gets wrong (see ProcessView.note)
MIXED = "(mixed)"  # a group whose members differ in a column they usually share


@dataclass(frozen=True, slots=True)
class Program:
    """The PROGRAM cell's raw parts; `prefix` draws the tree."""

    prefix: str
    name: str
    args: str
    marker: str = ""  # "+" folded (tree, groups), "-" open (groups)

    def __lt__(self, other: Program) -> bool:
        return self.name.lower() < other.name.lower()


Getter = Callable[
    [Any, bool], Any
]  # (the row's view: process or remote host, totals mode) -> value
Unattributed = Callable[[UnattributedView, bool], Any]  # the same for the unattributed bytes
Formatter = Callable[[Any, Scale, bool], str]  # (raw value, units, marked) -> cell text


def _natural(value: Any) -> Any:
    """Strings sort without regard to case; everything else as it is."""
    return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class Column:
    """One process-table column: what it shows, and how it gets, combines, sorts and
    formats its values."""

    key: str
    label: str
    width: int  # cells, including the one-cell gap on the left of right-aligned columns
    priority: int  # lower is kept longer when the terminal is narrow
    get: Getter
    text: Formatter  # the cell's text; unknown (None) included
    total_label: str = ""  # the label in cumulative-totals mode; "" for `label`
    descending: bool = True  # the natural first direction when sorting on it
    justify: Literal["left", "right"] = "right"
    sortable: bool = True
    # A user group's value from its members' (None: a group has none for this column).
    combine: Callable[[list[Any]], Any] | None = sum_known
    rolls_up: bool = False  # tree view: a parent's value takes in its descendants' (`combine`)
    unattributed: Unattributed | None = None  # the unattributed bytes' value; None: not applicable
    sort_key: Callable[[Any], Any] = _natural  # of a known value; unknown always sorts last
    pad: int = 0  # right-align label and text in this many cells plus a gap, left-justified
    style: str = ""  # the cell's style on a row without one of its own
    needs_gpu: bool = False  # shown only when a GPU is there
    optional: bool = False  # hidden until the user adds it (ViewOptions.extra_columns)

    def heading(self, totals: bool) -> str:
        return (self.total_label or self.label) if totals else self.label


class ColumnSet:
    """The columns in table order, and their positions in a row's values."""

    def __init__(self, columns: Iterable[Column]) -> None:
        self.all = tuple(columns)
        self.flex = next((c.key for c in self.all if not c.width), None)  # takes the spare width
        self.keys = tuple(c.key for c in self.all)
        self.by_key = {c.key: c for c in self.all}
        self.index = {c.key: i for i, c in enumerate(self.all)}


# -- getters and formatters -------------------------------------------------------------


def args_of(p: ProcessView) -> str:
    """What PROGRAM shows after the name: the arguments, or the whole command line when
    argv[0] is not the program's name (a rewritten title such as "nginx: worker")."""
    if not p.cmdline:
        return ""
    argv0 = p.cmdline[0]
    base = argv0.rsplit("/", 1)[-1]
    if " " not in argv0 and (base == p.name or (len(p.name) >= 15 and base.startswith(p.name))):
        return " ".join(p.cmdline[1:])
    return " ".join(p.cmdline)


def sparkline(
    values: tuple[float, ...] | list[float], width: int = SPARK_WIDTH, peak: float | None = None
) -> str:
    """Unicode blocks, newest on the right, scaled to `peak` (default: the series' own).

    Each character is the peak of its share of the points; an all-zero series is blank,
    any traffic at all shows at least the lowest block.
    """
    if not values or width <= 0:
        return " " * max(width, 0)
    n = len(values)
    per = max(1, math.ceil(n / width))
    # NaN (unknown) counts as 0: a bucket at or below 0 is blank either way.
    known = [v if v == v else 0.0 for v in values]
    buckets = [max(known[max(0, end - per) : end]) for end in range(n, 0, -per)][:width]
    buckets.reverse()
    peak = peak if peak is not None else max(buckets)
    if peak <= 0:
        return " " * width
    chars = [
        " " if b <= 0 else BLOCKS[max(1, min(8, round(8 * min(b, peak) / peak)))] for b in buckets
    ]
    return " " * (width - len(chars)) + "".join(chars)


def sum_series(series: Iterable[tuple[float, ...]]) -> tuple[float, ...]:
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


def _total(up: Any, down: Any) -> Any:
    return None if up is None or down is None else up + down


def _up(p: ProcessView | UnattributedView, totals: bool) -> Any:
    return p.sent_bytes if totals else p.sent_bps


def _down(p: ProcessView | UnattributedView, totals: bool) -> Any:
    return p.recv_bytes if totals else p.recv_bps


def _up_down(p: ProcessView | UnattributedView, totals: bool) -> Any:
    return _total(_up(p, totals), _down(p, totals))


def _traffic(value: Any, scale: Scale, marked: bool) -> str:
    return scale.traffic(value) + (NOTE_MARK if marked and value is not None else "")


def _bytes(value: Any, scale: Scale, marked: bool) -> str:
    return scale.size(value)  # memory and disk stay in bytes whatever `b` says


def _count(value: Any, scale: Scale, marked: bool) -> str:
    return str(value) if value is not None else UNKNOWN


def _percent(value: Any, scale: Scale, marked: bool) -> str:
    return f"{value:.1f}" if value is not None else UNKNOWN


def _rate(value: Any, scale: Scale, marked: bool) -> str:
    return f"{value:.0f}" if value is not None else UNKNOWN


def _offcpu(p: ProcessView, totals: bool) -> Any:
    return p.ebpf.offcpu_percent if p.ebpf is not None else None


def _syscall_rate(p: ProcessView, totals: bool) -> Any:
    return p.ebpf.syscalls_per_s if p.ebpf is not None else None


def _shared(unknown: str | None) -> Callable[[list[Any]], Any]:
    """A group's value for a column its members may share (user, service): theirs when
    they all have the same one (`unknown` for None), else MIXED."""

    def combine(values: list[Any]) -> Any:
        first = values[0]
        if any(v != first for v in values):
            return MIXED
        return first if first is not None else unknown

    return combine


def _service(p: ProcessView, totals: bool) -> Any:
    """The service; "" (blank) when the cgroup is known and names none, None (unknown)
    when it could not be read."""
    return p.service if p.service is not None or p.cgroup is None else ""


TABLE = ColumnSet(
    (
        Column(
            "pid", "PID", 8, 0, lambda p, t: p.pid, _count,
            descending=False, justify="left", combine=None, pad=7,
        ),
        Column(
            "user", "USER", 9, 7, lambda p, t: p.user,
            lambda v, b, m: safe_text(v, 8) if v is not None else UNKNOWN,
            descending=False, justify="left", combine=_shared("?"),
        ),
        Column(
            "service", "SERVICE", 18, 10, _service,
            lambda v, b, m: safe_text(v, 17) if v is not None else UNKNOWN,
            descending=False, justify="left", combine=_shared(None),
        ),
        Column(
            "program", "PROGRAM", 0, 0, lambda p, t: Program("", p.name, args_of(p)),
            lambda v, b, m: v.name, descending=False, justify="left", combine=None,
        ),
        Column("up", "UP/s", 9, 1, _up, _traffic, "UP", rolls_up=True, unattributed=_up),
        Column("down", "DOWN/s", 9, 1, _down, _traffic, "DOWN", rolls_up=True, unattributed=_down),
        Column(
            "total", "TOTAL/s", 9, 1, _up_down, _traffic, "TOTAL",
            rolls_up=True, unattributed=_up_down,
        ),
        Column(
            "spark", "LAST 60s", 11, 4, lambda p, t: p.spark, lambda v, b, m: sparkline(v),
            sortable=False, combine=sum_series, rolls_up=True,
            unattributed=lambda u, t: (), style="green",
        ),
        Column("cpu", "CPU%", 7, 3, lambda p, t: p.cpu_percent, _percent),
        Column("mem", "MEM", 8, 5, lambda p, t: p.rss_bytes, _bytes),
        Column("read", "DISK R/s", 10, 9, lambda p, t: p.read_bps, _bytes),
        Column("write", "W/s", 9, 9, lambda p, t: p.write_bps, _bytes),
        # denet's other disk signals, totals since the process started (`D`; docs/disk.md)
        Column(
            "sysread", "SYS RD", 9, 2, lambda p, t: p.syscall_read_bytes, _bytes, optional=True
        ),
        Column(
            "syswrite", "SYS WR", 9, 2, lambda p, t: p.syscall_write_bytes, _bytes, optional=True
        ),
        Column("minflt", "MINFLT", 9, 2, lambda p, t: p.page_faults_cached, _count, optional=True),
        Column("majflt", "MAJFLT", 8, 2, lambda p, t: p.page_faults_disk, _count, optional=True),
        # `--profile` (docs/profile.md), over the last tick (`O`)
        Column("offcpu", "OFF-CPU%", 9, 2, _offcpu, _percent, optional=True),
        Column("sysc", "SYSC/s", 9, 2, _syscall_rate, _rate, optional=True),
        Column("gpu", "GPU MEM", 9, 8, lambda p, t: p.gpu_memory_bytes, _bytes, needs_gpu=True),
        Column("conns", "CONNS", 7, 6, lambda p, t: p.connection_count, _count),
    )
)  # fmt: skip
DISK_SIGNAL_COLUMNS = frozenset({"sysread", "syswrite", "minflt", "majflt"})
PROFILE_COLUMNS = frozenset({"offcpu", "sysc"})
