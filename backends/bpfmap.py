"""eBPF map access through the bpf() system call, with ctypes and nothing else.

A `BpfMap` wraps a map's file descriptor (handed over by backends/bpfload.py) and
its key and value sizes; keys and values are raw bytes in the kernel's layout.
It looks up, updates and deletes one element, walks the keys with
BPF_MAP_GET_NEXT_KEY, and reads (or reads and deletes) many entries per system call
with BPF_MAP_LOOKUP_BATCH / LOOKUP_AND_DELETE_BATCH and deletes many with
BPF_MAP_DELETE_BATCH (Linux 5.6+); where the kernel refuses a batch command the map
falls back to one element per call from then on. Errors are OSError with the errno.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Iterable, Iterator

# The bpf() system call's number per architecture (asm/unistd.h).
SYSCALLS = {
    "x86_64": 321,
    "aarch64": 280,
    "riscv64": 280,
    "ppc64le": 361,
    "s390x": 351,
    "i686": 357,
    "armv7l": 386,
}
MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM, MAP_GET_NEXT_KEY = 1, 2, 3, 4
MAP_CREATE, OBJ_GET_INFO_BY_FD = 0, 15
MAP_LOOKUP_BATCH, MAP_LOOKUP_AND_DELETE_BATCH, MAP_DELETE_BATCH = 24, 25, 27
BPF_ANY = 0
ENOTSUPP = 524  # the kernel-internal "not supported" some map types return
UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP, errno.ENOSYS)
BATCH = 512  # entries per batch call

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _ElemAttr(ctypes.Structure):
    """bpf_attr for the MAP_*_ELEM and MAP_GET_NEXT_KEY commands."""

    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),  # next_key for MAP_GET_NEXT_KEY
        ("flags", ctypes.c_uint64),
    ]


class _BatchAttr(ctypes.Structure):
    """bpf_attr for the MAP_*_BATCH commands."""

    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _MapCreateAttr(ctypes.Structure):
    """bpf_attr for MAP_CREATE."""

    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * 16),
    ]


class MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info (OBJ_GET_INFO_BY_FD)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


def map_info(fd: int) -> MapInfo:
    """What the kernel says about the map behind `fd`."""
    info = MapInfo()
    bpf(OBJ_GET_INFO_BY_FD, _InfoAttr(fd, ctypes.sizeof(info), ctypes.addressof(info)))
    return info


def create_map(info: MapInfo) -> int:
    """A new map like `info` describes (no BTF); its fd."""
    attr = _MapCreateAttr(
        info.type, info.key_size, info.value_size, info.max_entries, info.map_flags,
        map_name=info.name,
    )  # fmt: skip
    return bpf(MAP_CREATE, attr)


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """The bpf() system call; its result (a new fd for some commands), OSError on failure."""
    number = SYSCALLS.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf() on {platform.machine()} is not known")
    result = int(_libc.syscall(number, cmd, ctypes.byref(attr), ctypes.sizeof(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _addr(buf: ctypes.Array[ctypes.c_char] | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


class BpfMap:
    """One map, by file descriptor; `close` closes the descriptor (once)."""

    def __init__(self, fd: int, key_size: int, value_size: int, max_entries: int) -> None:
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.batch = True  # until the kernel refuses a batch command
        self._batch_bufs: tuple[ctypes.Array[ctypes.c_char], ...] | None = None

    def _elem(
        self, cmd: int, key: bytes | None, value: ctypes.Array[ctypes.c_char] | None, flags: int = 0
    ) -> None:
        kbuf = None if key is None else ctypes.create_string_buffer(key, self.key_size)
        bpf(cmd, _ElemAttr(self.fd, _addr(kbuf), _addr(value), flags))

    def lookup(self, key: bytes) -> bytes | None:
        value = ctypes.create_string_buffer(self.value_size)
        try:
            self._elem(MAP_LOOKUP_ELEM, key, value)
        except FileNotFoundError:
            return None
        return value.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        self._elem(MAP_UPDATE_ELEM, key, ctypes.create_string_buffer(value, self.value_size), flags)

    def delete(self, key: bytes) -> bool:
        """False when the key was not there (an LRU map may have evicted it)."""
        try:
            self._elem(MAP_DELETE_ELEM, key, None)
        except FileNotFoundError:
            return False
        return True

    def keys(self) -> Iterator[bytes]:
        """Every key, by BPF_MAP_GET_NEXT_KEY (a hash map restarts if the key went meanwhile)."""
        key: bytes | None = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            try:
                self._elem(MAP_GET_NEXT_KEY, key, nxt)
            except FileNotFoundError:
                return
            key = nxt.raw
            yield key

    def items(self, delete: bool = False) -> list[tuple[bytes, bytes]]:
        """Every (key, value), in batches where the kernel can; `delete` empties the map too."""
        if self.batch:
            try:
                return self._items_batch(delete)
            except OSError as exc:
                if exc.errno not in UNSUPPORTED:
                    raise
                self.batch = False
        out = []
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None and (not delete or self.delete(key)):
                out.append((key, value))
        return out

    def _items_batch(self, delete: bool) -> list[tuple[bytes, bytes]]:
        cmd = MAP_LOOKUP_AND_DELETE_BATCH if delete else MAP_LOOKUP_BATCH
        ks, vs = self.key_size, self.value_size
        in_batch = ctypes.create_string_buffer(max(ks, 8))  # the kernel's cursor
        out_batch = ctypes.create_string_buffer(max(ks, 8))
        first = True
        out: list[tuple[bytes, bytes]] = []
        while True:
            keys, values = self._buffers()
            count = len(keys) // ks
            attr = _BatchAttr(
                0 if first else _addr(in_batch), _addr(out_batch), _addr(keys), _addr(values),
                count, self.fd,
            )  # fmt: skip
            done = False
            try:
                bpf(cmd, attr)
            except FileNotFoundError:  # no more entries; `count` says how many came
                done = True
            except OSError as exc:
                if exc.errno != errno.ENOSPC or attr.count:
                    raise
                self._buffers(2 * count)  # one hash bucket holds more than `count` entries
                continue
            kview, vview = memoryview(keys), memoryview(values)
            out += [
                (kview[i * ks : (i + 1) * ks].tobytes(), vview[i * vs : (i + 1) * vs].tobytes())
                for i in range(attr.count)
            ]
            if done:
                return out
            first = False
            ctypes.memmove(in_batch, out_batch, len(out_batch))

    def _buffers(self, count: int = 0) -> tuple[ctypes.Array[ctypes.c_char], ...]:
        """The key and value buffers for batch calls, kept from one read to the next
        (small and reused: no large allocation per read to fragment the heap)."""
        want = max(count, min(BATCH, max(self.max_entries, 1)))
        if self._batch_bufs is None or len(self._batch_bufs[0]) < want * self.key_size:
            self._batch_bufs = (
                ctypes.create_string_buffer(want * self.key_size),
                ctypes.create_string_buffer(want * self.value_size),
            )
        return self._batch_bufs

    def delete_many(self, keys: Iterable[bytes]) -> int:
        """Delete `keys` (those already gone are skipped); how many were deleted."""
        todo = list(keys)
        if not todo:
            return 0
        if self.batch:
            try:
                return self._delete_batch(todo)
            except OSError as exc:
                if exc.errno not in UNSUPPORTED:
                    raise
                self.batch = False
        return sum(self.delete(k) for k in todo)

    def _delete_batch(self, todo: list[bytes]) -> int:
        deleted = 0
        while todo:
            buf = ctypes.create_string_buffer(b"".join(todo), len(todo) * self.key_size)
            attr = _BatchAttr(keys=_addr(buf), count=len(todo), map_fd=self.fd)
            try:
                bpf(MAP_DELETE_BATCH, attr)
            except FileNotFoundError:  # todo[attr.count] is gone (evicted): skip it
                done = int(attr.count)
                deleted += done
                todo = todo[done + 1 :]
                continue
            return deleted + int(attr.count)
        return deleted

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
