"""The name a process asked for wins over the PTR record (nettop_ui/dnssnoop.py).

A real dnsmasq (tests/dnsenv.py) answers `www.shop.test` with the peer's address, and
its PTR record names the peer `edge-7.cdn.test`, as a CDN's would. A real client looks up
`www.shop.test` through that server and talks to the peer; nettop-ui must name the host
`www.shop.test` with `name_source: "dns"`. A peer nobody asked a name for keeps its PTR
name. dnsmasq's own answer, captured here, is also parsed directly and then damaged.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import threading
from typing import Any

import pytest

from nettop_ui.dnssnoop import DnsAnswers, parse_answer
from tests.dnsenv import dns_server
from tests.netenv import Network, require_root, within
from tests.test_remote_names import _host, _nettop, _wait_for

ASKED, PTR, OTHER = "www.shop.test", "edge-7.cdn.test", "beta.nettop.test"


def _query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", 0x5A5A, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def _ask(server: str, name: str, qtype: int = 1) -> bytes:
    """dnsmasq's real answer to one query, over UDP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(_query(name, qtype), (server, 53))
        return s.recv(4096)


@pytest.mark.parametrize("backend", ["ebpf", "sockdiag"])
def test_the_name_a_process_asked_for_wins_over_the_ptr_record(net: Network, backend: str) -> None:
    require_root()
    peer, other = net.address("v4")[0], net.address("v6")[0]
    with dns_server(net, {peer: PTR, other: OTHER}, forward={ASKED: peer}) as dns:
        stream = _nettop(dns, "--backend", backend)
        try:
            stream.wait_samples(1, timeout=90)  # attached, and reading DNS answers
            asked = net.client(
                "ntu-dns-asked", "tcp", "v4", up=300_000, down=200_000, hold=1.0,
                to=ASKED, wrap=dns.wrap,
            )  # fmt: skip
            plain = net.client("ntu-dns-plain", "tcp", "v6", up=100_000, down=100_000, hold=1.0)
            asked.wait_done()
            plain.wait_done()

            def named(sample: dict[str, Any]) -> bool:
                a, b = _host(sample, peer), _host(sample, other)
                return a is not None and a["name"] == ASKED and b is not None and b["name"] == OTHER

            _wait_for(stream, named)
            stream.wait_samples(3)
            err = stream.stop()
            final = stream.samples()[-1]
        finally:
            for c in (asked, plain):
                c.finish()
            stream.kill()
    assert stream.proc.returncode == 0, err
    host = _host(final, peer)
    assert host is not None and (host["name"], host["name_source"]) == (ASKED, "dns")
    assert within(host["sent_bytes"], asked.sent, 0.01), (host, asked.sent)
    reverse = _host(final, other)
    assert reverse is not None and (reverse["name"], reverse["name_source"]) == (OTHER, "resolver")
    conns = [c for p in final["processes"] if p["pid"] == asked.pid for c in p["connections"]]
    to_peer = [c for c in conns if c["protocol"] == "tcp"]  # not its own query to dnsmasq
    assert to_peer and {c["remote_name"] for c in to_peer} == {ASKED}


def test_a_real_answer_is_parsed_and_damage_never_raises(net: Network) -> None:
    require_root()
    peer = net.address("v4")[0]
    with dns_server(net, {peer: PTR}, forward={ASKED: peer, "alias.shop.test": peer}) as dns:
        answer = _ask(dns.address, ASKED)
        aaaa = _ask(dns.address, ASKED, qtype=28)
        ptr = _ask(dns.address, ipaddress.ip_address(peer).reverse_pointer, qtype=12)
    found = parse_answer(answer)
    assert [(a, n) for a, n, _ttl in found] == [(peer, ASKED)]
    assert parse_answer(aaaa) == []  # no AAAA record for it
    assert parse_answer(ptr) == []  # a PTR answer names no address
    assert parse_answer(_query(ASKED)) == []  # a query is no answer
    answers = DnsAnswers()
    answers.learn(found, now=0.0)
    assert answers.name_of(peer, now=1.0) == ASKED
    assert answers.name_of(peer, now=1e9) is None  # kept a while, not for ever
    rng = random.Random(7)
    for _ in range(5000):
        damaged = bytearray(answer)
        for _ in range(rng.randint(1, 6)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cut = (
            bytes(damaged[: rng.randint(0, len(damaged))]) if rng.random() < 0.3 else bytes(damaged)
        )
        for address, name, ttl in parse_answer(cut):
            assert socket.inet_pton(socket.AF_INET, address) and len(name) <= 253 and ttl >= 0


def test_a_compression_loop_ends() -> None:
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    loop = header + b"\xc0\x0c" + struct.pack("!HH", 1, 1)  # the question's name points at itself
    assert parse_answer(loop) == []


def test_close_ends_the_reader_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()
    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    answers = DnsAnswers()
    assert answers.start(), answers.unavailable
    answers.close()
    assert answers.thread is not None
    answers.thread.join(5)
    assert not answers.thread.is_alive() and failures == []
