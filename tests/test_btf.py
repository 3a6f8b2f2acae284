"""backends/btf.py: struct member offsets from the running kernel's BTF, and bad input."""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import pytest

from backends import btf
from tests.netenv import require

VMLINUX_PRESENT = btf.VMLINUX.exists()


class SockHead(ctypes.Structure):
    """The head of struct sock_common as backends/ebpf_prog.c's struct sock_head lays it out."""

    _fields_ = [
        ("skc_daddr", ctypes.c_uint32),
        ("skc_rcv_saddr", ctypes.c_uint32),
        ("skc_hash", ctypes.c_uint32),
        ("skc_dport", ctypes.c_uint16),
        ("skc_num", ctypes.c_uint16),
        ("skc_family", ctypes.c_uint16),
        ("skc_state", ctypes.c_uint8),
        ("reuse_bits", ctypes.c_uint8),
        ("skc_bound_dev_if", ctypes.c_int),
        ("skc_bind_node", ctypes.c_void_p * 2),
        ("skc_prot", ctypes.c_void_p),
        ("skc_net", ctypes.c_void_p),
        ("skc_v6_daddr", ctypes.c_uint8 * 16),
        ("skc_v6_rcv_saddr", ctypes.c_uint8 * 16),
    ]


def test_kernel_sock_common_matches_the_programs_copy() -> None:
    """The running kernel's sock_common, whose addresses and ports sit in anonymous
    unions of anonymous structs, has the layout ebpf_prog.c assumes."""
    require(VMLINUX_PRESENT, f"no {btf.VMLINUX} (CONFIG_DEBUG_INFO_BTF)")
    names = tuple(f[0] for f in SockHead._fields_ if f[0].startswith("skc_"))
    found = btf.member_offsets("sock_common", names)
    assert found == {name: getattr(SockHead, name).offset for name in names}


def test_kernel_tcp_sock_fields_are_found() -> None:
    require(VMLINUX_PRESENT, f"no {btf.VMLINUX} (CONFIG_DEBUG_INFO_BTF)")
    found = btf.member_offsets("tcp_sock", ("copied_seq", "rcv_nxt"))
    head = btf.member_offsets("tcp_sock", ("inet_conn",))["inet_conn"]
    assert head == 0  # tcp_sock begins with the inet_connection_sock
    assert all(at > 0 and at % 4 == 0 for at in found.values()), found  # u32s, past the head
    assert found["copied_seq"] != found["rcv_nxt"]


def _blob(types: list[bytes], names: list[str]) -> bytes:
    strings = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    body = b"".join(types)
    header = struct.pack("<HBBI4I", btf.MAGIC, 1, 0, 24, 0, len(body), len(body), len(strings))
    return header + body + strings


def _name(names: list[str], name: str) -> int:
    return 1 + sum(len(n) + 1 for n in names[: names.index(name)])


def _type(name_off: int, kind: int, vlen: int, size: int, kind_flag: int = 0) -> bytes:
    return struct.pack("<3I", name_off, kind_flag << 31 | kind << 24 | vlen, size)


def test_nested_anonymous_members_and_bitfields(tmp_path: Path) -> None:
    """Offsets through an anonymous union of an anonymous struct, behind a const, with
    the bitfield encoding (kind_flag) and other kinds' records to step over."""
    names = ["int", "outer", "first", "low", "high", "flags", "E", "A"]

    def n(name: str) -> int:
        return _name(names, name)

    types = [
        _type(n("int"), 1, 0, 4) + struct.pack("<I", 32),  # 1: INT
        _type(n("E"), 6, 2, 4) + struct.pack("<4I", n("A"), 0, n("A"), 1),  # 2: ENUM
        # 3: anonymous STRUCT { low @0, high @32 }
        _type(0, 4, 2, 8) + struct.pack("<6I", n("low"), 1, 0, n("high"), 1, 32),
        _type(0, 10, 0, 3),  # 4: CONST of 3
        _type(0, 5, 1, 8) + struct.pack("<3I", 0, 4, 0),  # 5: anonymous UNION { const 3 }
        # 6: STRUCT outer { first @0, union 5 @64, flags: 3 bits @136 }, kind_flag set
        _type(n("outer"), 4, 3, 24, kind_flag=1)
        + struct.pack("<9I", n("first"), 1, 0, 0, 5, 64, n("flags"), 1, 3 << 24 | 136),
    ]
    path = tmp_path / "vmlinux"
    path.write_bytes(_blob(types, names))
    members = ("first", "low", "high", "flags")
    assert btf.member_offsets("outer", members, path) == {
        "first": 0,
        "low": 8,
        "high": 12,
        "flags": 17,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"\x00" * 40, "not BTF"),
        (b"\x9f\xeb", "too short"),
    ],
)
def test_unreadable_btf_is_one_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "vmlinux"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(btf.BtfError, match=message):
        btf.member_offsets("tcp_sock", ("copied_seq",), path)


def test_missing_struct_or_member(tmp_path: Path) -> None:
    names = ["int", "outer", "first"]
    types = [
        _type(_name(names, "int"), 1, 0, 4) + struct.pack("<I", 32),
        _type(_name(names, "outer"), 4, 1, 4) + struct.pack("<3I", _name(names, "first"), 1, 0),
    ]
    path = tmp_path / "vmlinux"
    path.write_bytes(_blob(types, names))
    with pytest.raises(btf.BtfError, match="no struct tcp_sock"):
        btf.member_offsets("tcp_sock", ("copied_seq",), path)
    with pytest.raises(btf.BtfError, match="has no second"):
        btf.member_offsets("outer", ("first", "second"), path)


def test_record_past_its_section_is_malformed(tmp_path: Path) -> None:
    names = ["outer", "first"]
    claims_two = _type(_name(names, "outer"), 4, 2, 4)  # two members, one present
    path = tmp_path / "vmlinux"
    path.write_bytes(_blob([claims_two + struct.pack("<3I", _name(names, "first"), 1, 0)], names))
    with pytest.raises(btf.BtfError, match="malformed BTF"):
        btf.member_offsets("outer", ("first",), path)
