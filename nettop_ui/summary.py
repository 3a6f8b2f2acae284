"""Summaries of `run`/`attach` recordings: duration, exit code, peaks, means and totals.

`RecordingReader` reads a JSON Lines recording line by line, each line capped in
length, up to the first damaged line (a recording cut short by a crash, spoiled
figures, a second recording joined on with `cat`, or not a recording at all) and
says where it stopped. `Summary` folds records in one at a time, keeping a few figures,
not the records: `summarize_file` runs in bounded memory whatever the file's size, and
`run`/`attach` keep one for their summary however long they run. `read_recording`
keeps every record (replay needs them all).
"""

from __future__ import annotations

import heapq
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from nettop_ui.format import human_bytes
from nettop_ui.jsonl import READABLE
from nettop_ui.profile import BOUND_BY

Record = dict[str, Any]
T = TypeVar("T")
MAX_LINE_BYTES = 32 * 1024 * 1024  # a sample of thousands of processes is well under this
LATEST_TS = 253402300799.0  # 9999-12-31: later Unix times are damage, not dates
MAX_FIGURE = 2**63  # bytes, counts and percentages in a tree are below this and >= 0


class RecordingError(Exception):
    """The file holds no usable recording; the message is one line for the user."""


class RecordingReader:
    """The records of the recording at `path`, read lazily up to the first damaged line.

    Iterating raises OSError when the file cannot be read. Afterwards `problem` says
    where and why it stopped (None: it read to the end), and `check_usable` raises
    RecordingError when not one sample was read.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.problem: str | None = None
        self.samples = 0
        self._first_ts: float | None = None

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as f:
            number = 0
            while raw := f.readline(MAX_LINE_BYTES + 1):
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    self.problem = f"stopped at line {number}: longer than {MAX_LINE_BYTES:,} bytes"
                    return
                try:
                    record = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
                    _check(record)
                    self._check_in_order(record, number)
                except (ValueError, RecursionError) as exc:
                    self.problem = f"stopped at line {number}: {_why(exc)}"
                    return
                yield record

    def _check_in_order(self, record: Record, number: int) -> None:
        """ValueError when `record` cannot follow the lines before it in one recording."""
        kind = record["type"]
        if kind == "meta" and number > 1:
            raise ValueError("a second recording starts here (files joined?)")
        if kind == "sample":
            self._first_ts = record["ts"] if self._first_ts is None else self._first_ts
            self.samples += isinstance(record.get("tree"), dict)
        ended, first = record.get("ended"), self._first_ts
        if kind == "end" and ended is not None and first is not None and ended < first:
            raise ValueError("end line: ended is before the first sample")

    def check_usable(self) -> None:
        if not self.samples:
            where = f" ({self.problem})" if self.problem else ""
            raise RecordingError(f"no samples of a run/attach recording in {self.path}{where}")


def read_recording(path: str) -> tuple[list[Record], str | None]:
    """Every record up to the first damaged line, and where and why it stopped (or None).

    Raises OSError when the file cannot be read, RecordingError when not one sample
    could be read from it.
    """
    reader = RecordingReader(path)
    records = list(reader)
    reader.check_usable()
    return records, reader.problem


def summarize_file(path: str) -> tuple[Record, str | None]:
    """The summary of the recording at `path`, read in bounded memory, and where it
    stopped; raises as `read_recording` does."""
    reader = RecordingReader(path)
    summary = summarize(reader)
    reader.check_usable()
    return summary, reader.problem


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


NUMBER_FIELDS = {
    "sample": ("ts",),
    "end": ("ended", "exit_code"),
    "meta": ("pid",),
}
TIME_FIELDS = {"sample": ("ts",), "end": ("ended",)}
HOST_TEXT = ("name", "name_source", "scope")  # of a host in a sample's `remotes`
HOST_FIGURES = ("sent_bytes", "recv_bytes")
TOP_HOSTS = 10  # remote hosts a summary lists
# denet's other disk signals: bytes through read(2)/write(2), and page faults
DISK_SIGNALS = (
    "syscall_read_bytes",
    "syscall_write_bytes",
    "page_faults_cached",
    "page_faults_disk",
)
TREE_FIELDS = (
    "cpu_percent",
    "rss_bytes",
    "read_bytes",
    "write_bytes",
    *DISK_SIGNALS,
    "sent_bytes",
    "recv_bytes",
    "gpu_memory_bytes",
    "processes",
)


PROFILE_OFFCPU = ("total_time_ns", "total_events", "max_time_ns")


def _is_number(value: Any, nullable: bool = True) -> bool:
    if value is None:
        return nullable
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(record: Any) -> None:
    """ValueError unless `record` has the types summarize relies on."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        raise ValueError("not a recording line")
    kind = record["type"]
    for key in NUMBER_FIELDS.get(kind, ()):
        if not _is_number(record.get(key), nullable=key != "ts"):
            raise ValueError(f"{kind} line: {key} is not a number")
    for key in TIME_FIELDS.get(kind, ()):
        if record.get(key) is not None and not 0 <= record[key] <= LATEST_TS:
            raise ValueError(f"{kind} line: {key} is not a time")
    schema = record.get("schema")
    if kind == "meta" and (schema not in READABLE or isinstance(schema, bool)):
        raise ValueError(f"meta line: schema {schema!r}, not one of {READABLE}")
    cmdline = record.get("cmdline")
    if kind == "meta" and not _is_arguments(cmdline):
        raise ValueError("meta line: cmdline is not a list of strings")
    tree = record.get("tree")
    if kind == "sample" and not _is_numbers(tree):
        raise ValueError("sample line: tree is not an object of figures (numbers, >= 0)")
    if kind == "sample" and isinstance(tree, dict) and not _is_profile(tree.get("ebpf")):
        raise ValueError("sample line: tree.ebpf is not a profile (offcpu, syscalls)")
    if kind == "sample" and not _is_hosts(record.get("remotes")):
        raise ValueError("sample line: remotes is not a list of hosts (address, name, bytes)")


