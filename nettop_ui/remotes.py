"""Remote hosts: every process's connections summed per remote address.

A backend with a per-connection view (ebpf, sockdiag) reports each interval's bytes per
(pid, protocol, local, remote). `RemoteTable` folds them per remote *address* (the port
set aside) into totals since start, kept after the connections close the way an exited
process keeps its totals, and each tick recounts from the processes' live connection
tables what is open now: connections, protocols, remote ports and the processes talking.

An address is `local` when it is a loopback address or one of this machine's own
(refreshed every LOCAL_REFRESH_S from the interfaces), else `remote`. A connection with
no remote address (an unconnected UDP socket, seen from the sending side) is kept under
the address "" so that the per-host bytes still add up to the per-process bytes.

Memory is bounded: past `max_hosts` hosts, the ones idle longest are folded into one
total (`folded`), bytes conserved, as the collector folds exited processes.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from nettop_ui.core import ConnectionTraffic

LOCAL_REFRESH_S = 30.0
UNCONNECTED = ""  # the address of bytes without a remote endpoint


def split_endpoint(endpoint: str) -> tuple[str, int | None]:
    """ "10.0.0.1:443" -> ("10.0.0.1", 443); "[fd00::1]:443" -> ("fd00::1", 443);
    "fd00::1" (ICMP, raw) -> ("fd00::1", None); "" -> ("", None)."""
    if not endpoint:
        return UNCONNECTED, None
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if endpoint.count(":") == 1:
        host, _, port = endpoint.partition(":")
        return host, int(port) if port.isdigit() else None
    return endpoint, None  # a bare IPv6 address, or a bare IPv4 one


def ip_of(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as an object, an IPv4-mapped IPv6 one as IPv4; None if it is none."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# Every open connection's address is parsed at each recount (RemoteTable.refresh): the
# same strings time after time, and `ipaddress` parses one in ~10 us (10,000
# connections: 100 ms, bench/tui). The cache holds addresses, not endpoints: every
# ephemeral port of a busy server is a new endpoint, and 65,536 of them held ~20 MiB
# (tests/test_churn.py). RemoteTable keeps 4,096 hosts, so this covers them.
@functools.lru_cache(maxsize=8192)
def _normal(address: str) -> str:
    """The canonical text of an address; an IPv4-mapped IPv6 one as plain IPv4."""
    ip = ip_of(address)
    return address if ip is None else str(ip)


def _address_port(endpoint: str) -> tuple[str, int | None]:
    """The RemoteTable key of a connection's remote endpoint, and its port."""
    ip, port = split_endpoint(endpoint)
    return _normal(ip), port


def remote_address(endpoint: str) -> str:
    """The RemoteTable key of a connection's remote endpoint."""
    return _address_port(endpoint)[0]


def own_addresses() -> frozenset[str]:
    """This machine's interface addresses (all namespaces' views are the caller's own)."""
    found: set[str] = set()
    try:
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                host = a.address.split("%", 1)[0]  # fe80::1%eth0
                try:
                    found.add(str(ipaddress.ip_address(host)))
                except ValueError:
                    continue  # a MAC address
    except OSError:
        pass
    return frozenset(found)


def is_local(address: str, own: frozenset[str]) -> bool:
    """Loopback, unspecified, or one of `own`."""
    if address in own:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


@dataclass(slots=True)
class RemoteHostState:
    """One remote address, cumulative since first seen; `*_now` fields are as of this tick."""

    address: str  # "10.0.0.5", "fd00::1"; "" for bytes without a remote endpoint
    scope: str  # "local" (loopback, this machine's own) or "remote"
    name: str | None = None  # from `name_source`; None while unknown or not looked up
    name_source: str | None = None  # "resolver": a reverse lookup (PTR, /etc/hosts)
    sent_bytes: int = 0
    recv_bytes: int = 0
    sent_bps: float = 0.0
    recv_bps: float = 0.0
    connection_count: int = 0  # connections open now (seen within the keep window)
    protocols: tuple[str, ...] = ()  # of the open connections, sorted
    ports: tuple[int, ...] = ()  # remote ports of the open connections, sorted
    pids: dict[int, str] = field(default_factory=dict)  # processes talking now: pid -> name
    first_seen: float = 0.0
    last_seen: float = 0.0

    @property
    def total_bps(self) -> float:
        return self.sent_bps + self.recv_bps


