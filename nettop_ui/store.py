"""The history store: a SQLite database of per-minute, per-hour and per-day rollups.

Every delta is written into its minute, its hour and its (UTC) day at once, so a coarser
row is always the exact sum (and peak) of its finer rows. Rolling up is then only
deleting: minutes older than `--keep-minutes`, hours older than `--keep-hours`; the
`meta` keys `minutes_from` and `hours_from` say from when on the finer rows are kept.
`pieces` cuts a time range into the fewest rows that cover it, so a 30-day query reads
about 30 days' rows, not 43,200 minutes'.

One writer (`Store`, used by `nettop-ui record`, holding an flock on `<db>.writer`) and any
number of readers (`open_reader`, used by `nettop-ui history`). WAL mode, so a reader never
blocks the writer and sees only whole commits. The schema is in docs/history.md.

Every SQLite problem a user can meet (not a database, locked, read-only, full) becomes a
`StoreError` carrying one line; `StoreError.retry` says whether writing may work later (a
full disk, a lock someone else holds), so the recorder keeps its data and tries again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field

SCHEMA_VERSION = 2
MINUTE = 60
HOUR = 3600
DAY = 86400
SPANS = (MINUTE, HOUR, DAY)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    last_seen REAL NOT NULL,
    backend TEXT NOT NULL,
    sent_bytes INTEGER NOT NULL DEFAULT 0,
    recv_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS procs (
    id INTEGER PRIMARY KEY,
    ident TEXT NOT NULL UNIQUE,
    pid INTEGER,
    start_time REAL,
    name TEXT NOT NULL,
    cmdline TEXT,
    user TEXT,
    service TEXT,
    cgroup TEXT
);
CREATE TABLE IF NOT EXISTS proc_rollups (
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    proc INTEGER NOT NULL,
    sent_bytes INTEGER,
    recv_bytes INTEGER,
    cpu_s REAL,
    disk_bytes INTEGER,
    peak_rss_bytes INTEGER,
    peak_sent_bps REAL,
    peak_recv_bps REAL,
    disk_read_bytes INTEGER,
    disk_write_bytes INTEGER,
    seen_from INTEGER,
    seen_to INTEGER,
    PRIMARY KEY (span, start, proc)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS host_rollups (
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    host TEXT NOT NULL,
    name TEXT,
    sent_bytes INTEGER,
    recv_bytes INTEGER,
    peak_sent_bps REAL,
    peak_recv_bps REAL,
    seen_from INTEGER,
    seen_to INTEGER,
    PRIMARY KEY (span, start, host)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS proc_host_rollups (
    span INTEGER NOT NULL,
    start INTEGER NOT NULL,
    proc INTEGER NOT NULL,
    host TEXT NOT NULL,
    sent_bytes INTEGER,
    recv_bytes INTEGER,
    PRIMARY KEY (span, start, proc, host)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gaps (start REAL NOT NULL, "end" REAL NOT NULL, reason TEXT NOT NULL);
"""

ROLLUP_TABLES = ("proc_rollups", "host_rollups", "proc_host_rollups")
OUR_NAMES = {
    "meta", "runs", "procs", *ROLLUP_TABLES, "gaps",
    "sqlite_autoindex_meta_1", "sqlite_autoindex_procs_1",
}  # fmt: skip

# Adding a delta into a row: sums and maxima where NULL (unknown) stays unknown only while
# every part is unknown.
_ADD = "{c} = coalesce({c} + excluded.{c}, {c}, excluded.{c})"
_MAX = "{c} = max(coalesce({c}, excluded.{c}), coalesce(excluded.{c}, {c}))"
_MIN = "{c} = min(coalesce({c}, excluded.{c}), coalesce(excluded.{c}, {c}))"

PROC_SUMS = (
    "sent_bytes",
    "recv_bytes",
    "cpu_s",
    "disk_bytes",
    "disk_read_bytes",
    "disk_write_bytes",
)
# seen_to (a peak) and seen_from (a low): the end of the last minute and the start of the
# first minute with data, so that an hour or a day still says when its process was active.
PROC_PEAKS = ("peak_rss_bytes", "peak_sent_bps", "peak_recv_bps", "seen_to")
HOST_SUMS = ("sent_bytes", "recv_bytes")
HOST_PEAKS = ("peak_sent_bps", "peak_recv_bps", "seen_to")
LOWS = ("seen_from",)