def _is_arguments(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(a, str) for a in value))


def _is_figure(value: Any) -> bool:
    """Unknown, or a number a tree can hold: a count, bytes or a percentage."""
    return value is None or (_is_number(value) and 0 <= value < MAX_FIGURE)


def _is_numbers(tree: Any) -> bool:
    return tree is None or (
        isinstance(tree, dict) and all(_is_figure(tree.get(k)) for k in TREE_FIELDS)
    )


def _is_profile(ebpf: Any) -> bool:
    """Absent or null (no --profile), or the `ebpf` object with the figures summarised."""
    if ebpf is None:
        return True
    if not isinstance(ebpf, dict):
        return False
    offcpu, calls = ebpf.get("offcpu"), ebpf.get("syscalls")
    if not isinstance(offcpu, dict) or not isinstance(calls, dict):
        return False
    figures = [offcpu.get(k) for k in PROFILE_OFFCPU] + [calls.get("total")]
    by_category, top = calls.get("by_category"), calls.get("top_syscalls")
    return (
        all(_is_figure(v) for v in figures)
        and (by_category is None or _is_counts(by_category))
        and (top is None or _is_top(top))
        and ebpf.get("bound_by") in (None, *BOUND_BY)
    )


def _is_top(top: Any) -> bool:
    return isinstance(top, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and _is_count(t.get("count"))
        for t in top
    )


def _is_count(value: Any) -> bool:
    return value is not None and _is_figure(value)


def _is_counts(counts: Any) -> bool:
    return isinstance(counts, dict) and all(
        isinstance(k, str) and _is_count(v) for k, v in counts.items()
    )


def _is_host(host: Any) -> bool:
    return (
        isinstance(host, dict)
        and isinstance(host.get("address"), str)
        and all(isinstance(host.get(k), (str, type(None))) for k in HOST_TEXT)
        and all(_is_figure(host.get(k)) for k in HOST_FIGURES)
    )


def _is_hosts(remotes: Any) -> bool:
    """Absent or null (schema 1, a backend without connections), or a list of hosts."""
    return remotes is None or (isinstance(remotes, list) and all(map(_is_host, remotes)))


