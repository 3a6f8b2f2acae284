"""denet's analysis utilities, with denet 0.10.3's names, arguments and results.

denet (https://pypi.org/project/denet/) ships `aggregate_metrics`, `find_peaks`,
`resource_utilization`, `process_tree_analysis`, `convert_format`, `save_metrics`
and `load_metrics` in `denet.analysis`. This module gives the same results, written
anew from their documented and observed behaviour (tests/test_analysis.py runs both
side by side), on:

- denet's files and nettop-ui's `--format denet` recordings;
- nettop-ui's own recordings and in-memory records (`nettop_ui.api`'s samples): these
  are first turned into denet's records by the converter `--format denet` writes
  with, so they give what the denet-format file of the same run gives.

denet's functions read the metrics at the top level of a record (`cpu_usage`,
`mem_rss_kb`, ...). A process tree's records (`kind: tree`, what `run`/`attach`
write) hold them under `parent`, `children[].metrics` and `aggregated`, so, as in
denet, most figures come out empty for them; pass `[m["aggregated"] for m in
metrics]` to analyse the tree as one process (docs/python-api.md).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nettop_ui.denet_format import DenetConverter
from nettop_ui.summary import RecordingReader

Record = dict[str, Any]
Metrics = list[Record]

FORMATS = ("json", "jsonl", "csv")
# the figures aggregate_metrics folds; every other key keeps the window's first value
AGGREGATED = (
    "cpu_usage",
    "mem_rss_kb",
    "mem_vms_kb",
    "disk_read_bytes",
    "disk_write_bytes",
    "sys_net_rx_bytes",
    "sys_net_tx_bytes",
    "thread_count",
    "uptime_secs",
)
CSV_FIRST = ("ts_ms", "cpu_usage", "mem_rss_kb", "mem_vms_kb")
# denet takes a JSON Lines file's first line for metadata when it names one of these
METADATA_KEYS = ("pid", "cmd", "executable", "t0_ms")
NOT_METRICS = ("child", "exit")  # denet's per-child argv and exit lines
OUR_TYPES = ("meta", "sample", "event", "end")
TOTALS = (  # resource_utilization: the last record's figure, in MB
    ("disk_read_bytes", "total_read_mb"),
    ("disk_write_bytes", "total_write_mb"),
    ("sys_net_rx_bytes", "total_sys_net_rx_mb"),
    ("sys_net_tx_bytes", "total_sys_net_tx_mb"),
)


class MetricsError(ValueError):
    """A file that holds no metrics that can be read; the message is one line."""


# --- nettop-ui's records as denet's -------------------------------------------------


def _is_ours(records: Sequence[Record]) -> bool:
    return bool(records) and isinstance(records[0], dict) and records[0].get("type") in OUR_TYPES


def to_denet(records: Iterable[Record]) -> Metrics:
    """nettop-ui's recording records as the lines `--format denet` writes for them.

    Without a `meta` record (samples alone) the top process is the first member of
    the first sample (members are listed by start time), and the backend is unknown.
    """
    lines: Metrics = []
    convert = DenetConverter(lines.append)
    for record in records:
        if record.get("type") == "sample" and not convert.meta and record.get("processes"):
            convert.meta = {"pid": record["processes"][0]["pid"]}
        convert(record)
    return lines


def _metrics(metrics: Sequence[Record]) -> Metrics:
    """The metrics denet would analyse: nettop-ui's records become denet's `tree`
    lines (what load_metrics reads from the denet-format file of the same run)."""
    if _is_ours(metrics):
        return [m for m in to_denet(metrics) if m.get("kind") == "tree"]
    return list(metrics)


# --- files ---------------------------------------------------------------------------


def _read(path: str) -> tuple[Metrics, bool]:
    """Every record of a file as denet's records, and whether it was JSON Lines: a
    JSON array, JSON Lines, or a nettop-ui recording (converted). OSError when it
    cannot be read, MetricsError when it is damaged or not a metrics file."""
    with open(path, encoding="utf-8") as f:
        try:
            text = f.read()
        except UnicodeDecodeError:
            raise MetricsError(f"{path}: not a metrics file (not UTF-8 text)") from None
    if text.lstrip().startswith("["):
        records = _parse(path, text, None)
        if not isinstance(records, list):
            raise MetricsError(f"{path}: not a metrics file (not a JSON array)")
        return [_object(path, r, None) for r in records], False
    lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    first = _parse(path, lines[0][1], 1) if lines else None
    if isinstance(first, dict) and first.get("type") in OUR_TYPES:
        return to_denet(_recording(path)), True
    return [_object(path, _parse(path, line, n), n) for n, line in lines], True


def _recording(path: str) -> Metrics:
    """A nettop-ui recording's records, checked as `summary` checks them."""
    reader = RecordingReader(path)
    records = list(reader)
    if reader.problem:
        raise MetricsError(f"{path}: {reader.problem}")
    return records