PROC_KEYS = ("span", "start", "proc")
HOST_KEYS = ("span", "start", "host", "name")
PROC_HOST_KEYS = ("span", "start", "proc", "host")

# Per table: its keys (span, start, then what a row is of), sums and peaks.
TABLES: dict[str, tuple[tuple[str, ...], ...]] = {
    "proc_rollups": (PROC_KEYS, PROC_SUMS, PROC_PEAKS, LOWS),
    "host_rollups": (HOST_KEYS, HOST_SUMS, HOST_PEAKS, LOWS),
    "proc_host_rollups": (PROC_HOST_KEYS, HOST_SUMS, (), ()),
}


def _upsert(table: str, source: str = "") -> str:
    """INSERT of one row (or of `source`, a SELECT) that adds into an existing row."""
    keys, sums, peaks, lows = TABLES[table]
    cols = (*keys, *sums, *peaks, *lows)
    sets = [_ADD.format(c=c) for c in sums] + [_MAX.format(c=c) for c in peaks]
    sets += [_MIN.format(c=c) for c in lows]
    source = source or f"VALUES ({', '.join('?' * len(cols))})"
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) {source} "
        f"ON CONFLICT DO UPDATE SET {', '.join(sets)}"
    )


def _roll_up(table: str, fine: int, coarse: int) -> str:
    """The upsert adding all of `table`'s `fine` rows into their `coarse` rows (used
    once, to bring a version 1 database's minutes into hours and its hours into days)."""
    keys, sums, peaks, lows = TABLES[table]
    what = [k for k in keys[2:] if k != "name"]
    others = "".join(", max(name)" for k in keys if k == "name")
    select = (
        f"SELECT {coarse}, start / {coarse} * {coarse} AS c, {', '.join(what)}{others}, "
        + ", ".join(
            [f"sum({c})" for c in sums] + [f"max({c})" for c in peaks] + [f"min({c})" for c in lows]
        )
        + f" FROM {table} WHERE span = {fine} GROUP BY c, {', '.join(what)}"
    )
    return _upsert(table, select)


UPSERT = {table: _upsert(table) for table in TABLES}


def pieces(
    start: float, end: float, minutes_from: int, hours_from: int
) -> list[tuple[int, int, int]]:
    """[start, end) as the fewest rows: (span, lo, hi), the rows of `span` whose start is
    in [lo, hi). A minute, hour or day counts when it starts inside the range; where the
    minutes (or hours) are no longer kept, the hour (day) that starts inside it counts
    whole. Whole days and hours inside the range are read as such: they hold exactly
    the sums and peaks of their minutes."""
    out: list[tuple[int, int, int]] = []
    finer_from = {DAY: hours_from, HOUR: minutes_from}

    def cover(lo: float, hi: float, span: int) -> None:
        if lo >= hi:
            return
        if span == MINUTE:
            out.append((MINUTE, max(math.ceil(lo), minutes_from), math.ceil(hi)))
            return
        finer = HOUR if span == DAY else MINUTE
        first, last = math.ceil(lo / span) * span, math.floor(hi / span) * span
        if first > last:  # inside one span, not at its start
            cover(lo, hi, finer)
            return
        cover(lo, first, finer)  # before the first whole span: its span started earlier
        out.append((span, max(first, hours_from if span == HOUR else first), last))
        if last < hi and last < finer_from[span]:  # its finer rows are gone: it counts whole
            out.append((span, last, last + 1))
        else:
            cover(last, hi, finer)

    cover(start, end, DAY)
    return [(span, lo, hi) for span, lo, hi in out if lo < hi]


def finest(minutes_from: int, hours_from: int) -> str:
    """SQL: the rows that partition time, each moment in exactly one: minutes where they
    are kept, hours before that, days before the hours."""
    return (
        f"((span = {MINUTE} AND start >= {minutes_from})"
        f" OR (span = {HOUR} AND start >= {hours_from} AND start < {minutes_from})"
        f" OR (span = {DAY} AND start < {hours_from}))"
    )


