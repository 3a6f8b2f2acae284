"""The JSON Lines stream: one meta line, then one sample line per tick.

The schema is documented in docs/json-schema.md; bump SCHEMA when a key changes
meaning or disappears (adding keys does not need a bump).
"""

from __future__ import annotations

import json
import os
import socket
import stat
from typing import IO, Any

from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.core import Backend, BackendFailure

SCHEMA = 1


def round_rate(value: float | None) -> float | None:
    """A rate (or percentage) to one decimal, as every record carries it."""
    return None if value is None else round(value, 1)


def meta_record(
    backend: type[Backend], interval_s: float, started: float, why: str = ""
) -> dict[str, Any]:
    return {
        "type": "meta",
        "schema": SCHEMA,
        "backend": backend.name,
        "backend_reason": why,
        "layer": backend.layer,
        "interval_s": interval_s,
        "host": socket.gethostname(),
        "started": started,
        "coverage": backend.coverage.as_dict(),
        "units": {"bytes": "bytes, cumulative since the monitor started", "bps": "bytes/s"},
    }


def process_record(p: ProcessState, with_connections: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "pid": p.pid,
        "ppid": p.ppid,
        "start_time": p.create_time,
        "name": p.name,
        "cmdline": p.cmdline,
        "user": p.user,
        "sent_bytes": p.sent_bytes,
        "recv_bytes": p.recv_bytes,
        "sent_bps": round_rate(p.sent_bps),
        "recv_bps": round_rate(p.recv_bps),
        "cpu_percent": p.cpu_percent,
        "cpu_user_s": p.cpu_user_s,
        "cpu_system_s": p.cpu_system_s,
        "rss_bytes": p.rss_bytes,
        "vms_bytes": p.vms_bytes,
        "read_bytes": p.read_bytes,
        "write_bytes": p.write_bytes,
        "read_bps": round_rate(p.read_bps),
        "write_bps": round_rate(p.write_bps),
        "threads": p.threads,
        "connection_count": p.connection_count,
        "exited": p.exited,
        "note": p.note,
    }
    if with_connections:
        record["connections"] = [
            {
                "protocol": c.protocol,
                "local": c.local,
                "remote": c.remote,
                "sent_bytes": c.sent_bytes,
                "recv_bytes": c.recv_bytes,
                "sent_bps": round_rate(c.sent_bps),
                "recv_bps": round_rate(c.recv_bps),
            }
            for c in p.connections.values()
        ]
    return record


def is_active(p: ProcessState) -> bool:
    """Worth a line by default: moved traffic, or has sockets when bytes are unknown."""
    if p.sent_bytes is None:
        return bool(p.connection_count)
    return p.had_traffic


def sample_record(
    snap: Snapshot, *, all_processes: bool = False, with_connections: bool = False
) -> dict[str, Any]:
    procs = snap.processes if all_processes else [p for p in snap.processes if is_active(p)]
    procs = sorted(procs, key=lambda p: (-(p.sent_bytes or 0) - (p.recv_bytes or 0), p.pid))
    record: dict[str, Any] = {
        "type": "sample",
        "ts": snap.ts,
        "interval_s": round(snap.interval_s, 4),
        "processes": [process_record(p, with_connections) for p in procs],
        "unattributed": None,
    }
    if snap.unattributed is not None:
        u = snap.unattributed
        record["unattributed"] = {
            "sent_bytes": u.sent_bytes,
            "recv_bytes": u.recv_bytes,
            "sent_bps": round_rate(u.sent_bps),
            "recv_bps": round_rate(u.recv_bps),
        }
    if snap.folded is not None:
        f = snap.folded
        record["exited_folded"] = {
            "processes": f.processes,
            "sent_bytes": f.sent_bytes,
            "recv_bytes": f.recv_bytes,
        }
    if snap.system is not None:
        s = snap.system
        record["system"] = {
            "cpu_percent": s.cpu_percent,
            "cpu_per_core": s.cpu_per_core,
            "mem_total": s.mem_total,
            "mem_used": s.mem_used,
            "swap_total": s.swap_total,
            "swap_used": s.swap_used,
            "disk_read_bps": round_rate(s.disk_read_bps),
            "disk_write_bps": round_rate(s.disk_write_bps),
        }
        record["interfaces"] = {
            nic: {
                "sent_bytes": i.sent_bytes,
                "recv_bytes": i.recv_bytes,
                "sent_bps": round_rate(i.sent_bps),
                "recv_bps": round_rate(i.recv_bps),
            }
            for nic, i in s.interfaces.items()
        }
    return record


def failure_record(failure: BackendFailure) -> dict[str, Any]:
    return {
        "type": "event",
        "ts": failure.ts,
        "event": "backend_failed",
        "backend": failure.backend,
        "message": failure.message,
        "fallback": failure.fallback,
    }


def open_output(path: str) -> IO[str]:
    """Open a recording for writing, safely in shared directories.

    Refuses to follow a symlink at `path` (one planted in /tmp, say), creates the
    file with the user's umask, and never leaves it world-writable.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if os.path.islink(path):
            raise OSError(exc.errno, f"refusing to write through the symlink {path}") from exc
        raise
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) and mode & stat.S_IWOTH:  # never chmod a device (/dev/null)
        os.fchmod(fd, stat.S_IMODE(mode) & ~stat.S_IWOTH)
    return os.fdopen(fd, "w", encoding="utf-8")


class JsonlWriter:
    """Writes records as JSON Lines, one flush per line."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, record: dict[str, Any]) -> None:
        # ensure_ascii keeps every line plain ASCII: untrusted names cannot carry raw
        # terminal escapes to whoever cats the file.
        self.out.write(json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n")
        self.out.flush()
