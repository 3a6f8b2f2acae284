"""The JSON Lines stream: one meta line, then one sample line per tick.

The schema is documented in docs/json-schema.md; bump SCHEMA when a key changes
meaning or disappears (adding keys does not need a bump), and say what changed in its
changelog. Readers (summary, replay) accept every schema in READABLE.
"""

from __future__ import annotations

import errno
import json
import operator
import os
import socket
import stat
from collections.abc import Callable, Iterable
from typing import IO, Any

from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.core import Backend, BackendFailure
from nettop_ui.remotes import FoldedHosts, RemoteHostState
from nettop_ui.schema import FIELD, FIELDS, STREAM_FIELDS, TREE_FIELDS, Field
from nettop_ui.tree import Member, TreeTotals

SCHEMA = 2
READABLE = (1, 2)  # what summary and replay read: schema 2 only adds keys to 1


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


def _recorder(fields: tuple[Field, ...]) -> Callable[[ProcessState], dict[str, Any]]:
    """A function making the record of a process: `fields` under their keys, in order."""
    keys = tuple(f.key for f in fields)
    values = operator.attrgetter(*(f.name for f in fields))
    rounded = tuple(f.key for f in fields if f.rounded)

    def record(p: ProcessState) -> dict[str, Any]:
        out = dict(zip(keys, values(p), strict=True))
        for key in rounded:
            out[key] = round_rate(out[key])
        return out

    return record


stream_fields = _recorder(STREAM_FIELDS)
recorded_fields = _recorder(FIELDS)  # a `run`/`attach` recording's process, less child_count


def process_record(p: ProcessState, with_connections: bool) -> dict[str, Any]:
    """One process in the live stream (schema.STREAM_FIELDS), with its connections."""
    record = stream_fields(p)
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
                "remote_name": c.remote_name,
                "remote_scope": c.remote_scope,
            }
            for c in p.connections.values()
        ]
    return record


def remote_record(h: RemoteHostState) -> dict[str, Any]:
    """One remote host of a sample's `remotes`."""
    return {
        "address": h.address,
        "name": h.name,
        "name_source": h.name_source,
        "scope": h.scope,
        "sent_bytes": h.sent_bytes,
        "recv_bytes": h.recv_bytes,
        "sent_bps": round_rate(h.sent_bps),
        "recv_bps": round_rate(h.recv_bps),
        "connection_count": h.connection_count,
        "protocols": list(h.protocols),
        "ports": list(h.ports),
        "pids": sorted(h.pids),
    }


def remotes_fields(
    hosts: Iterable[RemoteHostState] | None, folded: FoldedHosts | None
) -> dict[str, Any]:
    """A sample's `remotes` (most bytes first; None without per-connection data) and,
    once hosts were folded away, `remotes_folded`."""
    fields: dict[str, Any] = {"remotes": None}
    if hosts is not None:
        ranked = sorted(hosts, key=lambda h: (-h.sent_bytes - h.recv_bytes, h.address))
        fields["remotes"] = [remote_record(h) for h in ranked]
    if folded is not None and folded.hosts:
        fields["remotes_folded"] = {
            "hosts": folded.hosts,
            "sent_bytes": folded.sent_bytes,
            "recv_bytes": folded.recv_bytes,
        }
    return fields


def cpu_seconds(p: ProcessState) -> float | None:
    """CPU time since the process started (user + system); None when unknown."""
    if p.cpu_user_s is None or p.cpu_system_s is None:
        return None
    return p.cpu_user_s + p.cpu_system_s


def ebpf_record(p: ProcessState) -> dict[str, Any] | None:
    """`--profile`: the process's `ebpf` object; None when the kernel counted nothing for it."""
    return None if p.ebpf is None else p.ebpf.as_dict(cpu_seconds(p))


def member_record(member: Member, profiling: bool = False) -> dict[str, Any]:
    """One member of a `run`/`attach` recording's tree: every field, its children, and
    with `profiling` its `ebpf` object."""
    record = recorded_fields(member.state)
    record["child_count"] = member.child_count
    if profiling:
        record["ebpf"] = ebpf_record(member.state)
    return record


def tree_record(totals: TreeTotals) -> dict[str, Any]:
    """A recording's `tree` object: member counts, then the sums (floats to one decimal)."""
    record: dict[str, Any] = {"processes": totals.processes, "exited": totals.exited}
    for f in TREE_FIELDS:
        value = totals.sums[f.name]
        record[f.key] = round_rate(value) if f.type is float else value
    record["unknown_members"] = {FIELD[name].key: n for name, n in totals.unknown_members.items()}
    return record


def is_active(p: ProcessState) -> bool:
    """Worth a line by default: moved traffic, or has sockets when bytes are unknown."""
    if p.sent_bytes is None:
        return bool(p.connection_count)
    return p.had_traffic


