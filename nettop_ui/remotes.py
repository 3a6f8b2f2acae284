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


def _normal(address: str) -> str:
    """The canonical text of an address; an IPv4-mapped IPv6 one as plain IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def remote_address(endpoint: str) -> str:
    """The RemoteTable key of a connection's remote endpoint."""
    return _normal(split_endpoint(endpoint)[0])


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


class OpenConnection(Protocol):
    """What RemoteTable.refresh needs of one open connection (a ConnectionState fits)."""

    @property
    def protocol(self) -> str: ...
    @property
    def remote(self) -> str: ...


class RemoteTable:
    """Per-remote-address totals and what is open now. Not thread-safe: the collector's."""

    def __init__(self, max_hosts: int = 4096) -> None:
        self.max_hosts = max_hosts
        self.hosts: dict[str, RemoteHostState] = {}
        self.folded = FoldedHosts()
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
            host.sent_bytes += sent
            host.recv_bytes += recv
            host.sent_bps, host.recv_bps = sent / dt, recv / dt
            host.last_seen = now
        self._fold()

    def refresh(self, open_by_pid: Iterable[tuple[int, str, Iterable[OpenConnection]]]) -> None:
        """Recount what is open now from (pid, process name, its open connections)."""
        counts: dict[str, int] = {}
        protocols: dict[str, set[str]] = {}
        ports: dict[str, set[int]] = {}
        pids: dict[str, dict[int, str]] = {}
        for pid, name, conns in open_by_pid:
            for c in conns:
                ip, port = split_endpoint(c.remote)
                address = _normal(ip)
                if address not in self.hosts:
                    continue  # folded away
                counts[address] = counts.get(address, 0) + 1
                protocols.setdefault(address, set()).add(c.protocol)
                if port is not None:
                    ports.setdefault(address, set()).add(port)
                pids.setdefault(address, {})[pid] = name
        for address, host in self.hosts.items():
            host.connection_count = counts.get(address, 0)
            host.protocols = tuple(sorted(protocols.get(address, ())))
            host.ports = tuple(sorted(ports.get(address, ())))
            host.pids = pids.get(address, {})

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
