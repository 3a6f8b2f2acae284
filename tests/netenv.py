"""Real-traffic test environment: a network namespace joined by veth, servers, clients.

The namespace ("the remote host") holds the TCP/UDP servers; clients run in the
root namespace, where every backend (nethogs sniffing the veth, sock_diag, eBPF)
can see them. Loopback servers run in the root namespace too. Each session picks
its own namespace, subnet and ports, so parallel test runs do not collide.

Only loopback and the addresses of this namespace are ever sent to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nettop_ui.core import Backend, BackendFailure, TrafficSample

HERE = Path(__file__).parent
GEN = str(HERE / "trafficgen.py")
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip on a developer's machine, fail in CI: a backend test must never skip there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root")


def spawn_on_pid(pid: int, argv: list[str], **popen: Any) -> subprocess.Popen[Any] | None:
    """Start `argv` on exactly this pid by steering the kernel's next pid (root only);
    None when other processes kept taking it."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        proc = subprocess.Popen(argv, **popen)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


@dataclass
class Client:
    """A running traffic generator: its pid and, once done, the bytes it counted."""

    proc: subprocess.Popen[str]
    name: str
    sent: int = 0
    recv: int = 0
    pid: int = 0

    def wait_done(self, timeout: float = 60) -> Client:
        """Wait until the client has moved its bytes (it may linger afterwards)."""
        assert self.proc.stdout is not None
        line = _readline(self.proc, timeout)
        report = json.loads(line)
        self.pid, self.sent, self.recv = report["pid"], report["sent"], report["recv"]
        return self

    def finish(self, timeout: float = 10) -> None:
        """Let a lingering client exit and reap it."""
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self.proc.wait(timeout)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    if not result or not result[0]:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"traffic generator gave no report: {err[-2000:]}")
    return result[0]