@dataclass(slots=True)
class FoldedHosts:
    """Totals of hosts no longer listed one by one (see RemoteTable.max_hosts)."""

    hosts: int = 0
    sent_bytes: int = 0
    recv_bytes: int = 0


@dataclass(slots=True)
class _Open:
    """What `RemoteTable.refresh` counts for one host while it goes."""

    host: RemoteHostState
    count: int = 0
    protocols: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    pids: dict[int, str] = field(default_factory=dict)


class OpenConnection(Protocol):
    """What RemoteTable.refresh needs of one open connection (a ConnectionState fits);
    it writes the host's name and scope onto it."""

    @property
    def protocol(self) -> str: ...
    @property
    def remote(self) -> str: ...

    remote_name: str | None
    remote_scope: str


class RemoteTable:
    """Per-remote-address totals and what is open now. Not thread-safe: the collector's."""

    def __init__(self, max_hosts: int = 4096) -> None:
        self.max_hosts = max_hosts
        self.hosts: dict[str, RemoteHostState] = {}
        self.folded = FoldedHosts()
        self.added = False  # a host was added since the owner last cleared this
        self.recounted = False  # the last tick recounted what is open (refresh ran)
        self._own: frozenset[str] = frozenset()
        self._own_at = float("-inf")

    def scope_of(self, address: str, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if now - self._own_at >= LOCAL_REFRESH_S:
            self._own, self._own_at = own_addresses(), now
        return "local" if is_local(address, self._own) else "remote"

    def apply(self, conns: Iterable[ConnectionTraffic], dt: float, now: float) -> None:
        """Add one interval's per-connection deltas; rates are over `dt` seconds."""
        moved: dict[str, list[int]] = {}
        for c in conns:
            address = remote_address(c.remote)
            acc = moved.setdefault(address, [0, 0])
            acc[0] += c.sent_bytes
            acc[1] += c.recv_bytes
        dt = dt if dt > 0 else 1.0
        for idle in self.hosts.values():
            idle.sent_bps = idle.recv_bps = 0.0
        mono = time.monotonic()
        for address, (sent, recv) in moved.items():
            host = self.hosts.get(address)
            if host is None:
                scope = self.scope_of(address, mono) if address else "remote"
                host = RemoteHostState(address, scope, first_seen=now)
                self.hosts[address] = host
                self.added = True
            host.sent_bytes += sent
            host.recv_bytes += recv
            host.sent_bps, host.recv_bps = sent / dt, recv / dt
            host.last_seen = now
        self._fold()

    def refresh(self, open_by_pid: Iterable[tuple[int, str, Iterable[OpenConnection]]]) -> set[int]:
        """Recount what is open now from (pid, process name, its open connections), and
        copy each host's name and scope onto its connections; returns the pids whose
        connections it renamed (a name or scope that changed).

        One pass over every open connection each tick (bench/tui: 10,000 of them), so
        the loop does as little as it can: one cached parse of the endpoint, one
        accumulator per host.
        """
        hosts = self.hosts
        self.recounted = True
        found: dict[str, _Open] = {}
        renamed: set[int] = set()
        for pid, name, conns in open_by_pid:
            for c in conns:
                address, port = _address_port(c.remote)
                acc = found.get(address)
                if acc is None:
                    host = hosts.get(address)
                    if host is None:
                        continue  # folded away
                    acc = found[address] = _Open(host)
                host = acc.host
                if c.remote_name != host.name or c.remote_scope != host.scope:
                    c.remote_name, c.remote_scope = host.name, host.scope
                    renamed.add(pid)
                acc.count += 1
                acc.protocols.add(c.protocol)
                if port is not None:
                    acc.ports.add(port)
                acc.pids[pid] = name
        for address, host in hosts.items():
            acc = found.get(address)
            if acc is None:
                host.connection_count, host.protocols, host.ports, host.pids = 0, (), (), {}
            else:
                host.connection_count = acc.count
                host.protocols = tuple(sorted(acc.protocols))
                host.ports = tuple(sorted(acc.ports))
                host.pids = acc.pids
        return renamed

    def _fold(self) -> None:
        excess = len(self.hosts) - self.max_hosts
        if excess <= 0:
            return
        idle = sorted(self.hosts.values(), key=lambda h: (h.total_bps > 0, h.last_seen))
        for host in idle[:excess]:
            self.folded.hosts += 1
            self.folded.sent_bytes += host.sent_bytes
            self.folded.recv_bytes += host.recv_bytes
            del self.hosts[host.address]
