"""nettop_ui.resolve: lookups answered later, cached with expiry, bounded, never blocking.

The lookups are real (`reverse_lookup`): the test session's name service is /etc/hosts
alone (tests/dnsenv.py), where 127.0.0.1 is `localhost` and TEST-NET addresses have no
name, so nothing here sends a DNS query. A resolver that never answers is a function
that blocks here (the bookkeeping around it); tests/test_remote_names.py runs the real
one, a nameserver that swallows every query, under `nettop-ui --json`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nettop_ui.collector import Collector
from nettop_ui.core import ConnectionTraffic, TrafficSample
from nettop_ui.resolve import SOURCE, Resolver, reverse_lookup

LOCALHOST = "127.0.0.1"
NAMELESS = "192.0.2.7"  # TEST-NET-1: in no hosts file


def counted(calls: list[str]) -> Callable[[str], str | None]:
    """The real lookup, recording each address it is asked for."""

    def reverse(address: str) -> str | None:
        calls.append(address)
        return reverse_lookup(address)

    return reverse


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)


def test_a_name_arrives_on_a_later_call_and_is_not_asked_for_again() -> None:
    calls: list[str] = []
    resolver = Resolver(reverse=counted(calls))
    try:
        assert resolver.lookup(LOCALHOST) == (None, None)  # asked for, not known yet
        until(lambda: resolver.lookup(LOCALHOST) == ("localhost", SOURCE))
        for _ in range(100):
            assert resolver.lookup(LOCALHOST) == ("localhost", SOURCE)
        assert calls == [LOCALHOST]
    finally:
        resolver.close()


def test_a_failed_lookup_is_retried_only_after_its_expiry() -> None:
    calls: list[str] = []
    resolver = Resolver(reverse=counted(calls), negative_ttl_s=0.5)
    try:
        resolver.lookup(NAMELESS)
        until(lambda: resolver.pending() == 0)
        for _ in range(100):  # every tick of a busy second
            assert resolver.lookup(NAMELESS) == (None, None)
        assert calls == [NAMELESS]
        time.sleep(0.6)
        resolver.lookup(NAMELESS)
        until(lambda: len(calls) == 2)
    finally:
        resolver.close()


def test_an_expired_name_is_still_shown_while_it_is_looked_up_again() -> None:
    calls: list[str] = []
    resolver = Resolver(reverse=counted(calls), ttl_s=0.3)
    try:
        resolver.lookup(LOCALHOST)
        until(lambda: resolver.lookup(LOCALHOST)[0] == "localhost")
        time.sleep(0.4)
        assert resolver.lookup(LOCALHOST) == ("localhost", SOURCE)
        until(lambda: len(calls) == 2)
    finally:
        resolver.close()


def test_no_address_no_lookup() -> None:
    calls: list[str] = []
    resolver = Resolver(reverse=counted(calls))
    for address in ("", "0.0.0.0", "::", "not-an-address"):
        assert resolver.lookup(address) == (None, None)
    assert resolver.pending() == 0 and calls == []
    resolver.close()


def test_the_cache_keeps_at_most_max_entries() -> None:
    resolver = Resolver(max_entries=10)
    try:
        addresses = [f"127.0.0.{i}" for i in range(1, 41)]
        for a in addresses:
            resolver.lookup(a)
        until(lambda: resolver.pending() == 0)
        assert resolver.cached() == 10
        for a in addresses:  # the evicted ones are asked for again, and evict others
            resolver.lookup(a)
        until(lambda: resolver.pending() == 0)
        assert resolver.cached() == 10
    finally:
        resolver.close()


def test_a_resolver_that_never_answers_blocks_nothing_and_holds_up_no_exit() -> None:
    release = threading.Event()
    started: list[str] = []

    def stuck(address: str) -> str | None:
        started.append(address)
        release.wait()
        return None

    resolver = Resolver(reverse=stuck, workers=4, max_pending=16)
    began = time.monotonic()
    for i in range(1000):
        assert resolver.lookup(f"192.0.2.{i % 250}") == (None, None)
    assert time.monotonic() - began < 0.5  # 1,000 lookups without waiting once
    until(lambda: len(started) == 4)
    assert resolver.pending() == 16  # the rest are asked for again on a later call
    threads = resolver._threads
    assert len(threads) == 4 and all(t.daemon and t.is_alive() for t in threads)
    began = time.monotonic()
    resolver.close()
    assert time.monotonic() - began < 0.1
    assert resolver.lookup("192.0.2.99") == (None, None) and resolver.pending() == 0
    release.set()
    until(lambda: not any(t.is_alive() for t in threads))


def _sample(remote: str) -> TrafficSample:
    conn = ConnectionTraffic(1, "tcp", "127.0.0.1:40000", remote, 100, 200)
    return TrafficSample(ts=time.time(), interval_s=0.1, processes=[], connections=[conn])


def test_the_collector_names_hosts_and_their_connections() -> None:
    """Hosts get their names on a later tick, and each connection its host's; with
    `resolve=False` no name is ever looked up."""
    named = Collector(system=False, gpu=False, count_connections=False)
    numbers = Collector(system=False, gpu=False, count_connections=False, resolve=False)
    try:
        for _ in range(300):
            snap = named.ingest(_sample("127.0.0.1:8080"))
            host = snap.remotes[0] if snap.remotes else None
            if host is not None and host.name is not None:
                break
            time.sleep(0.02)
        assert host is not None and (host.name, host.name_source) == ("localhost", SOURCE)
        conn = next(c for p in named.processes.values() for c in p.connections.values())
        assert (conn.remote_name, conn.remote_scope) == ("localhost", "local")
        for _ in range(20):
            snap = numbers.ingest(_sample("127.0.0.1:8080"))
            time.sleep(0.02)
        assert snap.remotes is not None and snap.remotes[0].name is None
        assert numbers._resolver is None  # never started
    finally:
        named.close()
        numbers.close()
    assert named._resolver is not None and named._resolver.lookup("127.0.0.2") == (None, None)