def say_if_unreadable(load: Callable[[str], T], path: str) -> T | None:
    """`load(path)` for a command: on failure, one `nettop-ui: error:` line on stderr
    and None."""
    try:
        return load(path)
    except OSError as exc:
        print(f"nettop-ui: error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    except RecordingError as exc:
        print(f"nettop-ui: error: {exc}", file=sys.stderr)
    return None


def read_recording_or_say(path: str) -> tuple[list[Record], str | None] | None:
    return say_if_unreadable(read_recording, path)


def _why(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg})"
    return str(exc) if str(exc) else "unreadable"


class Summary:
    """Duration, exit code, peak and mean CPU, peak RSS and GPU memory, byte totals,
    from records added one at a time (recording lines, or just sample records)."""

    PEAKS = ("cpu_percent", "rss_bytes", "gpu_memory_bytes", "processes")
    LASTS = ("read_bytes", "write_bytes", "sent_bytes", "recv_bytes", *DISK_SIGNALS)

    def __init__(self) -> None:
        self.meta: Record = {}
        self.end: Record | None = None
        self.samples = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.cpu_sum = 0.0
        self.cpu_count = 0
        self.peak: dict[str, Any] = dict.fromkeys(self.PEAKS)
        self.last: dict[str, Any] = dict.fromkeys(self.LASTS)
        self.remotes: list[Record] | None = None  # the last sample's top hosts
        self.profile: Record | None = None  # the last sample's tree.ebpf (cumulative)

    def add(self, record: Record) -> None:
        kind = record.get("type")
        if kind == "meta" and not self.meta:
            self.meta = record
        elif kind == "end" and self.end is None:
            self.end = record
        elif kind == "sample":
            self.first_ts = record["ts"] if self.first_ts is None else self.first_ts
            self.last_ts = record["ts"]
            tree = record.get("tree")
            if tree:
                self._add_tree(tree)
            remotes = record.get("remotes")
            if remotes is not None:  # cumulative: the last sample's hosts are the run's
                self.remotes = [
                    _host_summary(h) for h in heapq.nlargest(TOP_HOSTS, remotes, key=_host_bytes)
                ]

    def _add_tree(self, tree: Record) -> None:
        self.samples += 1
        if (cpu := tree.get("cpu_percent")) is not None:
            self.cpu_sum += cpu
            self.cpu_count += 1
        for key in self.PEAKS:
            value, peak = tree.get(key), self.peak[key]
            if value is not None and (peak is None or value > peak):
                self.peak[key] = value
        for key in self.LASTS:
            if (value := tree.get(key)) is not None:
                self.last[key] = value
        if (ebpf := tree.get("ebpf")) is not None:
            self.profile = ebpf

    def result(self) -> Record:
        end = self.end
        # From the first sample (for `run`: CMD resumes right after it) to the end.
        last = end.get("ended") if end is not None else None
        last = last if last is not None else self.last_ts
        first = self.first_ts
        duration = round(last - first, 3) if first is not None and last is not None else None
        return {
            "pid": self.meta.get("pid"),
            "cmdline": self.meta.get("cmdline"),
            "backend": self.meta.get("backend"),
            "complete": end is not None,
            "samples": self.samples,
            "duration_s": duration,
            "exit_code": end.get("exit_code") if end else None,
            "cpu_percent_peak": self.peak["cpu_percent"],
            "cpu_percent_mean": (
                round(self.cpu_sum / self.cpu_count, 1) if self.cpu_count else None
            ),
            "rss_bytes_peak": self.peak["rss_bytes"],
            **self.last,
            "gpu_memory_bytes_peak": self.peak["gpu_memory_bytes"],
            "processes_peak": self.peak["processes"],
            "remotes": self.remotes,
            "ebpf": _profile_summary(self.profile),
        }


def _profile_summary(ebpf: Record | None) -> Record | None:
    """`--profile`'s totals over the run: the tree's last (cumulative) ebpf object."""
    if ebpf is None:
        return None
    offcpu, calls = ebpf["offcpu"], ebpf["syscalls"]
    return {
        "offcpu_time_ns": offcpu["total_time_ns"],
        "offcpu_events": offcpu["total_events"],
        "offcpu_max_ns": offcpu["max_time_ns"],
        "syscalls": calls["total"],
        "syscalls_by_category": calls.get("by_category"),
        "top_syscalls": calls.get("top_syscalls"),
        "bound_by": ebpf.get("bound_by"),
    }


