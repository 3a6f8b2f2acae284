"""Remote hosts with names, end to end: `nettop-ui --json --connections` as a user runs it,
its resolver a real dnsmasq (tests/dnsenv.py), real traffic to named and unnamed peers.

Each sample's `remotes` must carry every peer's bytes as the generator counted them
(within 1%, on ebpf and on sockdiag), the names dnsmasq serves, and `null` for the peer
it has no name for; `--no-resolve` must ask nothing at all; and a resolver that never
answers must leave the stream on time and the exit fast.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nettop_ui.summary import read_recording
from nettop_ui.tui.replay import ReplaySource
from tests.dnsenv import Resolving, dead_dns_server, dns_server
from tests.netenv import GEN, Client, Network, require_root, within
from tests.test_json_e2e import Stream

ALPHA, BETA = "alpha.nettop.test", "beta.nettop.test"
INTERVAL = 0.5


def _peers(net: Network) -> dict[str, str | None]:
    """Target -> the name dnsmasq gives its address: two named peers, one unnamed."""
    net.add_peer("nameless", 3)
    return {"v4": ALPHA, "v6": BETA, "nameless": None}


def _names(net: Network, peers: dict[str, str | None]) -> dict[str, str]:
    return {net.address(t)[0]: name for t, name in peers.items() if name is not None}


def _nettop(dns: Resolving, *args: str) -> Stream:
    return Stream("--connections", "--interval", str(INTERVAL), *args, wrap=dns.wrap)


def _host(sample: dict[str, Any], address: str) -> dict[str, Any] | None:
    return next((h for h in sample["remotes"] if h["address"] == address), None)


def _wait_for(stream: Stream, ready: Any, timeout: float = 30) -> dict[str, Any]:
    """The first sample (after those already in) for which `ready(sample)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        stream.wait_samples(1)
        last = stream.samples()[-1]
        if ready(last):
            return last
        assert time.monotonic() < deadline, f"not seen in {timeout} s: {last['remotes']}"


@pytest.mark.parametrize("backend", ["ebpf", "sockdiag"])
def test_remote_hosts_carry_names_and_the_generators_bytes(net: Network, backend: str) -> None:
    require_root()
    peers = _peers(net)
    with dns_server(net, _names(net, peers)) as dns:
        stream = _nettop(dns, "--backend", backend)
        clients: dict[str, Client] = {}
        try:
            stream.wait_samples(1, timeout=90)  # the backend is attached and counting
            asked = dns.queries()
            clients = {
                target: net.client(
                    f"ntu-name-{target}", "tcp", target, up=600_000, down=900_000, hold=1.0
                )
                for target in peers
            }
            for c in clients.values():
                c.wait_done()
            addresses = {t: net.address(t)[0] for t in peers}

            def named(sample: dict[str, Any]) -> bool:
                hosts = {t: _host(sample, a) for t, a in addresses.items()}
                return all(h is not None and h["name"] == peers[t] for t, h in hosts.items())

            _wait_for(stream, named)
            stream.wait_samples(4)  # past the clients' hold: their last bytes are in
            err = stream.stop()
            final = stream.samples()[-1]
        finally:
            for c in clients.values():
                c.finish()
            stream.kill()
    assert stream.proc.returncode == 0, err
    assert "Traceback" not in err
    assert dns.queries() > asked, "the names came from dnsmasq"
    for target, name in peers.items():
        host = _host(final, addresses[target])
        assert host is not None
        c = clients[target]
        assert within(host["sent_bytes"], c.sent, 0.01), (target, host, c.sent)
        assert within(host["recv_bytes"], c.recv, 0.01), (target, host, c.recv)
        assert host["name"] == name and host["scope"] == "remote"
        assert host["name_source"] == ("resolver" if name else None)
        conns = [
            conn
            for p in final["processes"]
            if p["pid"] == c.pid
            for conn in p["connections"]
            if addresses[target] in conn["remote"]
        ]
        assert conns, f"{target}: the client's connections are listed"
        assert {(conn["remote_name"], conn["remote_scope"]) for conn in conns} == {(name, "remote")}


def test_no_resolve_asks_nothing_and_shows_numbers(net: Network) -> None:
    require_root()
    peers = _peers(net)
    with dns_server(net, _names(net, peers)) as dns:
        stream = _nettop(dns, "--backend", "sockdiag", "--no-resolve")
        stream.wait_samples(1, timeout=60)
        asked = dns.queries()
        c = net.client("ntu-noname", "tcp", "v4", up=300_000, down=300_000, hold=1.0)
        try:
            c.wait_done()
            _wait_for(stream, lambda s: _host(s, net.ns_v4) is not None)
            stream.wait_samples(6)  # time enough for several lookups, were any made
            err = stream.stop()
        finally:
            c.finish()
            stream.kill()
    assert stream.proc.returncode == 0, err
    host = _host(stream.samples()[-1], net.ns_v4)
    assert host is not None and within(host["sent_bytes"], c.sent, 0.01)
    assert (host["name"], host["name_source"]) == (None, None)
    assert dns.queries() == asked, "--no-resolve sent a query"


def test_a_resolver_that_never_answers_leaves_the_stream_on_time(net: Network) -> None:
    require_root()
    peers = _peers(net)
    with dead_dns_server(net) as dns:
        stream = _nettop(dns, "--backend", "sockdiag")
        clients: list[Client] = []
        try:
            stream.wait_samples(1, timeout=60)
            start = len(stream.samples())
            clients = [
                net.client(f"ntu-dead-{t}", "tcp", t, up=200_000, down=200_000, hold=1.0)
                for t in peers
            ]
            for c in clients:
                c.wait_done()
            stream.wait_samples(12)  # six seconds: every lookup is stuck the whole time
            asked = dns.queries()
            stopped = time.monotonic()
            stream.proc.send_signal(signal.SIGINT)
            _, err = stream.proc.communicate(timeout=30)
            quit_s = time.monotonic() - stopped
        finally:
            for c in clients:
                c.finish()
            stream.kill()
    assert stream.proc.returncode == 0, err
    assert asked > 0, "lookups were sent to the dead resolver"
    samples = stream.samples()[start:]
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(samples)]
    # On time: no interval stretched by a lookup waiting on the resolver (~10 s each).
    assert max(gaps) < 4 * INTERVAL, gaps
    assert sum(gaps) / len(gaps) < 1.5 * INTERVAL, gaps
    for target in peers:
        host = _host(samples[-1], net.address(target)[0])
        assert host is not None and host["name"] is None
    assert quit_s < 3.0, f"quitting took {quit_s:.1f} s with lookups stuck in the resolver"


def _cli(*args: str) -> str:
    cmd = [sys.executable, "-m", "nettop_ui", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def _record_run(
    net: Network, dns: Resolving, recording: Path, *options: str
) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """`nettop-ui run` of a client to the v4 peer, while another process outside the tree
    talks to the same peer: the client's own count, its host in the last sample, and
    the recording."""
    port = net.ports["tcp4"]
    cmd = f"tcp --name ntu-rec --to {net.ns_v4} --port {port} --up 500000 --down 700000 --hold 1"
    run = f"run --backend sockdiag --interval 0.3 --output {recording} {' '.join(options)} --"
    outsider = net.client("ntu-outside", "tcp", "v4", up=900_000, rate=300_000, hold=1.0)
    try:
        done = subprocess.run(
            dns.wrap([sys.executable, "-m", "nettop_ui", *run.split(), sys.executable, GEN,
                      *cmd.split()]),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        outsider.wait_done()
    finally:
        outsider.finish()
    assert done.returncode == 0, done.stderr
    records, problem = read_recording(str(recording))
    assert problem is None
    host = _host([r for r in records if r["type"] == "sample"][-1], net.ns_v4)
    assert host is not None and outsider.sent > host["sent_bytes"]  # the outsider's would show
    return json.loads(done.stdout), host, records


def test_a_run_recording_carries_the_trees_hosts_to_summary_and_replay(
    net: Network, tmp_path: Path
) -> None:
    """`run --output`: each sample's `remotes` holds the tree's own bytes per host (not
    those of another process talking to the same host meanwhile), with names; `summary`
    lists the host, and `replay` builds the frame's remote hosts from the recording."""
    require_root()
    peers = _peers(net)
    recording = tmp_path / "run.jsonl"
    with dns_server(net, _names(net, peers)) as dns:
        truth, host, records = _record_run(net, dns, recording)
    assert host is not None and (host["name"], host["name_source"]) == (ALPHA, "resolver")
    assert within(host["sent_bytes"], truth["sent"], 0.01), (host, truth)
    assert within(host["recv_bytes"], truth["recv"], 0.01), (host, truth)

    assert f"{ALPHA} ({net.ns_v4})" in _cli("summary", str(recording))
    top = json.loads(_cli("summary", "--json", str(recording)))["remotes"][0]
    assert (top["address"], top["name"], top["sent_bytes"]) == (
        net.ns_v4,
        ALPHA,
        host["sent_bytes"],
    )

    source = ReplaySource(records, str(recording))
    frame = source.frame_at(len(source) - 1)
    assert frame.remotes is not None
    view = next(v for v in frame.remotes if v.address == net.ns_v4)
    assert (view.name, view.sent_bytes, view.recv_bytes) == (
        ALPHA,
        host["sent_bytes"],
        host["recv_bytes"],
    )
    assert view.pids == ((truth["pid"], "ntu-rec"),)


def test_run_no_resolve_records_numbers_only(net: Network, tmp_path: Path) -> None:
    require_root()
    peers = _peers(net)
    with dns_server(net, _names(net, peers)) as dns:
        asked = dns.queries()
        truth, host, _records = _record_run(net, dns, tmp_path / "run.jsonl", "--no-resolve")
        assert dns.queries() == asked, "--no-resolve sent a query"
    assert host is not None and (host["name"], host["name_source"]) == (None, None)
    assert within(host["sent_bytes"], truth["sent"], 0.01), (host, truth)