def slot_of(t: float, minutes_from: int, hours_from: int) -> tuple[int, int]:
    """(start, span) of the finest kept row holding time `t`."""
    span = MINUTE if t >= minutes_from else HOUR if t >= hours_from else DAY
    return int(t // span * span), span


def marks(db: sqlite3.Connection) -> tuple[int, int]:
    """(minutes_from, hours_from): minutes are kept from the first on, hours from the second."""
    got = dict(
        db.execute("SELECT key, value FROM meta WHERE key IN ('minutes_from', 'hours_from')")
    )
    return int(got.get("minutes_from", 0)), int(got.get("hours_from", 0))


def _set_marks(db: sqlite3.Connection, minutes_from: int, hours_from: int) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
        (("minutes_from", str(minutes_from)), ("hours_from", str(hours_from))),
    )


def _migrate_from_1(db: sqlite3.Connection) -> None:
    """Schema 1 (minutes, then hours rolled from them; disk as one total) to 2: the
    per-direction disk columns (unknown in old rows) and the hours and days of every
    minute and hour. Inside the caller's transaction."""
    for column in ("disk_read_bytes", "disk_write_bytes", "seen_from", "seen_to"):
        db.execute(f"ALTER TABLE proc_rollups ADD COLUMN {column} INTEGER")
    for column in ("seen_from", "seen_to"):
        db.execute(f"ALTER TABLE host_rollups ADD COLUMN {column} INTEGER")
    for table in ("proc_rollups", "host_rollups"):
        db.execute(f"UPDATE {table} SET seen_from = start, seen_to = start + span")
    # Version 1 kept minutes only after its newest hour: from there on minutes are kept.
    (rolled,) = db.execute(
        f"SELECT max(start) + {HOUR} FROM (SELECT start FROM proc_rollups WHERE span = {HOUR}"
        f" UNION ALL SELECT start FROM host_rollups WHERE span = {HOUR})"
    ).fetchone()
    for table in ("proc_rollups", "host_rollups"):
        db.execute(_roll_up(table, MINUTE, HOUR))
        db.execute(_roll_up(table, HOUR, DAY))
    _set_marks(db, rolled or 0, 0)


class StoreError(Exception):
    """One line about the database; `retry`: writing may work later (full, locked)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


def describe(exc: sqlite3.Error | OSError, path: str) -> StoreError:
    """The one line for a SQLite (or file) error on `path`."""
    if isinstance(exc, OSError):
        if exc.errno == errno.EROFS:
            return StoreError(f"{path} is read-only (a read-only file system)")
        return StoreError(f"cannot open {path}: {exc.strerror or exc}")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary == sqlite3.SQLITE_FULL:
        return StoreError(f"disk full writing {path}", retry=True)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(f"{path} is locked by another program", retry=True)
    if primary == sqlite3.SQLITE_READONLY:
        return StoreError(f"{path} is read-only")
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return StoreError(f"{path} is not a nettop-ui history database, or it is corrupt")
    if primary == sqlite3.SQLITE_CANTOPEN:
        return StoreError(f"cannot open {path}")
    return StoreError(f"{path}: {exc}")


def default_path() -> str:
    """/var/lib/nettop-ui/history.db as root; else the XDG state directory's."""
    if os.geteuid() == 0:
        return "/var/lib/nettop-ui/history.db"
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "nettop-ui", "history.db")


def _connect(path: str, uri: str, timeout_s: float) -> sqlite3.Connection:
    # The monitor calls its sinks on worker threads, one at a time.
    db = sqlite3.connect(
        uri, uri=True, timeout=timeout_s, isolation_level=None, check_same_thread=False
    )
    try:
        db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        db.close()
        raise describe(exc, path) from None
    if version not in (0, 1, SCHEMA_VERSION):  # 1: the writer upgrades it
        db.close()
        raise StoreError(
            f"{path} has history schema {version}; this nettop-ui reads {SCHEMA_VERSION}"
        )
    return db


def open_reader(path: str, timeout_s: float = 5.0) -> sqlite3.Connection:
    """A read-only connection; its queries never take the write lock."""
    if not os.path.exists(path):
        raise StoreError(f"no history database at {path} (start `nettop-ui record`, or --db PATH)")
    # WAL readers need to write the -shm file; on a read-only file system nobody can
    # write the database either, so it is read as immutable.
    frozen = os.statvfs(path).f_flag & os.ST_RDONLY
    db = _connect(path, _uri(path, "?mode=ro" + ("&immutable=1" if frozen else "")), timeout_s)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        db.close()
        raise describe(exc, path) from None
    if version != SCHEMA_VERSION:
        db.close()
        if version == 1:
            raise StoreError(
                f"{path} is from an older nettop-ui: `nettop-ui record --db {path}` upgrades it"
            )
        raise StoreError(f"{path} is not a nettop-ui history database")
    return db


