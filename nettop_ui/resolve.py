"""Host names for remote addresses: reverse lookups through the system resolver, off
the caller's thread.

`Resolver.lookup(address)` never blocks. It answers from a cache; an address not there
(or whose answer has expired) is queued for one of a few worker threads, and the caller
gets what is known meanwhile (nothing, the first time; the old name while a known one is
looked up again). The workers ask the system resolver (glibc's gethostbyaddr_r), so
/etc/hosts, nsswitch.conf and resolv.conf's DNS servers apply as for any other program.
Not `socket.getnameinfo`, the same lookup: behind a DNS server that never answered, its
calls ran one at a time and stalled the collector's thread for 30 s
(tests/test_remote_names.py), where `socket.gethostbyaddr`'s run side by side.

Everything is bounded: `workers` threads, at most `max_pending` lookups waiting or under
way (an address refused for now is asked for again on a later call), at most
`max_entries` answers cached (the least recently asked go first). A name is kept
`ttl_s`, a failure `negative_ttl_s`, so a resolver that fails or never answers is not
asked again every tick. The workers are daemon threads: one stuck in a resolver that
never answers cannot hold up the exit, and `close` lets them go without waiting.
"""

from __future__ import annotations

import functools
import ipaddress
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from nettop_ui.dnssnoop import SOURCE as DNS_SOURCE
from nettop_ui.dnssnoop import DnsAnswers

SOURCE = "resolver"  # RemoteHostState.name_source of a name found here
WORKERS = 4
MAX_PENDING = 256
MAX_ENTRIES = 8192  # above RemoteTable's 4,096 hosts
TTL_S = 600.0
NEGATIVE_TTL_S = 120.0
MAX_NAME = 253  # the longest DNS name; anything longer is no host name


def reverse_lookup(address: str) -> str | None:
    """The name the system resolver gives `address` (a PTR record, /etc/hosts), or None."""
    try:
        name = socket.gethostbyaddr(address)[0]
    except (OSError, UnicodeError, ValueError):
        return None
    return name if name and len(name) <= MAX_NAME else None


@functools.lru_cache(maxsize=8192)
def can_look_up(address: str) -> bool:
    """An IP address with a host behind it: not "" (no remote endpoint), not 0.0.0.0/::."""
    try:
        return not ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


class Resolver:
    """A bounded, caching pool of reverse lookups; see the module docstring."""

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        max_pending: int = MAX_PENDING,
        max_entries: int = MAX_ENTRIES,
        ttl_s: float = TTL_S,
        negative_ttl_s: float = NEGATIVE_TTL_S,
        reverse: Callable[[str], str | None] = reverse_lookup,
        answers: DnsAnswers | None = None,
    ) -> None:
        self.answers = answers  # the names processes asked for, where they can be read
        self.workers = workers
        self.max_pending = max_pending
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._reverse = reverse
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()  # -> (name, until)
        self._pending: set[str] = set()  # queued or being looked up
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._version = 0  # bumped when an answer changes a name

    def lookup(self, address: str) -> tuple[str | None, str | None]:
        """(name, source) when a name is known, else (None, None); never waits.

        A name a process asked for (`answers`, source "dns") wins over the reverse
        lookup's (SOURCE), which for a CDN or cloud address names the provider."""
        if not can_look_up(address):
            return None, None
        if self.answers is not None:
            asked = self.answers.name_of(address)
            if asked is not None:
                return asked, DNS_SOURCE
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(address)
            if entry is None:
                name = None
                self._ask(address)
            else:
                self._cache.move_to_end(address)
                name, until = entry
                if until <= now:
                    self._ask(address)
        return (name, SOURCE) if name is not None else (None, None)

    def _ask(self, address: str) -> None:
        """Queue a lookup of `address` unless one is under way or too many are (lock held)."""
        if self._closed or address in self._pending or len(self._pending) >= self.max_pending:
            return
        if not self._threads:
            for i in range(self.workers):
                t = threading.Thread(target=self._work, name=f"nettop-ui-resolve-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        self._pending.add(address)
        self._queue.put(address)

    def _work(self) -> None:
        while (address := self._queue.get()) is not None:
            name = self._reverse(address)
            until = time.monotonic() + (self.ttl_s if name is not None else self.negative_ttl_s)
            with self._lock:
                self._pending.discard(address)
                if self._closed:
                    continue
                if self._cache.get(address, (None,))[0] != name:
                    self._version += 1
                self._cache[address] = (name, until)
                self._cache.move_to_end(address)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)

    @property
    def version(self) -> int:
        """Changes whenever a lookup would answer differently than before for some address
        (a name arrived, changed, or a process asked DNS for one), so a caller can skip
        asking again for every host while nothing changed."""
        answers = self.answers.version if self.answers is not None else 0
        return self._version + answers

    def pending(self) -> int:
        """Lookups queued or under way."""
        with self._lock:
            return len(self._pending)

    def cached(self) -> int:
        """Answers (names and failures) in the cache."""
        with self._lock:
            return len(self._cache)

    def close(self) -> None:
        """Stop looking up: queued lookups are dropped, idle workers end, one stuck in the
        resolver ends when it returns (a daemon thread, so the exit never waits for it)."""
        if self.answers is not None:
            self.answers.close()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._pending.clear()
            for _ in self._threads:
                self._queue.put(None)


def start_resolver() -> Resolver:
    """A Resolver that also reads the DNS answers processes get, where allowed (root or
    CAP_NET_RAW on Linux); elsewhere reverse lookups alone."""
    answers = DnsAnswers()
    return Resolver(answers=answers if answers.start() else None)
