"""`nettop-ui history`: the top consumers over a time range, from `record`'s database.

    nettop-ui history --since yesterday --by program
    nettop-ui history --between 2026-12-01T22:00 2026-12-02T06:00 --by host --json

A row counts when its minute (or, for data older than the recorder's --keep-minutes,
its hour; older than --keep-hours, its UTC day) starts inside the range. Reading never
blocks the recorder: it is one read transaction on a WAL database, so it sees whole
commits only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import time
from typing import Any

from nettop_ui.args import PROG, OneLineParser, positive_int
from nettop_ui.format import Scale
from nettop_ui.record import duration
from nettop_ui.store import StoreError, default_path, describe, marks, open_reader, pieces

# --by: the columns (as the JSON names them, and their SQL), and what the rows group by.
GROUPS: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    "process": (
        (("pid", "p.pid"), ("start_time", "p.start_time"), ("program", "p.name")),
        "p.pid, p.start_time, p.name",
    ),
    "program": ((("program", "p.name"),), "p.name"),
    "service": ((("service", "p.service"),), "p.service"),
    "user": ((("user", "p.user"),), "p.user"),
    "host": ((("host", "r.unit"), ("name", "max(r.name)")), "r.unit"),
}


def when(text: str, now: float | None = None) -> float:
    """A point in time: `24h` (ago), `yesterday`, `today`, or an ISO date/time (local)."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if text == "today":
        return today.timestamp()
    if text == "yesterday":
        return (today - dt.timedelta(days=1)).timestamp()
    try:
        return now - duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time like 24h, yesterday or 2026-12-01T22:00: {text!r}"
        ) from None


def time_range(args: argparse.Namespace, now: float) -> tuple[float, float]:
    if args.between:
        start, end = (when(t, now) for t in args.between)
        if end <= start:
            raise argparse.ArgumentTypeError("--between: the second time must be after the first")
        return start, end
    since = args.since or "24h"
    start = when(since, now)
    end = when("today", now) if since == "yesterday" else now
    return start, end


def query(
    db: sqlite3.Connection, by: str, start: float, end: float, top: int | None = None
) -> list[dict[str, Any]]:
    """The groups' totals over [start, end), most bytes first."""
    keys, group = GROUPS[by]
    # Summed per process (or host) first, then per group: one join per process, not
    # per row. The range is read as whole days and hours and the minutes at its ends
    # (store.pieces); each piece is one range of the primary key (span, start, ...).
    table, unit, name, extra = (
        ("host_rollups", "host", "max(name)", "NULL, NULL, NULL, NULL")
        if by == "host"
        else (
            "proc_rollups",
            "proc",
            "NULL",
            "sum(cpu_s), sum(disk_bytes), sum(disk_read_bytes), sum(disk_write_bytes)",
        )
    )
    parts = pieces(start, end, *marks(db))
    rows_in_range = " UNION ALL ".join(
        f"SELECT * FROM {table} WHERE span = ? AND start >= ? AND start < ?" for _ in parts
    )
    extras = [f"{e} AS x{i}" for i, e in enumerate(extra.split(", "))]
    inner = (
        f"SELECT {unit} AS unit, {name} AS name, sum(sent_bytes) AS s, sum(recv_bytes) AS v,"
        " max(peak_sent_bps) AS ps, max(peak_recv_bps) AS pv, min(seen_from) AS f,"
        f" max(seen_to) AS l, {', '.join(extras)} FROM ({rows_in_range}) GROUP BY {unit}"
    )
    join = "" if by == "host" else " JOIN procs p ON p.id = r.unit"
    sql = (
        f"SELECT {', '.join(sql for _, sql in keys)}, sum(r.s), sum(r.v), max(r.ps),"
        f" max(r.pv), min(r.f), max(r.l), sum(r.x0), sum(r.x1), sum(r.x2), sum(r.x3)"
        f" FROM ({inner}) r{join}"
        f" GROUP BY {group} ORDER BY coalesce(sum(r.s), 0) + coalesce(sum(r.v), 0) DESC"
    )
    if top:
        sql += f" LIMIT {int(top)}"
    names = [k for k, _ in keys] + [
        "sent_bytes",
        "recv_bytes",
        "peak_sent_bps",
        "peak_recv_bps",
        "first_seen",
        "last_seen",
        "cpu_seconds",
        "disk_bytes",
        "disk_read_bytes",
        "disk_write_bytes",
    ]
    if not parts:
        return []
    rows = []
    for values in db.execute(sql, [v for part in parts for v in part]):
        row = dict(zip(names, values, strict=True))
        if by == "host":  # hosts have no CPU or disk
            for key in names[-4:]:
                del row[key]
        rows.append(row)
    return rows


