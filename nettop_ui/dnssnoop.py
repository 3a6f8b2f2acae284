"""The names processes asked for: DNS answers read off this machine's own traffic.

A reverse lookup (PTR) of a CDN address names the CDN (`a23-45-67-89.deploy.akamai.net`),
not the site the process asked for (`www.example.com`). So, where allowed (root, or
CAP_NET_RAW), nettop-ui reads the DNS answers that reach this network namespace: a
packet socket in cooked mode, with a classic BPF filter in the kernel that lets through
only UDP datagrams from port 53, IPv4 and IPv6, in either direction (so the answers of a
local stub resolver such as systemd-resolved's 127.0.0.53, on loopback, are seen too).
Each answer's A and AAAA records, through any CNAME chain, map an address to the name in
the question. Nothing else of any packet is read; an answer is untrusted input, parsed
with bounds on every length, pointer and count.

The map is machine-wide (the latest answer for an address wins), bounded (LRU), and
keeps a name at least KEEP_S after the answer, since connections outlive DNS TTLs.
Not seen: DNS over TCP, TLS or HTTPS, answers from a cache inside the process itself,
and queries made before nettop-ui started.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import OrderedDict

ETH_P_ALL = 0x0003
SOL_SOCKET_ATTACH_FILTER = 26  # SO_ATTACH_FILTER
KEEP_S = 3600.0
MAX_ENTRIES = 8192
MAX_NAME = 253
STOP_CHECK_S = 0.5  # how soon the reader sees close()
SOURCE = "dns"  # RemoteHostState.name_source of a name learned here

# cBPF on the network header (SOCK_DGRAM packet socket): accept UDP from port 53.
# (code, jt, jf, k); SKF_AD_OFF + SKF_AD_PROTOCOL = 0xfffff000 is skb->protocol.
_FILTER = (
    (0x20, 0, 0, 0xFFFFF000),  # ld  [proto]
    (0x15, 0, 7, 0x0800),  # jeq IPv4 ? next : ipv6
    (0x30, 0, 0, 9),  # ldb [9]            IPv4 protocol
    (0x15, 0, 11, 17),  # jeq UDP ? next : drop
    (0x28, 0, 0, 6),  # ldh [6]             flags + fragment offset
    (0x45, 9, 0, 0x1FFF),  # jset fragment ? drop : next
    (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)    IPv4 header length
    (0x48, 0, 0, 0),  # ldh [x+0]           UDP source port
    (0x15, 5, 6, 53),  # jeq 53 ? accept : drop
    (0x15, 0, 5, 0x86DD),  # ipv6: jeq IPv6 ? next : drop
    (0x30, 0, 0, 6),  # ldb [6]             next header (no extension headers)
    (0x15, 0, 3, 17),  # jeq UDP ? next : drop
    (0x28, 0, 0, 40),  # ldh [40]            UDP source port
    (0x15, 0, 1, 53),  # jeq 53 ? accept : drop
    (0x06, 0, 0, 0x40000),  # accept: ret 256 KiB
    (0x06, 0, 0, 0),  # drop: ret 0
)


def _attach_filter(sock: socket.socket) -> None:
    import ctypes

    code = b"".join(struct.pack("HBBI", *ins) for ins in _FILTER)
    buf = ctypes.create_string_buffer(code)
    prog = struct.pack("HL", len(_FILTER), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SOL_SOCKET_ATTACH_FILTER, prog)


def _udp_payload(packet: bytes, protocol: int) -> bytes | None:
    """The UDP payload of an IPv4/IPv6 datagram (network header first), or None."""
    if protocol == 0x0800 and len(packet) >= 20:
        start = (packet[0] & 0x0F) * 4 + 8
    elif protocol == 0x86DD and len(packet) >= 48:
        start = 48
    else:
        return None
    return packet[start:] if len(packet) > start else None


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    """The (possibly compressed) name at `pos`, and the position after it.

    Raises ValueError on anything malformed: a pointer loop, an overlong name, a cut."""
    labels: list[str] = []
    end = -1
    jumps = 0
    length = 0
    while True:
        if pos >= len(msg):
            raise ValueError("cut")
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg) or jumps > 32:
                raise ValueError("bad pointer")
            if end < 0:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            continue
        if n & 0xC0:
            raise ValueError("bad label")
        pos += 1
        if n == 0:
            break
        label = msg[pos : pos + n]
        if len(label) != n:
            raise ValueError("cut")
        length += n + 1
        if length > MAX_NAME + 1:
            raise ValueError("too long")
        labels.append(label.decode("ascii", errors="backslashreplace"))
        pos += n
    return ".".join(labels).lower(), (end if end >= 0 else pos)


def parse_answer(msg: bytes) -> list[tuple[str, str, int]]:
    """(address, the name asked for, TTL) for every A/AAAA record of a DNS response.

    Records of a CNAME chain that starts at the question count; others are ignored.
    Malformed input gives what was read before the damage."""
    found: list[tuple[str, str, int]] = []
    if len(msg) < 12:
        return found
    _id, flags, qdcount, ancount = struct.unpack_from("!HHHH", msg)
    if not flags & 0x8000 or flags & 0x000F or qdcount != 1:
        return found  # a query, an error, or not one question
    try:
        asked, pos = _name(msg, 12)
        pos += 4  # qtype, qclass
        aliases = {asked}
        for _ in range(min(ancount, 256)):
            owner, pos = _name(msg, pos)
            if pos + 10 > len(msg):
                break
            rtype, _rclass, ttl, rdlength = struct.unpack_from("!HHIH", msg, pos)
            pos += 10
            rdata = msg[pos : pos + rdlength]
            if len(rdata) != rdlength:
                break
            if owner in aliases:
                if rtype == 5:  # CNAME
                    aliases.add(_name(msg, pos)[0])
                elif rtype == 1 and rdlength == 4:
                    found.append((socket.inet_ntop(socket.AF_INET, rdata), asked, ttl))
                elif rtype == 28 and rdlength == 16:
                    found.append((socket.inet_ntop(socket.AF_INET6, rdata), asked, ttl))
            pos += rdlength
    except (ValueError, struct.error):
        pass
    return found


class DnsAnswers:
    """Address -> the name asked for, learned from DNS answers in a daemon thread."""

    def __init__(self, max_entries: int = MAX_ENTRIES, keep_s: float = KEEP_S) -> None:
        self.max_entries = max_entries
        self.keep_s = keep_s
        self._names: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.unavailable: str | None = None  # why no answers are read, once known
        self.version = 0  # bumped by every answer learned
        self.thread: threading.Thread | None = None  # the reader, once started

    def start(self) -> bool:
        """Open the packet socket and start reading; False (and `unavailable`) if denied."""
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except (OSError, AttributeError) as exc:  # no CAP_NET_RAW; not Linux
            self.unavailable = f"DNS answers not read: {exc}"
            return False
        try:
            _attach_filter(sock)
        except OSError as exc:
            sock.close()
            self.unavailable = f"DNS answers not read: {exc}"
            return False
        sock.settimeout(STOP_CHECK_S)
        self.thread = threading.Thread(
            target=self._read, args=(sock,), name="nettop-ui-dns", daemon=True
        )
        self.thread.start()
        return True

    def _read(self, sock: socket.socket) -> None:
        # The reader owns the socket and closes it itself: closing it under a blocked
        # recvfrom neither wakes that call nor keeps the fd number from being reused.
        with sock:
            while not self._stop.is_set():
                try:
                    packet, addr = sock.recvfrom(65535)
                except TimeoutError:
                    continue  # look at the stop flag now and then
                except OSError:
                    return
                payload = _udp_payload(packet, addr[1]) if addr else None
                if payload is not None:
                    self.learn(parse_answer(payload))

    def learn(self, answers: list[tuple[str, str, int]], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for address, name, ttl in answers:
                self._names[address] = (name, now + max(float(ttl), self.keep_s))
                self._names.move_to_end(address)
            while len(self._names) > self.max_entries:
                self._names.popitem(last=False)
            if answers:
                self.version += 1

    def name_of(self, address: str, now: float | None = None) -> str | None:
        """The name last asked for that answered with `address`, while it is kept."""
        with self._lock:
            entry = self._names.get(address)
        if entry is None:
            return None
        name, until = entry
        return name if until > (time.monotonic() if now is None else now) else None

    def close(self) -> None:
        """Stop reading; the reader closes the socket within STOP_CHECK_S."""
        self._stop.set()