@dataclass
class Network:
    """The namespace, its addresses and the servers listening there and on loopback."""

    ns: str
    host_if: str
    ns_if: str
    host_v4: str
    ns_v4: str
    host_v6: str
    ns_v6: str
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    peers: dict[str, str] = field(default_factory=dict)  # add_peer's: target -> address

    def _server(self, key: str, mode: str, bind: str, in_ns: bool) -> None:
        cmd = [sys.executable, GEN, mode, "--bind", bind, "--port", "0", "--name", f"srv-{key}"]
        if in_ns:
            cmd = ["ip", "netns", "exec", self.ns, *cmd]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        self.servers.append(proc)
        ready = _readline(proc, 20).split()
        assert ready[0] == "ready", ready
        self.ports[key] = int(ready[1])

    def start_servers(self) -> None:
        self._server("tcp4", "tcp-server", self.ns_v4, True)
        self._server("udp4", "udp-server", self.ns_v4, True)
        self._server("tcp6", "tcp-server", self.ns_v6, True)
        self._server("udp6", "udp-server", self.ns_v6, True)
        self._server("tcp-lo", "tcp-server", "127.0.0.1", False)
        self._server("udp-lo", "udp-server", "127.0.0.1", False)

    def server_pid(self, key: str) -> int:
        """The pid of the server started under `key` ("tcp4", "udp-lo", ...)."""
        return self.servers[list(self.ports).index(key)].pid

    def address(self, target: str) -> tuple[str, str]:
        """(address, protocol family key) for a target: v4, v6, lo or an added peer."""
        if target in self.peers:
            return self.peers[target], f"-{target}"
        return {"v4": (self.ns_v4, "4"), "v6": (self.ns_v6, "6"), "lo": ("127.0.0.1", "-lo")}[
            target
        ]

    def add_address(self, last_octet: int) -> str:
        """One more IPv4 address of the namespace, in its /24 (10.213.X.last_octet); adding
        it again is a no-op (the network lives for the whole session)."""
        address = f"{self.ns_v4.rsplit('.', 1)[0]}.{last_octet}"
        if f"{address}/" not in sh("ip", "netns", "exec", self.ns, "ip", "-4", "addr").stdout:
            nsx = ("ip", "netns", "exec", self.ns)
            sh(*nsx, "ip", "addr", "add", f"{address}/24", "dev", self.ns_if)
        return address

    def add_peer(self, target: str, last_octet: int) -> str:
        """Another remote host: an added address with a TCP server, reached with
        `client(..., target=target)`. Returns its address."""
        if target not in self.peers:
            address = self.add_address(last_octet)
            self._server(f"tcp-{target}", "tcp-server", address, True)
            self.peers[target] = address
        return self.peers[target]

    def client(
        self,
        name: str,
        proto: str = "tcp",
        target: str = "v4",
        *,
        up: int = 0,
        down: int = 0,
        conns: int = 1,
        datagrams: int = 0,
        size: int = 1000,
        reply: int = 0,
        pace: float = 0.0,
        rate: float = 0.0,
        hold: float = 0.0,
        linger: bool = True,
        as_nobody: bool = False,
        to: str | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Client:
        """A traffic generator talking to `target`'s server; `to`: the name (or address)
        it connects to instead of the target's address; `wrap`: how to run it (e.g. with a
        test DNS server as its resolver, tests/dnsenv.py)."""
        addr, fam = self.address(target)
        addr = to or addr
        port = self.ports[f"{proto}{fam}"]
        cmd = [sys.executable, GEN, proto, "--name", name, "--to", addr, "--port", str(port)]
        if proto == "tcp":
            cmd += ["--up", str(up), "--down", str(down), "--conns", str(conns)]
            cmd += ["--rate", str(rate), "--hold", str(hold)]
        else:
            cmd += ["--datagrams", str(datagrams), "--size", str(size), "--reply", str(reply)]
            cmd += ["--pace", str(pace)]
        if linger:
            cmd.append("--linger")
        if as_nobody:  # needs root and setpriv (util-linux)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        if wrap is not None:
            cmd = wrap(cmd)
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return Client(proc, name)

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        sh("ip", "link", "del", self.host_if, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


def _free_subnet() -> int:
    used = sh("ip", "-4", "addr").stdout
    start = os.getpid() % 200 + 20
    for i in range(200):
        octet = (start + i) % 230 + 20
        if f"10.213.{octet}." not in used:
            return octet
    raise RuntimeError("no free 10.213.x.0/24 subnet")


@contextlib.contextmanager
def network_env() -> Iterator[Network]:
    """Create the namespace and veth pair, start the servers, tear it all down after."""
    require_root()
    require(shutil.which("ip") is not None, "needs iproute2 (apt install iproute2)")
    octet = _free_subnet()
    tag = f"{os.getpid() % 100000}"
    net = Network(
        ns=f"ntu{tag}",
        host_if=f"ntuh{tag}",
        ns_if=f"ntun{tag}",
        host_v4=f"10.213.{octet}.1",
        ns_v4=f"10.213.{octet}.2",
        host_v6=f"fd07:213:{octet:x}::1",
        ns_v6=f"fd07:213:{octet:x}::2",
    )
    try:
        sh("ip", "netns", "add", net.ns)
        sh("ip", "link", "add", net.host_if, "type", "veth", "peer", "name", net.ns_if)
        sh("ip", "link", "set", net.ns_if, "netns", net.ns)
        sh("ip", "addr", "add", f"{net.host_v4}/24", "dev", net.host_if)
        sh("ip", "-6", "addr", "add", f"{net.host_v6}/64", "dev", net.host_if, "nodad")
        sh("ip", "link", "set", net.host_if, "up")
        nsx = ("ip", "netns", "exec", net.ns)
        sh(*nsx, "ip", "addr", "add", f"{net.ns_v4}/24", "dev", net.ns_if)
        sh(*nsx, "ip", "-6", "addr", "add", f"{net.ns_v6}/64", "dev", net.ns_if, "nodad")
        sh(*nsx, "ip", "link", "set", net.ns_if, "up")
        sh(*nsx, "ip", "link", "set", "lo", "up")
        net.start_servers()
        yield net
    finally:
        net.close()


class BackendRun:
    """Runs a backend's producer in a thread with its own event loop and sums its samples.

    Totals are per pid, straight from the backend (no collector in between), so a
    test checks exactly what the backend measured.
    """

    def __init__(self, backend: Backend, interval_s: float = 0.5) -> None:
        self.backend = backend
        self.interval_s = interval_s
        self.samples: list[TrafficSample] = []
        self.failures: list[BackendFailure] = []
        self.sent: dict[int, int] = defaultdict(int)
        self.recv: dict[int, int] = defaultdict(int)
        self.names: dict[int, str] = {}
        self.unattributed = [0, 0]
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        queue: asyncio.Queue[TrafficSample | BackendFailure] = asyncio.Queue()
        task = asyncio.create_task(self.backend.produce(queue, self.interval_s, self._stop))
        while not (task.done() and queue.empty()):
            try:
                item = await asyncio.wait_for(queue.get(), 0.2)
            except TimeoutError:
                continue
            with self._cond:
                if isinstance(item, BackendFailure):
                    self.failures.append(item)
                else:
                    self._add(item)
                self._cond.notify_all()

    def _add(self, sample: TrafficSample) -> None:
        self.samples.append(sample)
        for t in sample.processes or []:
            self.sent[t.pid] += t.sent_bytes
            self.recv[t.pid] += t.recv_bytes
            if t.name:
                self.names[t.pid] = t.name
        self.unattributed[0] += sample.unattributed_sent or 0
        self.unattributed[1] += sample.unattributed_recv or 0

    def wait_samples(self, n: int, timeout: float = 30) -> None:
        """Wait until n more samples (or a failure) arrive."""
        with self._cond:
            target = len(self.samples) + n
            ok = self._cond.wait_for(lambda: len(self.samples) >= target or self.failures, timeout)
        assert not self.failures, f"backend failed: {self.failures[0].message}"
        assert ok, f"backend produced no sample in {timeout}s"

    def __enter__(self) -> BackendRun:
        self._thread.start()
        self.wait_samples(1, timeout=60)  # the backend is attached and counting
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def totals(self, pid: int) -> tuple[int, int]:
        with self._cond:
            return self.sent.get(pid, 0), self.recv.get(pid, 0)


def within(measured: float, truth: float, tolerance: float) -> bool:
    """measured is within `tolerance` (0.01 = 1%) of truth."""
    if truth == 0:
        return measured == 0
    return abs(measured - truth) / truth <= tolerance
