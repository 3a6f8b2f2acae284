"""Machine-wide facts from psutil: CPU, memory, swap, disk I/O, network interfaces.

These feed the TUI panels and the `system` / `interfaces` fields of the JSON stream.
Interface counters are those of the network namespace nettop-ui runs in; they count
wire frames on each interface and are never attributed to processes.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import psutil


@dataclass(slots=True)
class InterfaceStats:
    """One network interface: cumulative counters since boot and rates over the last tick."""

    sent_bytes: int
    recv_bytes: int
    sent_bps: float | None = None
    recv_bps: float | None = None


@dataclass(slots=True)
class SystemStats:
    """One tick of machine-wide figures. Rates are over the last tick; None before the second."""

    ts: float
    cpu_percent: float
    cpu_per_core: list[float]
    mem_total: int
    mem_used: int
    swap_total: int
    swap_used: int
    disk_read_bps: float | None
    disk_write_bps: float | None
    interfaces: dict[str, InterfaceStats] = field(default_factory=dict)


class SystemSampler:
    """Reads machine-wide counters and turns them into rates between calls."""

    def __init__(self) -> None:
        psutil.cpu_percent(percpu=True)  # prime: the first real call measures from here
        self._last_ts: float | None = None
        self._last_disk: tuple[int, int] | None = None
        self._last_nics: dict[str, tuple[int, int]] = {}

    def sample(self) -> SystemStats:
        now = time.monotonic()
        dt = None if self._last_ts is None else max(now - self._last_ts, 1e-6)
        per_core = psutil.cpu_percent(percpu=True)
        mem = psutil.virtual_memory()
        swap = psutil.swap_memory()

        disk = psutil.disk_io_counters()
        disk_now = (disk.read_bytes, disk.write_bytes) if disk else None
        read_bps = write_bps = None
        if dt and disk_now and self._last_disk:
            read_bps = max(disk_now[0] - self._last_disk[0], 0) / dt
            write_bps = max(disk_now[1] - self._last_disk[1], 0) / dt
        self._last_disk = disk_now

        interfaces: dict[str, InterfaceStats] = {}
        nics_now: dict[str, tuple[int, int]] = {}
        for nic, c in psutil.net_io_counters(pernic=True).items():
            nics_now[nic] = (c.bytes_sent, c.bytes_recv)
            stats = InterfaceStats(c.bytes_sent, c.bytes_recv)
            prev = self._last_nics.get(nic)
            if dt and prev:
                stats.sent_bps = max(c.bytes_sent - prev[0], 0) / dt
                stats.recv_bps = max(c.bytes_recv - prev[1], 0) / dt
            interfaces[nic] = stats
        self._last_nics = nics_now
        self._last_ts = now

        return SystemStats(
            ts=time.time(),
            cpu_percent=sum(per_core) / len(per_core) if per_core else 0.0,
            cpu_per_core=per_core,
            mem_total=mem.total,
            mem_used=mem.total - mem.available,
            swap_total=swap.total,
            swap_used=swap.used,
            disk_read_bps=read_bps,
            disk_write_bps=write_bps,
            interfaces=interfaces,
        )


def inet_connection_counts() -> dict[int, int] | None:
    """Open TCP/UDP sockets per pid, from one system-wide pass; None if not permitted."""
    if sys.platform.startswith("linux"):
        from nettop_ui import procfs  # the same count, without walking our own /proc files

        return procfs.inet_socket_counts()
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError):
        return None
    return dict(Counter(c.pid for c in conns if c.pid))
