"""Linux without root: TCP byte counters per socket from the kernel's sock_diag netlink.

Every poll asks the kernel (NETLINK_SOCK_DIAG through pyroute2's DiagSocket) for the
IPv4 and IPv6 TCP sockets a process can hold (not listeners, SYN_RECV or TIME_WAIT)
with their `tcp_info`, whose `tcpi_bytes_acked` (payload the
peer acknowledged) and `tcpi_bytes_received` (payload received) are exact socket
payload counters. Sockets are tied to processes through the `socket:[inode]` links in
/proc/PID/fd: without root that is only the user's own processes, so other sockets'
bytes are reported as unattributed (seen, not tied to a process). A socket shared by
several processes (inherited over fork) is credited to the lowest pid holding it.

Limits, stated in `coverage`: TCP only; sock_diag sees the sockets of the network
namespace nettop-ui runs in; a socket that opens and closes between two polls, or
the bytes of its last poll interval, are missed. Polling every 0.25 s keeps that loss
small. A socket already open when the backend starts counts from its first poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nettop_ui.core import (
    Backend,
    BackendError,
    ConnectionTraffic,
    Coverage,
    Probe,
    ProcessTraffic,
    TrafficSample,
)
from nettop_ui.procfs import socket_owners

POLL_S = 0.25
CALL_TIMEOUT_S = 15.0  # a netlink dump takes milliseconds; this means it is stuck
TCP_SYN_RECV, TCP_TIME_WAIT, TCP_LISTEN = 3, 6, 10
# Every state a socket held by a process can be in. Listeners move no payload; SYN_RECV
# and TIME_WAIT sockets belong to no process (no inode, no tcp_info), and a busy server
# has tens of thousands of TIME_WAIT ones: dumping them made every poll take seconds.
OWNED_STATES = 0xFFF & ~(1 << TCP_LISTEN | 1 << TCP_SYN_RECV | 1 << TCP_TIME_WAIT)
INET_DIAG_INFO_EXT = 1 << (2 - 1)  # request the INET_DIAG_INFO attribute (tcp_info)
SocketKey = tuple[int, int]  # (inode, cookie)


@dataclass(slots=True)
class TcpSocket:
    """One TCP socket as sock_diag reports it."""

    inode: int
    cookie: int
    local: str
    remote: str
    acked: int
    received: int


def endpoint(addr: str, port: int) -> str:
    """ "1.2.3.4", 80 -> "1.2.3.4:80"; "fd00::1", 80 -> "[fd00::1]:80"."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return f"{addr}:{port}"
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


# TCP states (include/net/tcp_states.h) in which our FIN has been acknowledged, and in
# which the peer's FIN has been received.
OUR_FIN_ACKED = {5, 6}  # FIN_WAIT2, TIME_WAIT
PEER_FIN_SEEN = {6, 8, 9, 11}  # TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING
HANDSHAKE = {2, 3}  # SYN_SENT, SYN_RECV


def payload_counts(state: int, acked: int, received: int) -> tuple[int, int]:
    """tcp_info's counters are in sequence space: the SYN and the FIN each count one.

    Take them out, so the figures are payload bytes.
    """
    if state not in HANDSHAKE:
        acked -= 1  # our SYN, acknowledged by the handshake
    if state in OUR_FIN_ACKED:
        acked -= 1
    if state in PEER_FIN_SEEN:
        received -= 1
    return max(acked, 0), max(received, 0)


def to_socket(msg: Any) -> TcpSocket | None:
    """A decoded sock_diag message -> TcpSocket; None without tcp_info or an inode."""
    info = msg.get_attr("INET_DIAG_INFO")
    inode = msg.get("idiag_inode") or 0
    if not info or not inode:
        return None
    acked, received = info.get("tcpi_bytes_acked"), info.get("tcpi_bytes_received")
    state = msg.get("idiag_state")
    if not all(isinstance(v, int) for v in (acked, received, state)):
        return None
    acked, received = payload_counts(state, acked, received)
    return TcpSocket(
        inode=inode,
        cookie=msg.get("idiag_cookie") or 0,
        local=endpoint(str(msg.get("idiag_src")), int(msg.get("idiag_sport") or 0)),
        remote=endpoint(str(msg.get("idiag_dst")), int(msg.get("idiag_dport") or 0)),
        acked=acked,
        received=received,
    )


