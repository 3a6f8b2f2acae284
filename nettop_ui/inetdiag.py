"""The inodes of this network namespace's TCP sockets, in one netlink dump.

/proc/net/tcp and tcp6 list the same sockets, but every read of either walks the
kernel's whole established-connections hash (262,144 buckets on a 24 GiB machine, ~2 ms
however few sockets there are), and each file takes two reads (the second finds its end
by walking it again): ~8 ms for the two, as much as the rest of a socket count at
2,000 idle processes. The inet_diag dump in its original form (TCPDIAG_GETSOCK, which
asks for both address families at once) walks it once. It lists the tables' sockets:
those in the listening and established hashes (a TCP socket neither listening nor
connected is in neither), but for those no process holds (TIME_WAIT, NEW_SYN_RECV: inode
0). None where the kernel has no inet_diag (or it fails): the tables are read instead.
"""

from __future__ import annotations

import socket
import struct

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
# Every state but TIME_WAIT and NEW_SYN_RECV: those are no process's (inode 0), and a
# busy machine has tens of thousands of them (they are most of the tables' cost then).
TCP_TIME_WAIT, TCP_NEW_SYN_RECV = 6, 12
HELD_STATES = 0xFFFFFFFF & ~(1 << TCP_TIME_WAIT | 1 << TCP_NEW_SYN_RECV)
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, seq, pid
# struct inet_diag_req: family, src_len, dst_len, ext, the socket id (48 bytes, zero:
# any), states, dbs. The family is ignored by this request: both are dumped.
REQUEST = struct.pack("=BBBB48xII", socket.AF_INET, 0, 0, 0, HELD_STATES, 0)
INODE_AT = HEADER.size + 68  # struct inet_diag_msg's idiag_inode, after the header
INODE = struct.Struct("=I")
TIMEOUT_S = 5.0  # a dump takes milliseconds; this means it is stuck


def tcp_inodes() -> set[int] | None:
    """The inode of every TCP socket, IPv4 and IPv6, that /proc/net/tcp{,6} list (a
    process holds: TIME_WAIT's and NEW_SYN_RECV's inode 0 is left out)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as s:
            s.settimeout(TIMEOUT_S)
            head = HEADER.pack(
                HEADER.size + len(REQUEST), TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
            )
            s.sendto(head + REQUEST, (0, 0))
            return _read_dump(s)
    except OSError:
        return None


def _read_dump(s: socket.socket) -> set[int] | None:
    inodes: set[int] = set()
    while True:
        done = parse_reply(s.recv(1 << 16), inodes)
        if done is not None:
            return inodes if done else None


def parse_reply(data: bytes, inodes: set[int]) -> bool | None:
    """Add the inodes in one `recv` of the dump to `inodes`: True once it ends, False if
    it failed or is damaged, None when more is to come. Never raises."""
    if not data:
        return False
    at = 0
    while at + HEADER.size <= len(data):
        length, kind = HEADER.unpack_from(data, at)[:2]
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR or length < HEADER.size or at + length > len(data):
            return False
        if kind == TCPDIAG_GETSOCK and length >= INODE_AT + INODE.size:
            inodes.add(INODE.unpack_from(data, at + INODE_AT)[0])
        at += (length + 3) & ~3
    return None
