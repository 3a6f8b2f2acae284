"""Summaries of recordings: duration, exit code, peaks, means and totals of a `run`/`attach`
tree, or the top processes of a whole-machine (`--json`) recording.

`RecordingReader` reads a JSON Lines recording line by line, each line capped in
length, up to the first damaged line (a recording cut short by a crash, spoiled
figures, a second recording joined on with `cat`, or not a recording at all) and
says where it stopped. `Summary` folds records in one at a time, keeping a few figures,
not the records: `summarize_file` runs in bounded memory whatever the file's size, and
`run`/`attach` keep one for their summary however long they run. A whole-machine
recording gets a `MachineSummary` instead: a few figures per process identity seen (its
memory grows with the processes, not with the samples). `read_recording` keeps every
record (replay needs them all; a large file is indexed instead, recording_index.py).
"""

from __future__ import annotations

import heapq
import itertools
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
        self.samples = 0  # with a `tree`: a run/attach recording's
        self.machine_samples = 0  # without one: a whole-machine (`--json`) recording's
        self.offset = 0  # where the line last read starts in the file
        self._first_ts: float | None = None

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as f:
            number = 0
            offset = 0
            while raw := f.readline(MAX_LINE_BYTES + 1):
                number += 1
                self.offset, offset = offset, offset + len(raw)
                if len(raw) > MAX_LINE_BYTES:
                    self.problem = f"stopped at line {number}: longer than {MAX_LINE_BYTES:,} bytes"
                    return
                try:
                    record = parse_line(raw)
                    self._check_in_order(record, number)
                except (ValueError, RecursionError) as exc:
                    self.problem = f"stopped at line {number}: {damage_reason(exc)}"
                    return
                yield record

    def _check_in_order(self, record: Record, number: int) -> None:
        """ValueError when `record` cannot follow the lines before it in one recording."""
        kind = record["type"]
        if kind == "meta" and number > 1:
            raise ValueError("a second recording starts here (files joined?)")
        if kind == "sample":
            self._first_ts = record["ts"] if self._first_ts is None else self._first_ts
            tree = isinstance(record.get("tree"), dict)
            self.samples += tree
            self.machine_samples += not tree
        ended, first = record.get("ended"), self._first_ts
        if kind == "end" and ended is not None and first is not None and ended < first:
            raise ValueError("end line: ended is before the first sample")

    def check_usable(self) -> None:
        if not self.samples and not self.machine_samples:
            where = f" ({self.problem})" if self.problem else ""
            raise RecordingError(f"no samples of a recording in {self.path}{where}")


