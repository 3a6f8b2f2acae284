"""The traffic generators themselves move exactly what they are told to."""

from __future__ import annotations

import pytest

from tests.netenv import Network


@pytest.mark.parametrize("target", ["v4", "v6", "lo"])
def test_tcp_generator_counts_payload(net: Network, target: str) -> None:
    c = net.client("gen-tcp", "tcp", target, up=300_000, down=200_000, linger=False).wait_done()
    c.finish()
    assert (c.sent, c.recv) == (300_000 + 16, 200_000)


@pytest.mark.parametrize("target", ["v4", "v6", "lo"])
def test_udp_generator_counts_payload(net: Network, target: str) -> None:
    c = net.client(
        "gen-udp", "udp", target, datagrams=50, size=1200, reply=800, linger=False
    ).wait_done()
    c.finish()
    assert (c.sent, c.recv) == (50 * 1200, 50 * 800)
