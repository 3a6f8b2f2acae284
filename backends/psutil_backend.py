"""The everywhere fallback: psutil sees sockets and interfaces, never per-process bytes.

psutil has no per-process network byte counters on any platform, so every
per-process byte figure from this backend is unknown (null), never zero and never
disk I/O in disguise. What it does give: the number of open TCP/UDP sockets per
process (the CONNS column) and, through the collector, per-interface rates.
"""

from __future__ import annotations

import asyncio
import sys
import time

from nettop_ui.core import Backend, Coverage, Probe, TrafficSample
from nettop_ui.procfs import SocketCounter
from nettop_ui.system import inet_connection_counts


class PsutilBackend(Backend):
    name = "psutil"
    platforms = ("linux", "darwin", "win32", "freebsd", "openbsd", "netbsd", "sunos", "aix")
    layer = "interface totals only (no per-process bytes)"
    coverage = Coverage(
        protocols=("tcp", "udp"),
        per_process=False,
        note="per-process bytes unknown; open sockets per process and interface rates only",
    )
    accuracy_rank = 90
    summary = "psutil: open connections per process, interface totals; no per-process bytes"

    @classmethod
    def probe(cls) -> Probe:
        return Probe(True, "always available (per-process bytes unknown)")

    def __init__(self) -> None:
        self._machine = True  # count every process's sockets (not: the collector counts)
        self._sockets: SocketCounter | None = None

    async def start(self) -> None:
        # Linux: per tick, only the processes whose fds changed have their links read.
        if self._machine and sys.platform.startswith("linux"):
            self._sockets = SocketCounter()

    def leave_socket_counts(self) -> bool:
        self._machine = False
        return True

    def _count(self) -> dict[int, int] | None:
        return self._sockets.count() if self._sockets else inet_connection_counts()

    async def read(self, interval_s: float) -> TrafficSample:
        counts = await asyncio.to_thread(self._count) if self._machine else None
        return TrafficSample(
            ts=time.time(), interval_s=interval_s, processes=None, connection_counts=counts
        )

    async def close(self) -> None:
        return None