def parse_line(raw: bytes) -> Record:
    """One recording line as a record; ValueError or RecursionError when it is damaged
    (not JSON, NaN or infinity, figures of the wrong type)."""
    record = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    _check(record)
    return record  # type: ignore[no-any-return]


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
    stopped; raises as `read_recording` does. A whole-machine recording (its meta line
    names no command, its samples have no `tree`) gets a `MachineSummary`."""
    reader = RecordingReader(path)
    records = iter(reader)
    first = next(records, None)
    summary: Summary | MachineSummary = MachineSummary() if is_machine(first) else Summary()
    for record in itertools.chain([first] if first else [], records):
        summary.add(record)
    reader.check_usable()
    return summary.result(), reader.problem


def is_machine(first: Record | None) -> bool:
    """Whether a recording starting with `first` is a whole-machine one (`--json`)."""
    if first is None:
        return False
    if first["type"] == "meta":
        return "cmdline" not in first
    return first["type"] == "sample" and "tree" not in first


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


def damage_reason(exc: ValueError | RecursionError) -> str:
    """Why a recording line is damaged, in a few words."""
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


TOP_PROCESSES = 10  # processes a whole-machine summary lists per ranking
# A process's figures in a whole-machine summary, and how each is folded over samples:
# the last value (bytes since the monitor started), the peak, or the growth since the
# process was first seen (CPU seconds and disk bytes count from the process's start).
PROCESS_LAST = ("sent_bytes", "recv_bytes")
PROCESS_PEAK = ("cpu_percent", "rss_bytes")
PROCESS_GROWTH = ("cpu_seconds", "read_bytes", "write_bytes")
RANKINGS = {  # the summary's top lists: name -> the figure ranked, most first
    "bytes": "total_bytes",
    "cpu": "cpu_seconds",
    "disk": "disk_bytes",
    "memory": "rss_bytes_peak",
}


class _Seen:
    """What a whole-machine summary keeps of one process identity."""

    __slots__ = ("first", "last", "peak", "who")

    def __init__(self, who: Record) -> None:
        self.who = who  # pid, start time, name, command line, user, service
        self.last: dict[str, Any] = dict.fromkeys(PROCESS_LAST)
        self.peak: dict[str, Any] = dict.fromkeys(PROCESS_PEAK)
        self.first: dict[str, Any] = dict.fromkeys(PROCESS_GROWTH)
        self.last.update(dict.fromkeys(PROCESS_GROWTH))

    def add(self, p: Record) -> None:
        figures = {k: _figure(p, k) for k in (*PROCESS_LAST, *PROCESS_PEAK)}
        user, system = _figure(p, "cpu_user_s"), _figure(p, "cpu_system_s")
        figures["cpu_seconds"] = None if user is None or system is None else user + system
        figures["read_bytes"] = _figure(p, "read_bytes")
        figures["write_bytes"] = _figure(p, "write_bytes")
        for key in (*PROCESS_LAST, *PROCESS_GROWTH):
            if figures[key] is not None:
                self.last[key] = figures[key]
        for key in PROCESS_GROWTH:
            if self.first[key] is None:
                self.first[key] = figures[key]
        for key in PROCESS_PEAK:
            value, peak = figures[key], self.peak[key]
            if value is not None and (peak is None or value > peak):
                self.peak[key] = value

    def row(self) -> Record:
        grown = {
            k: None if self.last[k] is None else _round(self.last[k] - self.first[k])
            for k in PROCESS_GROWTH
        }
        sent, recv = self.last["sent_bytes"], self.last["recv_bytes"]
        read, write = grown["read_bytes"], grown["write_bytes"]
        return {
            **self.who,
            "sent_bytes": sent,
            "recv_bytes": recv,
            "total_bytes": None if sent is None and recv is None else (sent or 0) + (recv or 0),
            "cpu_seconds": grown["cpu_seconds"],
            "cpu_percent_peak": self.peak["cpu_percent"],
            "rss_bytes_peak": self.peak["rss_bytes"],
            "read_bytes": read,
            "write_bytes": write,
            "disk_bytes": None if read is None and write is None else (read or 0) + (write or 0),
        }


def _figure(record: Record, key: str) -> float | None:
    """A figure of a recorded process; None (unknown) unless a number >= 0."""
    value = record.get(key)
    return value if _is_figure(value) else None


def _round(value: float) -> float:
    return round(value, 3) if isinstance(value, float) else value


def _who(p: Record) -> Record:
    """A recorded process's identity and names, as a summary lists them."""
    cmdline = p.get("cmdline")
    return {
        "pid": p.get("pid"),
        "start_time": _figure(p, "start_time"),
        "name": p.get("name") if isinstance(p.get("name"), str) else None,
        "cmdline": cmdline[:64] if _is_arguments(cmdline) and cmdline else None,
        "user": p.get("user") if isinstance(p.get("user"), str) else None,
        "service": p.get("service") if isinstance(p.get("service"), str) else None,
    }