def gaps(db: sqlite3.Connection, start: float, end: float) -> list[tuple[float, float, str]]:
    return list(
        db.execute(
            'SELECT start, "end", reason FROM gaps WHERE "end" > ? AND start < ? ORDER BY start',
            (start, end),
        )
    )


def _stamp(ts: float | None) -> str:
    return "?" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _label(row: dict[str, Any], by: str) -> str:
    if by == "process":  # pid None: the program's processes that moved no bytes
        pid = "(rest)" if row["pid"] is None else str(row["pid"])
        return _literal(f"{pid} {row['program']}")
    key = row["host"] if by == "host" else row[by]
    text = "(unknown)" if key is None else str(key)
    if by == "host" and row.get("name"):
        text += f" ({row['name']})"
    return _literal(text)


def _literal(text: str) -> str:
    """Untrusted text (names, a backend's message) as printable ASCII, escapes shown."""
    return text.encode("unicode_escape").decode("ascii")


def print_table(
    rows: list[dict[str, Any]], holes: list[tuple[float, float, str]], by: str, scale: Scale
) -> None:
    procs = by != "host"  # hosts have no CPU or disk
    extra = f"{'CPU s':>9} {'DISK READ':>10} {'DISK WRITE':>10} " if procs else ""
    print(
        f"{'SENT':>10} {'RECEIVED':>10} {'PEAK UP':>11} {'PEAK DOWN':>11} {extra}"
        f"{'FIRST':>16}  {'LAST':>16}  {by.upper()}"
    )
    for r in rows:
        if procs:
            cpu = "-" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:.1f}"
            disk = (scale.size(r["disk_read_bytes"]), scale.size(r["disk_write_bytes"]))
            extra = f"{cpu:>9} {disk[0]:>10} {disk[1]:>10} "
        print(
            f"{scale.traffic(r['sent_bytes']):>10} {scale.traffic(r['recv_bytes']):>10} "
            f"{scale.traffic_rate(r['peak_sent_bps']):>11} "
            f"{scale.traffic_rate(r['peak_recv_bps']):>11} {extra}"
            f"{_stamp(r['first_seen']):>16}  {_stamp(r['last_seen']):>16}  {_label(r, by)}"
        )
    for start, end, reason in holes:
        print(f"gap {_stamp(start)} to {_stamp(end)}: {_literal(reason)}")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"{PROG} history", description="Top consumers over a time range.")
    rng = p.add_mutually_exclusive_group()
    rng.add_argument(
        "--since", metavar="WHEN", help="24h (default), 7d, yesterday, today, or a time"
    )
    rng.add_argument("--between", nargs=2, metavar=("T1", "T2"), help="from T1 to T2")
    p.add_argument("--by", choices=tuple(GROUPS), default="program", help="group rows by")
    p.add_argument("--top", type=positive_int, metavar="N", help="only the first N rows")
    p.add_argument("--json", action="store_true", help="a JSON array of rows")
    p.add_argument("--db", metavar="PATH", help=f"the database (default here: {default_path()})")
    p.add_argument("--units", choices=("iec", "si"), default="iec", help="as for nettop-ui")
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        start, end = time_range(args, time.time())
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    path = args.db or default_path()
    try:
        db = open_reader(path)
        try:
            db.execute("BEGIN")  # one snapshot for the rows and the gaps
            rows = query(db, args.by, start, end, args.top)
            holes = gaps(db, start, end)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise describe(exc, path) from None
        finally:
            db.close()
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(rows, sys.stdout, indent=None)
        sys.stdout.write("\n")
    else:
        print_table(rows, holes, args.by, Scale(units=args.units))
    return 0
