"""Byte offsets of struct members, read from the running kernel's BTF.

The kernel describes its own types in BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF,
on by default in distribution kernels since about 5.4). The ebpf backend's program reads
two fields of struct tcp_sock whose offsets change with the kernel's version and
configuration; it gets them from here, as compile-time constants, instead of from
headers that may not match the running kernel.

Only what that needs is decoded: the type section is walked once (every kind's record
length, per the format in the kernel's Documentation/bpf/btf.rst), structs by name, and
their members, descending into anonymous structs and unions.
"""

from __future__ import annotations

import struct
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")
MAGIC = 0xEB9F
KIND_STRUCT, KIND_UNION = 4, 5
INFO = struct.Struct("<4xI")  # a type record's info word: kind, vlen, kind_flag
# Bytes that follow the 12-byte common record, per kind: (fixed, per vlen entry).
TRAILERS = {kind: (0, 0) for kind in range(1, 20)} | {
    1: (4, 0),  # INT
    3: (12, 0),  # ARRAY
    4: (0, 12),  # STRUCT
    5: (0, 12),  # UNION
    6: (0, 8),  # ENUM
    13: (0, 8),  # FUNC_PROTO
    14: (4, 0),  # VAR
    15: (0, 12),  # DATASEC
    17: (4, 0),  # DECL_TAG
    19: (0, 12),  # ENUM64
}


class BtfError(Exception):
    """The BTF is missing, malformed, or lacks the struct or member asked for."""


def member_offsets(
    struct_name: str, members: tuple[str, ...], path: Path | None = None
) -> dict[str, int]:
    """{member: byte offset} in `struct_name`, for each of `members`; BtfError if any is absent.

    `path` is the kernel's own BTF (VMLINUX) unless given.
    """
    return Btf.load(path).offsets(struct_name, members)


class Btf:
    """One parsed BTF blob; load it once to look up several structs."""

    @classmethod
    def load(cls, path: Path | None = None) -> Btf:
        path = path or VMLINUX
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise BtfError(f"cannot read {path}: {exc.strerror}") from None

    def offsets(self, struct_name: str, members: tuple[str, ...]) -> dict[str, int]:
        """{member: byte offset} in `struct_name`; BtfError if the struct or a member is absent."""
        try:
            found = self.members(struct_name)
        except (struct.error, IndexError, ValueError) as exc:  # records that run off the end
            raise BtfError(f"malformed BTF: {exc}") from None
        missing = [m for m in members if m not in found]
        if missing:
            raise BtfError(f"struct {struct_name} has no {', '.join(missing)}")
        return {m: found[m] for m in members}

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BtfError("BTF too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data)
        if magic != MAGIC:
            raise BtfError("not BTF (bad magic, or another byte order)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<4I", data, 8)
        self.data = data
        self.types = (hdr_len + type_off, hdr_len + type_off + type_len)
        self.strings = (hdr_len + str_off, hdr_len + str_off + str_len)
        if self.types[1] > len(data) or self.strings[1] > len(data):
            raise BtfError("BTF sections run past its end")
        # Type id -> offset of its record; ids start at 1. (The hot loop of a load: about
        # 130,000 records in a distribution kernel.)
        self.records: list[int] = [0]
        append, info_at = self.records.append, INFO.unpack_from
        pos, end = self.types
        while pos < end:
            append(pos)
            (info,) = info_at(data, pos)
            trailer = TRAILERS.get((info >> 24) & 0x1F)
            if trailer is None:
                raise BtfError(f"unknown BTF kind {(info >> 24) & 0x1F}")
            pos += 12 + trailer[0] + trailer[1] * (info & 0xFFFF)
        if pos != end:
            raise BtfError("malformed BTF: a type record runs past the type section")

    def name(self, offset: int) -> str:
        start = self.strings[0] + offset
        return self.data[start : self.data.index(b"\0", start)].decode()

    def members(self, struct_name: str) -> dict[str, int]:
        """Named members of the struct, at any depth of anonymous nesting, with byte offsets."""
        # Strings are stored once: find the name's offset, then the struct that has it.
        at = self.data.find(b"\0" + struct_name.encode() + b"\0", *self.strings)
        name_off = at + 1 - self.strings[0]
        head = struct.Struct("<II").unpack_from
        for type_id, pos in enumerate(self.records[1:], 1) if at >= 0 else ():
            name, info = head(self.data, pos)
            if name == name_off and (info >> 24) & 0x1F == KIND_STRUCT and info & 0xFFFF:
                return self._flatten(type_id, 0)
        raise BtfError(f"no struct {struct_name} in the kernel's BTF")

    def _flatten(self, type_id: int, base_bits: int) -> dict[str, int]:
        pos = self.records[type_id]
        info = int.from_bytes(self.data[pos + 4 : pos + 8], "little")
        vlen, kind_flag = info & 0xFFFF, info >> 31
        out: dict[str, int] = {}
        for i in range(vlen):
            name_off, member_type, offset = struct.unpack_from("<3I", self.data, pos + 12 + 12 * i)
            bits = base_bits + (offset & 0xFFFFFF if kind_flag else offset)
            if name_off:
                out[self.name(name_off)] = bits // 8
                continue
            inner = self._resolve(member_type)
            if inner is not None:  # an anonymous struct or union: its members are ours
                out.update(self._flatten(inner, bits))
        return out

    def _resolve(self, type_id: int) -> int | None:
        """The struct/union id behind `type_id` (through typedefs and qualifiers), or None."""
        for _ in range(16):
            pos = self.records[type_id]
            info = int.from_bytes(self.data[pos + 4 : pos + 8], "little")
            kind = (info >> 24) & 0x1F
            if kind in (KIND_STRUCT, KIND_UNION):
                return type_id
            if kind not in (8, 9, 10, 11, 18):  # TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
                return None
            type_id = int.from_bytes(self.data[pos + 8 : pos + 12], "little")
        return None