def _parse(path: str, text: str, line: int | None) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise MetricsError(f"{path}: {_where(line)}not JSON ({why})") from None


def _where(line: int | None) -> str:
    return "" if line is None else f"line {line}: "


def _object(path: str, value: Any, line: int | None) -> Record:
    if not isinstance(value, dict):
        raise MetricsError(f"{path}: {_where(line)}not a JSON object")
    return value


def _names_any(value: Any, keys: Sequence[str]) -> bool:
    """One of `keys` is a key of `value` or of anything nested in it (denet looks for
    them in the line's text)."""
    if isinstance(value, dict):
        return any(k in value for k in keys) or _names_any(list(value.values()), keys)
    return isinstance(value, list) and any(_names_any(v, keys) for v in value)


def load_metrics(path: str, include_metadata: bool = False) -> Metrics:
    """The metrics of a file: denet's (JSON Lines or a JSON array), a `--format denet`
    recording, or a nettop-ui recording (as the denet-format file of the same run).

    From JSON Lines, `child` and `exit` lines are left out, and the first line is
    taken for metadata when it (or anything in it) names `pid`, `cmd`, `executable`
    or `t0_ms`: returned first only with `include_metadata`. Raises OSError
    (FileNotFoundError) when the file cannot be read, MetricsError (a ValueError)
    when it is damaged or not a metrics file.
    """
    records, is_lines = _read(path)
    if not is_lines:
        return records
    records = [r for r in records if r.get("kind") not in NOT_METRICS]
    if records and _names_any(records[0], METADATA_KEYS) and not include_metadata:
        return records[1:]
    return records


def save_metrics(
    metrics: Metrics, path: str, format: str = "jsonl", include_metadata: bool = True
) -> None:
    """Write metrics to `path` as `jsonl` (after a metadata line of this process, with
    `include_metadata`), `json` (an indented array) or `csv` (as convert_format).
    ValueError for another format, before `path` is touched."""
    write = _WRITERS.get(format)
    if write is None:
        raise ValueError(f"Unknown format: {format}")
    text = write(_metrics(metrics), include_metadata)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _jsonl_file(metrics: Metrics, include_metadata: bool) -> str:
    metadata = {
        "pid": os.getpid(),
        "cmd": ["python"],  # denet's words for "written by a program", kept for its readers
        "executable": sys.executable,
        "t0_ms": int(time.time() * 1000),
    }
    lines = [metadata, *metrics] if include_metadata else metrics
    return "".join(json.dumps(m) + "\n" for m in lines)


_WRITERS: dict[str, Callable[[Metrics, bool], str]] = {
    "json": lambda metrics, _: json.dumps(metrics, indent=2),
    "jsonl": _jsonl_file,
    "csv": lambda metrics, _: convert_format(metrics, "csv"),
}


def convert_format(
    metrics: Metrics | str, to_format: str = "csv", indent: int | None = None
) -> str:
    """Metrics (or every record of the file at a path, metadata included) as `json`
    (indented by `indent`), `jsonl` (no newline at the end) or `csv` ("" for none).

    The CSV is denet's: one column per key, the usual ones first; values are written
    as Python prints them, unquoted, so a value holding a comma spans columns.
    ValueError for another format (when there are metrics).
    """
    records = _read(metrics)[0] if isinstance(metrics, str) else _metrics(metrics)
    if not records:
        return ""
    if to_format == "json":
        return json.dumps(records, indent=indent)
    if to_format == "jsonl":
        return "\n".join(map(json.dumps, records))
    if to_format == "csv":
        keys = {k for r in records for k in r}
        columns = [k for k in CSV_FIRST if k in keys] + sorted(keys - set(CSV_FIRST))
        rows = [",".join(str(r.get(k, "")) for k in columns) for r in records]
        return "".join(line + "\n" for line in [",".join(columns), *rows])
    raise ValueError(f"Unknown format: {to_format}")


# --- analysis ------------------------------------------------------------------------


def aggregate_metrics(metrics: Metrics, window_size: int = 10, method: str = "mean") -> Metrics:
    """One record per `window_size` records: the window's first record with each
    figure of AGGREGATED (that the first one has) folded by `method` (`mean`, `max`,
    `min`; another name means `mean`) over the records that have it, the last
    record's `ts_ms`, and `_aggregated`, `_window_size`, `_aggregation_method`.
    A window of 1 or less returns the metrics as they are."""
    records = _metrics(metrics)
    if not records:
        return []
    if window_size <= 1:
        return records
    fold: Callable[[list[Any]], Any] = {"max": max, "min": min}.get(method, _plain_mean)
    out = []
    for start in range(0, len(records), window_size):
        window = records[start : start + window_size]
        folded = dict(window[0])
        for key in AGGREGATED:
            if key in window[0]:
                folded[key] = fold([r[key] for r in window if key in r])
        if "ts_ms" in window[-1]:
            folded["ts_ms"] = window[-1]["ts_ms"]
        folded |= {"_aggregated": True, "_window_size": len(window), "_aggregation_method": method}
        out.append(folded)
    return out


