"""Summaries of `run`/`attach` recordings: duration, exit code, peaks, means and totals.

`read_recording` reads a JSON Lines recording up to the first damaged line (a
recording cut short by a crash, or not a recording at all) and says where it
stopped; `summarize` works on the records it read, or on samples held in memory.
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


def _peak(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _last(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return known[-1] if known else None


def summarize(records: Iterable[Record]) -> Record:
    """Duration, exit code, peak and mean CPU, peak RSS and GPU memory, byte totals.

    `records` are recording lines (meta, samples, end) or just sample records.
    """
    records = list(records)
    meta = next((r for r in records if r.get("type") == "meta"), {})
    end = next((r for r in records if r.get("type") == "end"), None)
    trees = [r["tree"] for r in records if r.get("type") == "sample" and r.get("tree")]
    stamps = [r["ts"] for r in records if r.get("type") == "sample"]
    cpu = [t["cpu_percent"] for t in trees if t.get("cpu_percent") is not None]
    # From the first sample (for `run`: CMD resumes right after it) to the end.
    last = end.get("ended") if end is not None else None
    last = last if last is not None else (stamps[-1] if stamps else None)
    duration = round(last - stamps[0], 3) if stamps and last is not None else None

    def col(key: str) -> list[Any]:
        return [t.get(key) for t in trees]

    return {
        "pid": meta.get("pid"),
        "cmdline": meta.get("cmdline"),
        "backend": meta.get("backend"),
        "complete": end is not None,
        "samples": len(trees),
        "duration_s": duration,
        "exit_code": end.get("exit_code") if end else None,
        "cpu_percent_peak": _peak(cpu),
        "cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
        "rss_bytes_peak": _peak(col("rss_bytes")),
        "read_bytes": _last(col("read_bytes")),
        "write_bytes": _last(col("write_bytes")),
        "sent_bytes": _last(col("sent_bytes")),
        "recv_bytes": _last(col("recv_bytes")),
        "gpu_memory_bytes_peak": _peak(col("gpu_memory_bytes")),
        "processes_peak": _peak(col("processes")),
    }


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