def sample_record(
    snap: Snapshot,
    *,
    all_processes: bool = False,
    with_connections: bool = False,
    keep: Callable[[ProcessState], bool] | None = None,
) -> dict[str, Any]:
    """One `sample` line: the processes with traffic (`all_processes`: every one), those
    `keep` says yes to (`--filter`), with their connections if asked."""
    procs = snap.processes if all_processes else [p for p in snap.processes if is_active(p)]
    if keep is not None:
        procs = [p for p in procs if keep(p)]
    procs = sorted(procs, key=lambda p: (-(p.sent_bytes or 0) - (p.recv_bytes or 0), p.pid))
    record: dict[str, Any] = {
        "type": "sample",
        "ts": snap.ts,
        "interval_s": round(snap.interval_s, 4),
        "processes": [process_record(p, with_connections) for p in procs],
        "unattributed": None,
    }
    if snap.profiles is not None:
        for p, out in zip(procs, record["processes"], strict=True):
            out["ebpf"] = ebpf_record(p)
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
    record.update(remotes_fields(snap.remotes, snap.remotes_folded))
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


DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40  # symlinks followed in one path, as the kernel allows


def open_output(path: str) -> IO[str]:
    """Open a recording for writing, safely in shared directories.

    The path is walked one directory at a time (`openat` with `O_NOFOLLOW`), so a
    symlinked directory is followed only when it belongs to the user or to root,
    never one another user planted in a shared directory; a symlink as the file
    itself is refused. An existing file owned by another user, or with a second name
    (a hard link), is refused before it is truncated. A new file gets the user's
    umask, and no file stays world-writable.
    """
    parent, name = _open_parent(path)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                     dir_fd=parent)  # fmt: skip
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(exc.errno, f"refusing to write through the symlink {path}") from exc
        raise
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):  # never touch a device (/dev/null) beyond writing to it
        why = "another user owns it" if st.st_uid != os.geteuid() else None
        if st.st_nlink > 1:
            why = "it is a hard link to another file"
        if why:
            os.close(fd)
            raise OSError(errno.EPERM, f"refusing to write into {path}: {why}")
        os.ftruncate(fd, 0)
        if st.st_mode & stat.S_IWOTH:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~stat.S_IWOTH)
    return os.fdopen(fd, "w", encoding="utf-8")


def _open_parent(path: str) -> tuple[int, str]:
    """An fd of the directory that holds `path`'s last component, and that name."""
    *dirs, name = path.split("/")
    pending = _parts(dirs)  # a stack: the next component on top
    fd = os.open("/" if path.startswith("/") else ".", DIRECTORY)
    links = 0
    try:
        while pending:
            part = pending.pop()
            try:
                below = os.open(part, DIRECTORY, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                target = _trusted_link(part, fd, exc)
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many symlinks") from None
                pending.extend(_parts(target.split("/")))
                if not target.startswith("/"):
                    continue  # relative: on from the same directory
                below = os.open("/", DIRECTORY)
            os.close(fd)
            fd = below
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def _parts(names: list[str]) -> list[str]:
    """Path components as a stack (first on top), without empty ones and `.`."""
    return [n for n in reversed(names) if n not in ("", ".")]


def _trusted_link(name: str, dir_fd: int, failure: OSError) -> str:
    """The target of the symlink `name` if the user or root owns it; else OSError
    (`failure` itself when `name` is no symlink)."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        raise failure
    if st.st_uid not in (os.geteuid(), 0):
        raise OSError(errno.EPERM, f"refusing to go through {name}, a symlink of another user")
    return os.readlink(name, dir_fd=dir_fd)


def write_problem(exc: OSError) -> str:
    """Why a record could not be written, in a few words."""
    if exc.errno == errno.ENOSPC:
        return "disk full"
    if exc.errno == errno.EPIPE:
        return "its reader has gone"
    return exc.strerror or str(exc)


class JsonlWriter:
    """Writes records as JSON Lines, each line whole or not at all.

    A line goes straight to the file descriptor, so a failed write (a full disk, a
    closed pipe) leaves nothing in a buffer to spill later; in a regular file, the
    part of a line that did fit is cut off again, so the file ends at its last whole
    line. The OSError is raised to the caller.
    """

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        try:
            self._fd: int | None = out.fileno()
        except (OSError, ValueError):  # a StringIO
            self._fd = None
        self._regular = self._fd is not None and stat.S_ISREG(os.fstat(self._fd).st_mode)

    def write(self, record: dict[str, Any]) -> None:
        # ensure_ascii keeps every line plain ASCII: untrusted names cannot carry raw
        # terminal escapes to whoever cats the file.
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
        if self._fd is None:
            self.out.write(line)
            self.out.flush()
            return
        data = line.encode("ascii")
        self.out.flush()  # anything written to `out` before goes first
        start = os.lseek(self._fd, 0, os.SEEK_CUR) if self._regular else 0
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            if done and self._regular:
                os.ftruncate(self._fd, start)
                os.lseek(self._fd, start, os.SEEK_SET)
            raise
