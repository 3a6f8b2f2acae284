"""Name service for the tests: a session that never asks the machine's DNS servers, and
real DNS servers inside the test network namespace that one command can be pointed at.

nettop-ui looks up the names of the remote hosts it sees (nettop_ui/resolve.py). Tests
send traffic only to loopback and to their own namespaces, so those lookups must not
reach the machine's DNS servers either:

- `isolate_session()` (conftest.py calls it first thing) moves the test session into a
  mount namespace of its own whose /etc/nsswitch.conf says `hosts: files`: every
  nettop-ui a test starts answers reverse lookups from /etc/hosts alone (`127.0.0.1` is
  `localhost`) and sends no DNS query. The machine's own files are never changed.

- `dns_server(net, names)`: a real dnsmasq in the namespace of `tests/netenv.py`,
  listening on an address of its own there (so its queries never add to a peer's bytes),
  serving PTR records for `names` ({address: name}), NXDOMAIN for every other private
  address (--bogus-priv), reading no /etc/hosts and asking no upstream server.
  `dead_dns_server(net)`: a UDP socket there that takes every query and never answers.

- `Resolving.wrap(cmd)`: the argument list that runs `cmd` with that server as its only
  resolver. The command stays in the root network namespace, next to the test clients
  and where every backend sees them (and, unlike under `ip netns exec`, tracefs stays
  mounted for ebpf); it only gets a mount namespace of its own in which resolv.conf,
  nsswitch.conf (`hosts: files dns`) and a two-line /etc/hosts are bind-mounted over the
  session's. A TUI test runs `wrap([...nettop-ui...])` in tmux the same way:

      def test_names(net: Network, tmp_path: Path) -> None:
          with dns_server(net, {net.ns_v4: "alpha.nettop.test"}) as dns:
              proc = subprocess.Popen(dns.wrap([sys.executable, "-m", "nettop_ui", "--json"]))
              ...
              assert dns.queries() > 0  # PTR queries dnsmasq has answered so far
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netenv import IN_CI, Network, _readline, require, require_root, sh

CLONE_NEWNS = 0x00020000
DNS_OCTET = 53  # the namespace address a DNS server listens on (10.213.X.53)
NSSWITCH = Path("/etc/nsswitch.conf")
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
# Takes every datagram on ADDRESS:53, logs it on stderr as dnsmasq would, never answers.
SWALLOW = """\
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    s.recvfrom(65536)
    print("query[?] swallowed", file=sys.stderr, flush=True)
"""


def _nsswitch(hosts: str) -> str:
    """The machine's nsswitch.conf with its `hosts:` line replaced (users, groups stay)."""
    lines = NSSWITCH.read_text().splitlines() if NSSWITCH.exists() else []
    kept = [line for line in lines if not line.lstrip().startswith("hosts:")]
    return "\n".join([*kept, f"hosts: {hosts}"]) + "\n"


def isolate_session() -> None:
    """Give this process (and every process it starts from now on) /etc/hosts as its only
    name service. Root only (the network tests need root anyway); call it before any
    thread starts, since a mount namespace is per thread until then."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        problem = f"cannot unshare the mount namespace: {os.strerror(ctypes.get_errno())}"
        if IN_CI:
            raise OSError(problem)
        print(f"tests/dnsenv.py: {problem}; lookups may reach this machine's DNS", file=sys.stderr)
        return
    sh("mount", "--make-rprivate", "/")
    own = Path(tempfile.mkdtemp(prefix="ntu-nsswitch-")) / "nsswitch.conf"
    own.write_text(_nsswitch("files"))
    sh("mount", "--bind", str(own), str(NSSWITCH))


@dataclass
class Resolving:
    """A DNS server in the test namespace and the files that make a command use it."""

    address: str
    files: Path  # resolv.conf, nsswitch.conf and hosts for `wrap`
    proc: subprocess.Popen[str]
    log: Path  # the server's stderr (dnsmasq logs each query there)
    kept: str | None = None  # the log's text, kept once the server is gone

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` with this server as its only resolver (see the module docstring)."""
        mounts = " && ".join(
            f'mount --bind "{self.files / name}" /etc/{name}'
            for name in ("resolv.conf", "nsswitch.conf", "hosts")
        )
        script = f'{mounts} && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *cmd]

    def queries(self) -> int:
        """Queries the server has received so far (all reverse lookups here); after the
        `with` block, all it received."""
        text = self.kept if self.kept is not None else self.log.read_text(errors="replace")
        return text.count("query[")


@contextlib.contextmanager
def _resolving(net: Network, server: list[str], options: str) -> Iterator[Resolving]:
    require(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    address = net.add_address(DNS_OCTET)
    with tempfile.TemporaryDirectory(prefix="ntu-dns-") as tmp:
        files = Path(tmp)
        (files / "resolv.conf").write_text(f"nameserver {address}\n{options}")
        (files / "nsswitch.conf").write_text(_nsswitch("files dns"))
        (files / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
        log = files / "server.log"
        with log.open("w") as err:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", net.ns, *server],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        dns = Resolving(address, files, proc, log)
        try:
            yield dns
        finally:
            proc.kill()
            proc.wait()
            dns.kept = log.read_text(errors="replace")


@contextlib.contextmanager
def dns_server(
    net: Network, names: dict[str, str], forward: dict[str, str] | None = None
) -> Iterator[Resolving]:
    """dnsmasq in `net`'s namespace answering PTR queries for `names` ({address: name})
    and A/AAAA queries for `forward` ({name: address}, no PTR record made for those);
    yields once it answers the first PTR query."""
    require_root()
    require(os.access(DNSMASQ, os.X_OK), "needs dnsmasq (apt install dnsmasq-base)")
    assert names, "at least one name: the server is ready once it answers it"
    address = net.add_address(DNS_OCTET)
    records = [
        f"--ptr-record={ipaddress.ip_address(a).reverse_pointer},{name}"
        for a, name in names.items()
    ] + [f"--address=/{name}/{a}" for name, a in (forward or {}).items()]
    with tempfile.TemporaryDirectory(prefix="ntu-dnsmasq-") as tmp:
        server = [
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", f"--pid-file={tmp}/pid",
            "--no-hosts", "--no-resolv", "--bogus-priv", "--bind-interfaces",
            f"--listen-address={address}", "--port=53", "--user=root",
            "--log-queries", "--log-facility=-", *records,
        ]  # fmt: skip
        # Failing fast (one try, one second) keeps a broken setup from looking slow.
        with _resolving(net, server, "options timeout:1 attempts:1\n") as dns:
            _wait_answering(dns, *next(iter(names.items())))
            yield dns


def _wait_answering(dns: Resolving, address: str, name: str, timeout: float = 20) -> None:
    probe = "import socket, sys; print(socket.gethostbyaddr(sys.argv[1])[0])"
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(
            dns.wrap([sys.executable, "-c", probe, address]), capture_output=True, text=True
        )
        if found.stdout.strip() == name:
            return
        if dns.proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"dnsmasq does not answer: {found.stderr[-500:]} {dns.log.read_text()[-2000:]}"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def dead_dns_server(net: Network) -> Iterator[Resolving]:
    """A nameserver that takes every query and never answers (resolv.conf's default
    timeouts: a lookup waits about ten seconds before it fails)."""
    require_root()
    swallow = [sys.executable, "-c", SWALLOW, net.add_address(DNS_OCTET)]
    with _resolving(net, swallow, "") as dns:
        assert _readline(dns.proc, 20).strip() == "ready"
        yield dns