class SockdiagBackend(Backend):
    name = "sockdiag"
    platforms = ("linux",)
    layer = "socket payload (TCP bytes acked / received)"
    coverage = Coverage(
        protocols=("tcp",),
        per_connection=True,
        note="TCP only; bytes of connections that open and close between two polls "
        "are missed; this network namespace only",
    )
    accuracy_rank = 30
    has_unattributed = True
    summary = "sock_diag netlink: TCP counters per socket, no root needed"

    def __init__(self) -> None:
        self._diag: Any = None
        self._last: dict[SocketKey, tuple[int, int]] = {}
        self._owners: dict[int, int] = {}
        self._unowned: set[int] = set()  # inodes no readable fd held at the last scan
        self._scanned_at = 0.0
        self._per_pid: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        self._per_conn: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._unattributed = [0, 0]
        self._poller: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._lock = threading.Lock()  # the poller and read() both poll
        self._worker: ThreadPoolExecutor | None = None

    @classmethod
    def probe(cls) -> Probe:
        if not sys.platform.startswith("linux"):
            return Probe(False, "runs on Linux only", "")
        try:
            from pyroute2.netlink.diag import DiagSocket

            with DiagSocket() as diag:
                diag.bind()
        except ImportError:
            return Probe(False, "pyroute2 is not installed", "pip install pyroute2")
        except OSError as exc:
            return Probe(False, f"sock_diag netlink unavailable: {exc.strerror or exc}", "")
        if os.geteuid() != 0:
            return Probe(True, "sees only your own processes (run with sudo for all)")
        return Probe(True, "TCP counters per socket, every process")

    async def _in_worker(self, fn: Any, *args: Any) -> Any:
        # pyroute2's sync API drives an event loop of its own: keep every netlink
        # call on one dedicated thread, never on the caller's loop.
        # A dump that never completes (pyroute2 waiting on a socket that died under it)
        # must end the backend with one line, not freeze it: hence the timeout.
        # asyncio.wait, not wait_for: a caller that is cancelled (close() stopping the
        # poller) returns at once instead of waiting for the call in the thread to end.
        call = asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)
        done, _ = await asyncio.wait({call}, timeout=CALL_TIMEOUT_S)
        if not done:
            raise BackendError(f"sock_diag call timed out after {CALL_TIMEOUT_S:g} s")
        return call.result()

    def _open(self) -> None:
        from pyroute2.netlink.diag import DiagSocket

        self._diag = DiagSocket()
        self._diag.bind()

    async def start(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sockdiag")
        try:
            await self._in_worker(self._open)
        except (ImportError, OSError) as exc:
            raise BackendError(f"sock_diag netlink unavailable: {exc}") from None
        await self._in_worker(self._poll, True)
        self._poller = asyncio.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self._in_worker(self._poll, False)
            except Exception as exc:  # a netlink error ends the backend with one line
                self._error = f"sock_diag poll failed: {exc}"
                return

    def _dump(self) -> list[TcpSocket]:
        out: list[TcpSocket] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            msgs = self._diag.get_sock_stats(
                family=family, states=OWNED_STATES, extensions=INET_DIAG_INFO_EXT
            )
            out.extend(s for m in msgs if (s := to_socket(m)) is not None)
        return out

    def _poll(self, baseline: bool) -> None:
        """Add every socket's growth since the last poll to the pending per-pid sums."""
        with self._lock:
            self._poll_locked(baseline)

    def _poll_locked(self, baseline: bool) -> None:
        sockets = self._dump()
        current: dict[SocketKey, tuple[int, int]] = {}
        unknown = {s.inode for s in sockets if s.inode not in self._owners}
        now = time.monotonic()
        # Rescan /proc for new sockets, and now and then for ones no fd held last time.
        if unknown - self._unowned or (unknown and now - self._scanned_at > 1.0):
            self._owners = socket_owners()
            self._unowned = {i for i in unknown if i not in self._owners}
            self._scanned_at = now
        for s in sockets:
            key = (s.inode, s.cookie)
            current[key] = (s.acked, s.received)
            if baseline:
                continue
            old_acked, old_received = self._last.get(key, (0, 0))
            sent, recv = max(s.acked - old_acked, 0), max(s.received - old_received, 0)
            if not (sent or recv):
                continue
            pid = self._owners.get(s.inode)
            if pid is None:
                self._unattributed[0] += sent
                self._unattributed[1] += recv
                continue
            self._per_pid[pid][0] += sent
            self._per_pid[pid][1] += recv
            conn = self._per_conn[(pid, s.local, s.remote)]
            conn[0] += sent
            conn[1] += recv
        self._last = current

    async def read(self, interval_s: float) -> TrafficSample:
        if self._error:
            raise BackendError(self._error)
        await self._in_worker(self._poll, False)  # include the bytes up to now
        with self._lock:
            return self._drain(interval_s)

    def _drain(self, interval_s: float) -> TrafficSample:
        procs = [ProcessTraffic(pid, s, r) for pid, (s, r) in self._per_pid.items()]
        conns = [
            ConnectionTraffic(pid, "tcp", local, remote, s, r)
            for (pid, local, remote), (s, r) in self._per_conn.items()
        ]
        (un_sent, un_recv), self._unattributed = self._unattributed, [0, 0]
        self._per_pid.clear()
        self._per_conn.clear()
        return TrafficSample(
            time.time(),
            interval_s,
            procs,
            connections=conns,
            unattributed_sent=un_sent,
            unattributed_recv=un_recv,
        )

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
            self._poller = None
        if self._worker is not None:
            if self._diag is not None:
                with contextlib.suppress(Exception):
                    await self._in_worker(self._diag.close)
            self._worker.shutdown(wait=False)
        self._diag = self._worker = None