def _plain_mean(values: Sequence[Any]) -> Any:
    """sum / count, as denet averages a window (not statistics.mean's exact sum)."""
    return sum(values) / len(values)


def find_peaks(
    metrics: Metrics,
    field: str = "cpu_usage",
    threshold: float = 0.8,
    window_size: int = 5,
) -> Metrics:
    """The records where `field`, smoothed by a centred moving mean of `window_size`,
    is a strict local maximum (first and last never are) and at least `threshold`
    times the field's largest raw value. [] when a record lacks `field`."""
    records = _metrics(metrics)
    if not records or any(field not in r for r in records):
        return []
    values = [r[field] for r in records]
    floor = max(values) * threshold
    if window_size > 1:
        half = window_size // 2
        values = [_plain_mean(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]
    return [
        records[i]
        for i in range(1, len(values) - 1)
        if values[i - 1] < values[i] > values[i + 1] and values[i] >= floor
    ]


def _stats(values: list[Any], name: str, scale: int | None = None) -> Record:
    """avg/max/min/median (and stdev, of two or more) of `values`, each / `scale` when
    given (otherwise as computed: the max of ints stays an int)."""
    out = {
        f"avg_{name}": statistics.mean(values),
        f"max_{name}": max(values),
        f"min_{name}": min(values),
        f"median_{name}": statistics.median(values),
    }
    if len(values) > 1:
        out[f"stdev_{name}"] = statistics.stdev(values)
    return {k: v / scale for k, v in out.items()} if scale else out


def resource_utilization(metrics: Metrics) -> Record:
    """CPU, memory (MB) and thread statistics over the records, the last record's
    disk and interface totals in MB, and the time from first to last `ts_ms`.
    Each figure is there only when every record has it; {} for no records."""
    records = _metrics(metrics)
    if not records:
        return {}

    def series(key: str) -> list[Any] | None:
        return [r[key] for r in records] if all(key in r for r in records) else None

    out: Record = {}
    if (cpu := series("cpu_usage")) is not None:
        out |= _stats(cpu, "cpu")
    if (mem := series("mem_rss_kb")) is not None:
        out |= _stats(mem, "mem_mb", 1024)
    for key, name in TOTALS:
        if series(key) is not None:
            out[name] = records[-1][key] / (1024 * 1024)
    if (threads := series("thread_count")) is not None:
        out |= {
            k: v for k, v in _stats(threads, "threads").items() if k[:3] in ("avg", "max", "min")
        }
    if "ts_ms" in records[0] and "ts_ms" in records[-1]:
        out["total_time_sec"] = (records[-1]["ts_ms"] - records[0]["ts_ms"]) / 1000
    return out


def process_tree_analysis(metrics: Metrics) -> Record:
    """CPU, memory (MB) and thread averages and maxima per process, and over all.

    Each record's own top-level figures count for its `pid` (0 when it has none), and
    those of each entry of its `children` (or `child_processes`) for that entry's
    `pid`; a missing figure counts as 0 (CPU, memory) or 1 (threads). The process of
    the last record's `pid` is `main_process`, the others are `child_processes` by
    pid; `total` is over every value counted. {} unless the first record has
    `children` or `child_processes`.
    """
    records = _metrics(metrics)
    if not records or not ("children" in records[0] or "child_processes" in records[0]):
        return {}
    seen: dict[Any, list[tuple[Any, Any, Any]]] = {}

    def count(pid: Any, figures: Record) -> None:
        seen.setdefault(pid, []).append(
            (
                figures.get("cpu_usage", 0),
                figures.get("mem_rss_kb", 0),
                figures.get("thread_count", 1),
            )
        )

    for record in records:
        count(record.get("pid", 0), record)
        for child in record.get("children", record.get("child_processes")) or []:
            count(child.get("pid", 0), child)
    main_pid = records[-1].get("pid", 0)
    out: Record = {"main_process": {}, "child_processes": {}, "total": {}}
    for pid, rows in seen.items():
        stats = _process_stats(rows)
        if pid == main_pid:
            out["main_process"] = stats
        else:
            out["child_processes"][pid] = stats
    out["total"] = _process_stats([row for rows in seen.values() for row in rows])
    return out


def _process_stats(rows: list[tuple[Any, Any, Any]]) -> Record:
    cpu, mem, threads = (list(column) for column in zip(*rows, strict=True))
    return {
        "avg_cpu": statistics.mean(cpu),
        "max_cpu": max(cpu),
        "avg_memory_mb": statistics.mean(mem) / 1024,
        "max_memory_mb": max(mem) / 1024,
        "avg_threads": statistics.mean(threads),
        "max_threads": max(threads),
    }
