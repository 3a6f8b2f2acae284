"""nettop_ui.remotes: endpoints split, scopes, per-host totals kept and folded, open counts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nettop_ui.collector import Collector
from nettop_ui.core import ConnectionTraffic, TrafficSample
from nettop_ui.jsonl import remote_record, sample_record
from nettop_ui.remotes import (
    RemoteHostState,
    RemoteTable,
    is_local,
    own_addresses,
    remote_address,
    split_endpoint,
)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("10.0.0.1:443", ("10.0.0.1", 443)),
        ("[fd00::1]:443", ("fd00::1", 443)),
        ("fd00::1", ("fd00::1", None)),
        ("10.0.0.1", ("10.0.0.1", None)),
        ("", ("", None)),
        ("[fe80::1]", ("fe80::1", None)),
    ],
)
def test_split_endpoint(endpoint: str, expected: tuple[str, int | None]) -> None:
    assert split_endpoint(endpoint) == expected


def test_a_mapped_ipv4_address_is_the_ipv4_host() -> None:
    assert remote_address("[::ffff:10.1.2.3]:80") == "10.1.2.3"


def test_loopback_and_own_addresses_are_local() -> None:
    own = own_addresses()
    assert "127.0.0.1" in own  # lo is up on every machine this runs on
    assert is_local("127.0.0.9", frozenset()) and is_local("::1", frozenset())
    assert is_local("0.0.0.0", frozenset())
    assert not is_local("192.0.2.7", own)  # TEST-NET-1: nobody's interface


@dataclass
class Conn:
    protocol: str
    remote: str
    remote_name: str | None = None  # written by RemoteTable.refresh
    remote_scope: str = "remote"


def test_totals_are_kept_after_the_connections_close_and_rates_drop_to_zero() -> None:
    table = RemoteTable()
    table.apply(
        [
            ConnectionTraffic(1, "tcp", "10.0.0.1:5000", "192.0.2.7:443", 1000, 3000),
            ConnectionTraffic(2, "tcp", "10.0.0.1:5001", "192.0.2.7:80", 500, 0),
            ConnectionTraffic(2, "udp", "10.0.0.1:5002", "127.0.0.1:53", 40, 80),
        ],
        dt=0.5,
        now=100.0,
    )
    table.refresh(
        [(1, "curl", [Conn("tcp", "192.0.2.7:443")]), (2, "app", [Conn("tcp", "192.0.2.7:80")])]
    )
    host = table.hosts["192.0.2.7"]
    assert (host.sent_bytes, host.recv_bytes, host.sent_bps, host.recv_bps) == (
        1500,
        3000,
        3000,
        6000,
    )
    assert (host.connection_count, host.protocols, host.ports) == (2, ("tcp",), (80, 443))
    assert host.pids == {1: "curl", 2: "app"} and host.scope == "remote"
    assert table.hosts["127.0.0.1"].scope == "local"
    table.apply([], dt=0.5, now=101.0)
    table.refresh([])
    assert (host.sent_bytes, host.recv_bytes, host.sent_bps, host.connection_count) == (
        1500,
        3000,
        0,
        0,
    )
    assert host.pids == {}


def test_past_the_cap_the_idlest_hosts_are_folded_with_their_bytes() -> None:
    table = RemoteTable(max_hosts=3)
    for i in range(5):
        table.apply(
            [ConnectionTraffic(1, "tcp", "", f"192.0.2.{i}:1", 10, 1)], dt=1.0, now=float(i)
        )
    assert sorted(table.hosts) == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]
    assert (table.folded.hosts, table.folded.sent_bytes, table.folded.recv_bytes) == (2, 20, 2)


def test_every_key_of_a_remote_host_record_is_documented() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "json-schema.md").read_text()
    record = remote_record(RemoteHostState("192.0.2.7", "remote"))
    assert [k for k in record if f"`{k}`" not in docs] == []
    assert "`remotes_folded`" in docs and "`remote_name`" in docs and "`remote_scope`" in docs


def test_after_a_fallback_to_a_backend_without_connections_no_stale_hosts_are_shown() -> None:
    collector = Collector(system=False, gpu=False, count_connections=False, resolve=False)
    try:
        conn = ConnectionTraffic(1, "tcp", "10.0.0.1:5000", "192.0.2.7:443", 100, 300)
        snap = collector.ingest(TrafficSample(time.time(), 0.5, [], [conn]))
        assert snap.remotes is not None and snap.remotes[0].sent_bps == 200
        snap = collector.ingest(TrafficSample(time.time(), 0.5, [], None))  # nethogs now
        assert snap.remotes is None and sample_record(snap)["remotes"] is None
    finally:
        collector.close()


def test_refresh_copies_each_hosts_name_and_scope_onto_its_connections() -> None:
    table = RemoteTable()
    table.apply(
        [
            ConnectionTraffic(1, "tcp", "10.0.0.1:5000", "192.0.2.7:443", 10, 0),
            ConnectionTraffic(1, "udp", "10.0.0.1:5002", "127.0.0.1:53", 1, 1),
        ],
        dt=1.0,
        now=1.0,
    )
    table.hosts["192.0.2.7"].name = "seven.example"
    out, lo = Conn("tcp", "192.0.2.7:443"), Conn("udp", "127.0.0.1:53")
    table.refresh([(1, "curl", [out, lo])])
    assert (out.remote_name, out.remote_scope) == ("seven.example", "remote")
    assert (lo.remote_name, lo.remote_scope) == (None, "local")


def test_a_connection_opened_or_dropped_is_counted_on_the_next_tick() -> None:
    """Hosts are recounted only when something opened or closed: at once, not seconds late."""
    collector = Collector(
        system=False, gpu=False, count_connections=False, resolve=False, connection_keep_s=0.0
    )
    try:
        one = ConnectionTraffic(1, "tcp", "10.0.0.1:5000", "192.0.2.7:443", 10, 0)
        two = ConnectionTraffic(1, "tcp", "10.0.0.1:5001", "192.0.2.7:443", 10, 0)
        snap = collector.ingest(TrafficSample(time.time(), 0.5, [], [one]))
        assert snap.remotes is not None and snap.remotes[0].connection_count == 1
        snap = collector.ingest(TrafficSample(time.time(), 0.5, [], [two]))
        assert snap.remotes is not None and snap.remotes[0].connection_count == 2
        assert snap.remotes[0].sent_bps == 20  # the first one is back at rest
        collector._swept_at = 0.0  # as if SWEEP_CONNECTIONS_S had passed
        snap = collector.ingest(TrafficSample(time.time(), 0.5, [], []))
        assert snap.remotes is not None and snap.remotes[0].connection_count == 0
        assert (snap.remotes[0].sent_bytes, snap.remotes[0].sent_bps) == (20, 0)
    finally:
        collector.close()