def _uri(path: str, query: str = "") -> str:
    """A file: URI for `path` (quoted: a ? or # in a file name is not a query)."""
    return f"file:{urllib.parse.quote(os.path.abspath(path))}{query}"


@dataclass(slots=True)
class ProcRow:
    """One process's deltas within one minute (None: unknown)."""

    sent_bytes: int | None = None
    recv_bytes: int | None = None
    cpu_s: float | None = None
    disk_bytes: int | None = None
    peak_rss_bytes: int | None = None
    peak_sent_bps: float | None = None
    peak_recv_bps: float | None = None
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None


@dataclass(slots=True)
class HostRow:
    """One remote host's deltas within one minute."""

    name: str | None = None
    sent_bytes: int = 0
    recv_bytes: int = 0
    peak_sent_bps: float = 0.0
    peak_recv_bps: float = 0.0


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """A process identity and what names it."""

    pid: int | None  # None: the processes of one program, user and service that moved no bytes
    start_time: float | None
    name: str
    cmdline: str | None
    user: str | None
    service: str | None
    cgroup: str | None

    @property
    def ident(self) -> str:
        if self.pid is None:
            return "*" + json.dumps([self.name, self.user, self.service])
        return f"{self.pid}:{self.start_time!r}"


@dataclass
class Batch:
    """Everything one commit writes."""

    procs: dict[tuple[int, ProcInfo], ProcRow]
    hosts: dict[tuple[int, str], HostRow]
    gaps: list[tuple[float, float, str]]
    sent_bytes: int = 0
    recv_bytes: int = 0
    # (minute, process, remote address) -> [sent, received]: a process's hosts
    proc_hosts: dict[tuple[int, ProcInfo, str], list[int]] = field(default_factory=dict)