class MachineSummary:
    """A whole-machine (`--json`) recording's summary: its span, the bytes moved, and
    the top processes by bytes, CPU time, disk bytes and peak RSS over the recording,
    from records added one at a time."""

    def __init__(self) -> None:
        self.meta: Record = {}
        self.samples = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.seen: dict[tuple[Any, Any], _Seen] = {}  # by (pid, start time)
        self.remotes: list[Record] | None = None  # the last sample's top hosts
        self.unattributed: Record | None = None  # the last sample's

    def add(self, record: Record) -> None:
        kind = record.get("type")
        if kind == "meta" and not self.meta:
            self.meta = record
        if kind != "sample":
            return
        self.samples += 1
        self.first_ts = record["ts"] if self.first_ts is None else self.first_ts
        self.last_ts = record["ts"]
        procs = record.get("processes")
        for p in procs if isinstance(procs, list) else ():
            if not isinstance(p, dict) or not _is_number(p.get("pid"), nullable=False):
                continue
            key = (p["pid"], p.get("start_time"))
            seen = self.seen.get(key)
            if seen is None:
                seen = self.seen[key] = _Seen(_who(p))
            seen.add(p)
        remotes = record.get("remotes")
        if remotes is not None:  # cumulative: the last sample's hosts are the recording's
            self.remotes = [
                _host_summary(h) for h in heapq.nlargest(TOP_HOSTS, remotes, key=_host_bytes)
            ]
        u = record.get("unattributed")
        if isinstance(u, dict):
            self.unattributed = {k: _figure(u, k) for k in HOST_FIGURES}

    def result(self) -> Record:
        first, last = self.first_ts, self.last_ts
        rows = [seen.row() for seen in self.seen.values()]
        top = {
            name: [
                r for r in heapq.nlargest(TOP_PROCESSES, rows, key=lambda r: r[key] or 0) if r[key]
            ]
            for name, key in RANKINGS.items()
        }
        return {
            "recording": "machine",
            "host": self.meta.get("host"),
            "backend": self.meta.get("backend"),
            "samples": self.samples,
            "started": first,
            "duration_s": round(last - first, 3)
            if first is not None and last is not None
            else None,
            "processes_seen": len(rows),
            "sent_bytes": _sum(r["sent_bytes"] for r in rows),
            "recv_bytes": _sum(r["recv_bytes"] for r in rows),
            "unattributed": self.unattributed,
            "top": top,
            "remotes": self.remotes,
        }


def _sum(values: Iterable[Any]) -> int | None:
    """The sum of the known values; None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


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
    if s.get("recording") == "machine":
        return format_machine_summary(s)

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


TOP_TITLES = {
    "bytes": "top by network bytes (sent, received)",
    "cpu": "top by CPU time",
    "disk": "top by disk bytes (read, written)",
    "memory": "top by peak RSS",
}


def format_machine_summary(s: Record) -> str:
    """A whole-machine recording's summary for people; `-` is unknown."""
    span = "-" if s["duration_s"] is None else f"{s['duration_s']} s"
    lines = [
        f"recording:    whole machine, host {s['host'] or '-'}"[:200],
        f"duration:     {span}  ({s['samples']} samples, {s['backend']})",
        f"network:      sent {human_bytes(s['sent_bytes'])}, "
        f"received {human_bytes(s['recv_bytes'])} by {s['processes_seen']} processes",
    ]
    u = s["unattributed"]
    if u:
        lines.append(
            f"unattributed: sent {human_bytes(u['sent_bytes'])}, "
            f"received {human_bytes(u['recv_bytes'])}"
        )
    for name, rows in s["top"].items():
        lines.append(TOP_TITLES[name])
        lines.extend(_process_line(name, r) for r in rows)
    if s["remotes"]:
        lines.append("remote hosts: the most bytes first (sent, received)")
        lines.extend(_host_line(h) for h in s["remotes"])
    return "\n".join(lines) + "\n"


def _process_line(ranking: str, r: Record) -> str:
    """`  1234 curl (alice)  1.2 MiB, 30 KiB`; names are untrusted: escaped."""
    if ranking == "bytes":
        figure = f"{human_bytes(r['sent_bytes'])}, {human_bytes(r['recv_bytes'])}"
    elif ranking == "cpu":
        figure = f"{r['cpu_seconds']:.2f} s (peak {r['cpu_percent_peak'] or '-'}%)"
    elif ranking == "disk":
        figure = f"{human_bytes(r['read_bytes'])}, {human_bytes(r['write_bytes'])}"
    else:
        figure = human_bytes(r["rss_bytes_peak"])
    who = f"{r['name'] or '?'} ({r['user'] or '?'})".encode("unicode_escape").decode("ascii")
    return f"  {r['pid']:>7} {who[:60]}  {figure}"
