"""The compiled eBPF program, cached across runs, and loaded from the cache without bcc.

On a cache miss backends/bpfload.py's helper compiles with bcc and, for a program
attached to tracepoints only, sends back what it loaded: each tracepoint program's
instructions (with the map file descriptors in them replaced by map indexes), type,
license and kernel version, and each map's type, sizes, flags and name. `store` writes
that as JSON. On a hit `load` makes the maps (BPF_MAP_CREATE), puts their fds into the
instructions, loads each program (BPF_PROG_LOAD: the kernel's verifier checks it
again), and attaches it to its tracepoint (perf_event_open and PERF_EVENT_IOC_SET_BPF),
in this process, with no helper, bcc or LLVM: milliseconds instead of a second.

Safe against a kernel change: the file's name is a hash of the program's source,
its cflags, the kernel's release (`uname -r`) and its build string
(/proc/sys/kernel/version), and an entry is used only if the format of every
tracepoint it attaches to (which fixed the offsets of the tracepoint's fields when
bcc compiled) is unchanged. Safe against other users: what is cached gets loaded into
the kernel, so the directory (/var/cache/nettop-ui/bpf for root, else
$XDG_CACHE_HOME/nettop-ui/bpf) and the file must belong to the user running
nettop-ui and be writable by no one else, or the entry is ignored (and compiled
afresh). NETTOP_UI_BPF_CACHE names another directory; set empty, it turns caching off.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import platform
import stat
import struct
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from backends import bpfmap

VERSION = 1  # of the entry's layout
TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
PROG_LOAD = 5
LD_IMM64 = 0x18
PSEUDO_MAP_FD = 1
INSN = struct.Struct("=BBhi")  # code, dst/src registers, offset, immediate
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF = 0x2400, 0x40042408
PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319,
                   "s390x": 331, "i686": 336, "armv7l": 364}  # fmt: skip


class _ProgLoadAttr(ctypes.Structure):
    """bpf_attr for BPF_PROG_LOAD."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
    ]


def directory() -> Path | None:
    """Where entries live, or None when caching is off."""
    chosen = os.environ.get("NETTOP_UI_BPF_CACHE")
    if chosen is not None:
        return Path(chosen) if chosen else None
    if os.geteuid() == 0:
        return Path("/var/cache/nettop-ui/bpf")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nettop-ui" / "bpf" if os.path.isabs(base) else None  # no home: off


def key(source: bytes, cflags: Sequence[str]) -> str:
    """The entry's name: the program and the exact kernel it was compiled for."""
    return _kernel_key(hashlib.sha256(source).hexdigest(), *cflags)


def _kernel_key(*parts: str) -> str:
    """A name for `parts` on this exact kernel: its release and build string."""
    kernel = Path("/proc/sys/kernel/version").read_text()
    named = [str(VERSION), *parts, platform.release(), kernel]
    return hashlib.sha256("\0".join(named).encode()).hexdigest()


def kernel_facts(what: str, read: Callable[[], dict[str, int] | None]) -> dict[str, int] | None:
    """`read()`, kept in the cache under `what` for this exact kernel: for what only a
    kernel change changes (struct offsets from its BTF, which take 0.2 s of CPU to
    parse). A None from `read` is not kept; an entry not ours, or unreadable, is read
    afresh."""
    try:
        name = "facts-" + _kernel_key("facts", what)
    except OSError:
        return read()
    where = directory()
    if where is not None:
        path = where / f"{name}.json"
        with contextlib.suppress(OSError, ValueError):
            if _owned(where) and _owned(path):
                kept = json.loads(path.read_text())
                if isinstance(kept, dict) and kept and all(type(v) is int for v in kept.values()):
                    return kept
    facts = read()
    if facts is not None:
        store(name, facts)
    return facts


def _owned(path: Path) -> bool:
    """`path` belongs to us and no one else may write it."""
    st = path.lstat()
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _tracefs() -> Path | None:
    return next((d for d in TRACEFS_DIRS if (d / "events").is_dir()), None)


def format_hash(tracepoint: str) -> str | None:
    """sha256 of a tracepoint's format file ("sock:sock_send_length"), None if absent."""
    tracefs = _tracefs()
    if tracefs is None:
        return None
    with contextlib.suppress(OSError):
        fmt = (tracefs / "events" / tracepoint.replace(":", "/") / "format").read_bytes()
        return hashlib.sha256(fmt).hexdigest()
    return None


def store(name: str, entry: Mapping[str, Any]) -> None:
    """Write an entry (atomically, mode 0600); a cache that cannot be written is skipped."""
    where = directory()
    if where is None:
        return
    with contextlib.suppress(OSError):
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _owned(where):
            return
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(entry, f)
        os.replace(tmp, where / f"{name}.json")


def lookup(name: str) -> dict[str, Any] | None:
    """The entry, if there is a usable one."""
    where = directory()
    if where is None:
        return None
    path = where / f"{name}.json"
    try:
        if not (_owned(where) and _owned(path)):
            return None
        entry: dict[str, Any] = json.loads(path.read_text())
        formats = [(p["tracepoint"], p["format"]) for p in entry["progs"]]
    except (OSError, ValueError, KeyError, TypeError):  # unreadable, or not an entry
        return None
    if entry.get("version") != VERSION or any(format_hash(tp) != h for tp, h in formats):
        return None
    return entry


