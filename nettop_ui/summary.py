"""Summaries of `run`/`attach` recordings: duration, exit code, peaks, means and totals.

`read_recording` reads a JSON Lines recording up to the first damaged line (a
recording cut short by a crash, or not a recording at all) and says where it
stopped; `summarize` works on the records it read, or on samples held in memory.
`Summary` folds records in one at a time, keeping a few figures, not the records: what
`run` and `attach` keep in memory for their summary, however long they run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from nettop_ui.format import human_bytes

Record = dict[str, Any]


class RecordingError(Exception):
    """The file holds no usable recording; the message is one line for the user."""


def read_recording(path: str) -> tuple[list[Record], str | None]:
    """The records up to the first damaged line, and where and why it stopped (or None).

    Raises OSError when the file cannot be read, RecordingError when not one sample
    could be read from it.
    """
    records: list[Record] = []
    problem = None
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                record = json.loads(raw)
                _check(record)
            except ValueError as exc:
                problem = f"stopped at line {number}: {_why(exc)}"
                break
            records.append(record)
    if not any(r["type"] == "sample" and isinstance(r.get("tree"), dict) for r in records):
        where = f" ({problem})" if problem else ""
        raise RecordingError(f"no samples of a run/attach recording in {path}{where}")
    return records, problem


NUMBER_FIELDS = {
    "sample": ("ts",),
    "end": ("ended", "exit_code"),
    "meta": ("pid",),
}
TREE_FIELDS = (
    "cpu_percent",
    "rss_bytes",
    "read_bytes",
    "write_bytes",
    "sent_bytes",
    "recv_bytes",
    "gpu_memory_bytes",
    "processes",
)


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
    cmdline = record.get("cmdline")
    if kind == "meta" and not _is_arguments(cmdline):
        raise ValueError("meta line: cmdline is not a list of strings")
    tree = record.get("tree")
    if kind == "sample" and not _is_numbers(tree):
        raise ValueError("sample line: tree is not an object of numbers")


def _is_arguments(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(a, str) for a in value))


def _is_numbers(tree: Any) -> bool:
    return tree is None or (
        isinstance(tree, dict) and all(_is_number(tree.get(k)) for k in TREE_FIELDS)
    )


def read_recording_or_say(path: str) -> tuple[list[Record], str | None] | None:
    """read_recording for a command: on failure, one `nettop-ui: error:` line on stderr
    and None."""
    try:
        return read_recording(path)
    except OSError as exc:
        print(f"nettop-ui: error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    except RecordingError as exc:
        print(f"nettop-ui: error: {exc}", file=sys.stderr)
    return None


def _why(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg})"
    return str(exc) if str(exc) else "unreadable"


PEAKS = ("rss_bytes", "gpu_memory_bytes", "processes")  # the tree's, at their highest
LASTS = ("read_bytes", "write_bytes", "sent_bytes", "recv_bytes")  # last known totals


class Summary:
    """The summary's figures, folded in one record at a time (meta, samples, end)."""

    def __init__(self) -> None:
        self.meta: Record | None = None
        self.end: Record | None = None
        self.samples = 0  # samples with a tree
        self.first_ts: float | None = None  # of any sample
        self.last_ts: float | None = None
        self.cpu_peak: float | None = None
        self.cpu_sum: float = 0
        self.cpu_count = 0
        self.peaks: Record = dict.fromkeys(PEAKS)
        self.lasts: Record = dict.fromkeys(LASTS)

    def add(self, record: Record) -> None:
        kind = record.get("type")
        if kind == "meta" and self.meta is None:
            self.meta = {k: record.get(k) for k in ("pid", "cmdline", "backend")}
        elif kind == "end" and self.end is None:
            self.end = {k: record.get(k) for k in ("ended", "exit_code")}
        elif kind == "sample":
            self.first_ts = record["ts"] if self.first_ts is None else self.first_ts
            self.last_ts = record["ts"]
            tree = record.get("tree")
            if tree:
                self._add_tree(tree)

    def _add_tree(self, tree: Record) -> None:
        self.samples += 1
        cpu = tree.get("cpu_percent")
        if cpu is not None:
            self.cpu_peak = cpu if self.cpu_peak is None else max(self.cpu_peak, cpu)
            self.cpu_sum += cpu
            self.cpu_count += 1
        for key in PEAKS:
            value, peak = tree.get(key), self.peaks[key]
            if value is not None and (peak is None or value > peak):
                self.peaks[key] = value
        for key in LASTS:
            if tree.get(key) is not None:
                self.lasts[key] = tree[key]

    def result(self) -> Record:
        meta, end = self.meta or {}, self.end
        # From the first sample (for `run`: CMD resumes right after it) to the end.
        last = end.get("ended") if end is not None else None
        last = last if last is not None else self.last_ts
        first = self.first_ts
        duration = round(last - first, 3) if first is not None and last is not None else None
        return {
            "pid": meta.get("pid"),
            "cmdline": meta.get("cmdline"),
            "backend": meta.get("backend"),
            "complete": end is not None,
            "samples": self.samples,
            "duration_s": duration,
            "exit_code": end.get("exit_code") if end else None,
            "cpu_percent_peak": self.cpu_peak,
            "cpu_percent_mean": round(self.cpu_sum / self.cpu_count, 1) if self.cpu_count else None,
            "rss_bytes_peak": self.peaks["rss_bytes"],
            "read_bytes": self.lasts["read_bytes"],
            "write_bytes": self.lasts["write_bytes"],
            "sent_bytes": self.lasts["sent_bytes"],
            "recv_bytes": self.lasts["recv_bytes"],
            "gpu_memory_bytes_peak": self.peaks["gpu_memory_bytes"],
            "processes_peak": self.peaks["processes"],
        }


def summarize(records: Iterable[Record]) -> Record:
    """Duration, exit code, peak and mean CPU, peak RSS and GPU memory, byte totals.

    `records` are recording lines (meta, samples, end) or just sample records.
    """
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
        f"written {human_bytes(s['write_bytes'])}",
        f"network:      sent {human_bytes(s['sent_bytes'])}, "
        f"received {human_bytes(s['recv_bytes'])}",
        f"gpu memory:   peak {human_bytes(s['gpu_memory_bytes_peak'])}",
    ]
    return "\n".join(lines) + "\n"