class Store:
    """The one writer of a history database."""

    def __init__(self, path: str, backend: str, now: float, timeout_s: float = 5.0) -> None:
        self.path = path
        self._lock_fd = self._take_writer_lock(path)
        try:
            self.db = self._open(path, timeout_s)
            self.run_id, self.last_stop = self._start_run(backend, now)
        except BaseException:
            os.close(self._lock_fd)
            raise
        # Per process identity: its row id and the names last written there.
        self._proc_ids: dict[str, tuple[int, ProcInfo]] = {}

    @staticmethod
    def _take_writer_lock(path: str) -> int:
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
            fd = os.open(f"{path}.writer", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise describe(exc, path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(
                f"{path} is already being recorded by another nettop-ui record"
            ) from None
        return fd

    def _open(self, path: str, timeout_s: float) -> sqlite3.Connection:
        try:  # made here, so that the process list in it is never world-readable
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        except OSError as exc:
            if not os.path.exists(path):
                raise describe(exc, path) from None
        db = _connect(path, _uri(path), timeout_s)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] == 0 and (
                {name for (name,) in db.execute("SELECT name FROM sqlite_master")} - OUR_NAMES
            ):
                raise StoreError(f"{path} is not a nettop-ui history database")
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise StoreError(f"{path}: cannot use WAL mode here")
            db.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash loses at most the last commits
            db.execute("BEGIN IMMEDIATE")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if version == 1:
                _migrate_from_1(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.close()
            raise describe(exc, path) from None
        except StoreError:
            db.close()
            raise
        return db

    def _start_run(self, backend: str, now: float) -> tuple[int, float | None]:
        try:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            last = db.execute("SELECT max(last_seen) FROM runs").fetchone()[0]
            cur = db.execute(
                "INSERT INTO runs (started, last_seen, backend) VALUES (?, ?, ?)",
                (now, now, backend),
            )
            if last is not None and now > last:
                db.execute("INSERT INTO gaps VALUES (?, ?, ?)", (last, now, "recorder not running"))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise describe(exc, self.path) from None
        assert cur.lastrowid is not None
        return cur.lastrowid, last

    def _rollback(self) -> None:
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def write(self, batch: Batch, now: float, backend: str) -> None:
        """Add `batch` in one transaction; on a StoreError nothing of it was written."""
        new_ids: dict[str, tuple[int, ProcInfo]] = {}

        def proc_id(info: ProcInfo) -> int:
            known = new_ids.get(info.ident) or self._proc_ids.get(info.ident)
            if known is None or known[1] != info:  # new, or renamed (exec, prctl)
                known = new_ids[info.ident] = (self._proc_id(info), info)
            return known[0]

        try:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            procs = [
                (minute, proc_id(info), r.sent_bytes, r.recv_bytes, r.cpu_s, r.disk_bytes,
                 r.disk_read_bytes, r.disk_write_bytes, r.peak_rss_bytes, r.peak_sent_bps,
                 r.peak_recv_bps, minute + MINUTE, minute)
                for (minute, info), r in batch.procs.items()
            ]  # fmt: skip
            hosts = [
                (
                    minute,
                    host,
                    h.name,
                    h.sent_bytes,
                    h.recv_bytes,
                    h.peak_sent_bps,
                    h.peak_recv_bps,
                    minute + MINUTE,
                    minute,
                )
                for (minute, host), h in batch.hosts.items()
            ]
            proc_hosts = [
                (minute, proc_id(info), host, sent, recv)
                for (minute, info, host), (sent, recv) in batch.proc_hosts.items()
            ]
            for table, rows in (
                ("proc_rollups", procs),
                ("host_rollups", hosts),
                ("proc_host_rollups", proc_hosts),
            ):
                # Into the minute, its hour and its day at once (see the module's doc).
                db.executemany(
                    UPSERT[table],
                    [(span, row[0] // span * span, *row[1:]) for span in SPANS for row in rows],
                )
            db.executemany("INSERT INTO gaps VALUES (?, ?, ?)", batch.gaps)
            db.execute(
                "UPDATE runs SET last_seen = ?, backend = ?, sent_bytes = sent_bytes + ?,"
                " recv_bytes = recv_bytes + ? WHERE id = ?",
                (now, backend, batch.sent_bytes, batch.recv_bytes, self.run_id),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise describe(exc, self.path) from None
        self._proc_ids.update(new_ids)

    def _proc_id(self, info: ProcInfo) -> int:
        row = self.db.execute(
            "INSERT INTO procs (ident, pid, start_time, name, cmdline, user, service, cgroup)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ident) DO UPDATE SET"
            " name = excluded.name, cmdline = excluded.cmdline, user = excluded.user,"
            " service = excluded.service, cgroup = excluded.cgroup RETURNING id",
            (
                info.ident,
                info.pid,
                info.start_time,
                info.name,
                info.cmdline,
                info.user,
                info.service,
                info.cgroup,
            ),
        ).fetchone()
        return int(row[0])

    def maintain(self, now: float, keep_s: float, minutes_s: float, hours_s: float) -> None:
        """Drop minutes older than `minutes_s` and hours older than `hours_s` (their hours
        and days hold them already), and everything older than `keep_s`; forget processes
        no row refers to any more."""
        minutes_from, hours_from = marks(self.db)
        # Whole hours (days) only; never back: what was dropped is gone.
        minutes_from = max(minutes_from, int((now - minutes_s) // HOUR * HOUR))
        hours_from = max(hours_from, int((now - hours_s) // DAY * DAY))
        drop_before = now - keep_s
        try:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            _set_marks(db, minutes_from, hours_from)
            for table in ROLLUP_TABLES:
                for span, before in ((MINUTE, minutes_from), (HOUR, hours_from)):
                    db.execute(f"DELETE FROM {table} WHERE span = {span} AND start < ?", (before,))
                db.execute(f"DELETE FROM {table} WHERE start + span <= ?", (drop_before,))
            db.execute('DELETE FROM gaps WHERE "end" <= ?', (drop_before,))
            db.execute(
                "DELETE FROM runs WHERE last_seen <= ? AND id != ?", (drop_before, self.run_id)
            )
            db.execute("DELETE FROM procs WHERE id NOT IN (SELECT DISTINCT proc FROM proc_rollups)")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise describe(exc, self.path) from None
        self._proc_ids.clear()  # ids of dropped processes may be gone

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            os.close(self._lock_fd)