# -- the helper's half: what to cache ------------------------------------------------------


def entry_of(progs: Sequence[tuple[str, int, bytes, bytes, int]]) -> dict[str, Any]:
    """An entry for loaded programs: (tracepoint, type, instructions, license, kernel version).

    The maps are those the instructions refer to, described by the kernel.
    """
    map_fds: list[int] = []
    out = []
    for tracepoint, prog_type, insns, license_, kern_version in progs:
        code = bytearray(insns)
        relocs = []
        for i in range(0, len(code), INSN.size):
            op, regs, off, imm = INSN.unpack_from(code, i)
            if op == LD_IMM64 and regs >> 4 == PSEUDO_MAP_FD:
                if imm not in map_fds:
                    map_fds.append(imm)
                relocs.append([i // INSN.size, map_fds.index(imm)])
                INSN.pack_into(code, i, op, regs, off, 0)
        out.append({
            "tracepoint": tracepoint,
            "format": format_hash(tracepoint),
            "type": prog_type,
            "insns": code.hex(),
            "license": license_.decode(),
            "kern_version": kern_version,
            "relocs": relocs,
        })  # fmt: skip
    maps = []
    for fd in map_fds:
        info = bpfmap.map_info(fd)
        maps.append({
            "type": info.type,
            "key_size": info.key_size,
            "value_size": info.value_size,
            "max_entries": info.max_entries,
            "map_flags": info.map_flags,
            "name": info.name.decode(),
        })  # fmt: skip
    return {"version": VERSION, "maps": maps, "progs": out}


# -- loading from an entry -----------------------------------------------------------------


def load(entry: dict[str, Any], names: Sequence[str]) -> tuple[dict[str, bpfmap.BpfMap], list[int]]:
    """Make the entry's maps, load and attach its programs: (`names` -> map, perf event fds).

    OSError (and no fd left open) when the kernel refuses any of it.
    """
    opened: list[int] = []
    links: list[int] = []
    try:
        maps = []
        for m in entry["maps"]:
            info = bpfmap.MapInfo(
                m["type"], 0, m["key_size"], m["value_size"], m["max_entries"], m["map_flags"],
                m["name"].encode(),
            )  # fmt: skip
            opened.append(bpfmap.create_map(info))
            maps.append((m, opened[-1]))
        for p in entry["progs"]:
            prog = _load_prog(p, [fd for _, fd in maps])
            opened.append(prog)
            links.append(_attach_tracepoint(p["tracepoint"], prog))
            opened.append(links[-1])
        by_name = {m["name"]: (m, fd) for m, fd in maps}
        wanted = {}
        for n in names:
            m, fd = by_name[n[:15]]
            wanted[n] = bpfmap.BpfMap(os.dup(fd), m["key_size"], m["value_size"], m["max_entries"])
    except (OSError, KeyError, TypeError, ValueError, IndexError, struct.error):
        for fd in opened:
            os.close(fd)
        raise OSError("the cached eBPF program could not be loaded") from None
    for fd in opened:  # the maps and programs stay alive through the perf events
        if fd not in links:
            os.close(fd)
    return wanted, links


def _load_prog(p: dict[str, Any], map_fds: list[int]) -> int:
    code = bytearray.fromhex(p["insns"])
    for index, which in p["relocs"]:
        op, regs, off, _ = INSN.unpack_from(code, index * INSN.size)
        INSN.pack_into(code, index * INSN.size, op, regs, off, map_fds[which])
    insns = ctypes.create_string_buffer(bytes(code), len(code))
    license_ = ctypes.create_string_buffer(p["license"].encode())
    name = ("tp_" + p["tracepoint"].split(":")[-1])[:15].encode()
    attr = _ProgLoadAttr(
        p["type"], len(code) // INSN.size, ctypes.addressof(insns), ctypes.addressof(license_),
        kern_version=p["kern_version"], prog_name=name,
    )  # fmt: skip
    return bpfmap.bpf(PROG_LOAD, attr)


def _attach_tracepoint(tracepoint: str, prog: int) -> int:
    """A perf event on the tracepoint with `prog` attached and enabled; its fd."""
    tracefs = _tracefs()
    if tracefs is None:
        raise OSError("tracefs is not mounted")
    tp_id = int((tracefs / "events" / tracepoint.replace(":", "/") / "id").read_text())
    attr = bytearray(128)  # struct perf_event_attr (PERF_ATTR_SIZE_VER7 and under)
    struct.pack_into("=IIQQ", attr, 0, PERF_TYPE_TRACEPOINT, len(attr), tp_id, 1)
    struct.pack_into("=I", attr, 48, 1)  # wakeup_events, as bcc sets it
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    number = PERF_EVENT_OPEN.get(platform.machine())
    if number is None:
        raise OSError(f"perf_event_open on {platform.machine()} is not known")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = int(libc.syscall(number, buf, -1, 0, -1, PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog)
        fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    except OSError:
        os.close(fd)
        raise
    return fd