def _host_bytes(host: Record) -> int:
    return (host.get("sent_bytes") or 0) + (host.get("recv_bytes") or 0)


def _host_summary(host: Record) -> Record:
    """A recorded remote host, as the summary lists it."""
    return {k: host.get(k) for k in ("address", "name", "name_source", "scope", *HOST_FIGURES)}


def summarize(records: Iterable[Record]) -> Record:
    """The `Summary` of recording lines (meta, samples, end) or just sample records."""
    summary = Summary()
    for record in records:
        summary.add(record)
    return summary.result()


def format_summary(s: Record) -> str:
    """The summary for people, one figure a line; `-` is unknown."""

    def num(value: Any, unit: str = "") -> str:
        return "-" if value is None else f"{value}{unit}"

    cmd = " ".join(s["cmdline"] or []) or "-"
    lines = [
        f"command:      {cmd!a}"[:200] + f"  (pid {num(s['pid'])})",
        f"exit code:    {num(s['exit_code'])}" + ("" if s["complete"] else "  (no end line)"),
        f"duration:     {num(s['duration_s'], ' s')}  ({s['samples']} samples, {s['backend']})",
        f"cpu:          peak {num(s['cpu_percent_peak'], '%')}, "
        f"mean {num(s['cpu_percent_mean'], '%')} (100% = one core)",
        f"memory:       peak RSS {human_bytes(s['rss_bytes_peak'])}",
        f"disk:         read {human_bytes(s['read_bytes'])}, "
        f"written {human_bytes(s['write_bytes'])} (block layer); "
        f"syscalls read {human_bytes(s['syscall_read_bytes'])}, "
        f"wrote {human_bytes(s['syscall_write_bytes'])}",
        f"page faults:  {num(s['page_faults_cached'])} cached (minor), "
        f"{num(s['page_faults_disk'])} from disk (major)",
        f"network:      sent {human_bytes(s['sent_bytes'])}, "
        f"received {human_bytes(s['recv_bytes'])}",
        f"gpu memory:   peak {human_bytes(s['gpu_memory_bytes_peak'])}",
    ]
    if s.get("ebpf"):
        lines.extend(_profile_lines(s["ebpf"]))
    if s["remotes"]:
        lines.append("remote hosts: the most bytes first (sent, received)")
        lines.extend(_host_line(h) for h in s["remotes"])
    return "\n".join(lines) + "\n"


def _profile_lines(p: Record) -> list[str]:
    """`--profile`'s totals for people: off-CPU time, syscalls by category, the top ones."""
    events = p["offcpu_events"]
    lines = [
        f"off-CPU:      {p['offcpu_time_ns'] / 1e9:.3f} s blocked in {events} waits, longest "
        f"{p['offcpu_max_ns'] / 1e6:.1f} ms; bound by {p['bound_by'] or '-'}",
        f"syscalls:     {p['syscalls']}",
    ]
    cats = p["syscalls_by_category"]
    if cats:
        ranked = sorted(((n, c) for c, n in cats.items() if n), reverse=True)
        lines[-1] += " (" + ", ".join(f"{c} {n}" for n, c in ranked) + ")"
    if p["top_syscalls"]:
        top = ", ".join(f"{t['name']} {t['count']}" for t in p["top_syscalls"][:5])
        lines.append(f"top syscalls: {top}"[:200])
    # A recording's names are untrusted: escaped like the hosts' below.
    return [line.encode("unicode_escape").decode("ascii") for line in lines]


def _host_line(host: Record) -> str:
    """`  db.example.com (10.0.0.5)  1.2 MB, 30.0 kB`; a name is untrusted: escaped."""
    address = host["address"] or "(no remote address)"
    name = f"{host['name']} ({address})" if host["name"] else address
    local = "  [local]" if host["scope"] == "local" else ""
    sent, recv = human_bytes(host["sent_bytes"]), human_bytes(host["recv_bytes"])
    return f"  {name.encode('unicode_escape').decode('ascii')[:120]}  {sent}, {recv}{local}"
