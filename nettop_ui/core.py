"""The contract between backends and the collector.

A backend measures network bytes per process and publishes them as `TrafficSample`s
(per-PID byte *deltas* over one interval) on an asyncio queue. It knows nothing of
psutil facts, history or rendering; the collector joins its samples with those.
Nothing here imports Textual: this module is shared by every sink.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar


def sum_known(values: Iterable[Any]) -> Any:
    """Sum of the known values; None (unknown) when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


@dataclass(frozen=True, slots=True)
class ProcessTraffic:
    """Bytes one process moved during one interval, as the backend saw them.

    `name` is the backend's own name for the process (the kernel comm for ebpf,
    argv[0] for nethogs); the collector prefers the live process's name and falls
    back to this one once the process has exited. `note`: what the backend knows it
    gets wrong about these bytes, one line for people (nethogs on loopback, say).
    """

    pid: int
    sent_bytes: int
    recv_bytes: int
    name: str | None = None
    note: str | None = None


def merge_by_process(deltas: list[ProcessTraffic]) -> list[ProcessTraffic]:
    """Sum deltas that name the same (pid, name): several reads folded into one sample."""
    merged: dict[tuple[int, str | None], list[int]] = {}
    for t in deltas:
        acc = merged.setdefault((t.pid, t.name), [0, 0])
        acc[0] += t.sent_bytes
        acc[1] += t.recv_bytes
    return [ProcessTraffic(pid, s, r, name=n) for (pid, n), (s, r) in merged.items()]


@dataclass(frozen=True, slots=True)
class ConnectionTraffic:
    """Bytes moved over one connection (protocol, local and remote endpoint) in one interval."""

    pid: int
    protocol: str  # "tcp", "udp", "icmp", "raw", "packet", ...
    local: str  # "10.0.0.1:443", "[fd00::1]:443", "" when unknown
    remote: str
    sent_bytes: int
    recv_bytes: int


@dataclass(slots=True)
class TrafficSample:
    """One interval of traffic from one backend.

    `processes` is None when the backend cannot attribute bytes to processes at all
    (psutil); then every per-process byte figure is unknown, not zero.
    `connections` is None when the backend has no per-connection view.
    `unattributed_*` counts bytes the backend saw but could not tie to a process
    (nethogs's "unknown TCP"); None when the backend has no such notion.
    `connection_counts` maps pid to its number of open inet connections, for
    backends that see sockets but not bytes.
    """

    ts: float
    interval_s: float
    processes: list[ProcessTraffic] | None
    connections: list[ConnectionTraffic] | None = None
    unattributed_sent: int | None = None
    unattributed_recv: int | None = None
    connection_counts: dict[int, int] | None = None


@dataclass(frozen=True, slots=True)
class BackendFailure:
    """Put on the queue instead of a sample when a backend stops working."""

    backend: str
    message: str
    ts: float = field(default_factory=time.time)
    fallback: str | None = None  # the backend taking over, if any


@dataclass(frozen=True, slots=True)
class Probe:
    """Whether a backend can run here; if not, why and what would fix it."""

    available: bool
    reason: str = ""
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a backend measures. Shown in `--list-backends` and the JSON meta line."""

    protocols: tuple[str, ...]
    directions: tuple[str, ...] = ("sent", "recv")
    per_process: bool = True
    per_connection: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "protocols": list(self.protocols),
            "directions": list(self.directions),
            "per_process": self.per_process,
            "per_connection": self.per_connection,
            "note": self.note,
        }


class BackendError(Exception):
    """A backend cannot start or has stopped; the message is one line meant for the user."""


class Backend(abc.ABC):
    """A source of per-process network byte counts.

    Subclasses set the class attributes and implement `start`, `read` and `close`;
    `produce` drives them on an interval. `read` returns the deltas since the
    previous `read` (the first `read` returns the deltas since `start`).
    """

    name: ClassVar[str]
    platforms: ClassVar[tuple[str, ...]]  # sys.platform prefixes: "linux", "darwin"
    layer: ClassVar[str]  # what a byte means: "socket payload", "wire frames", ...
    coverage: ClassVar[Coverage]
    # Lower is better; `--backend auto` takes the first available in this order.
    # The order follows the accuracy measured by bench/accuracy (docs/benchmarks.md).
    accuracy_rank: ClassVar[int] = 100
    interval_s: float = 1.0  # set by produce() before start(), for backends that need it
    has_unattributed: ClassVar[bool] = False  # reports bytes it cannot tie to a process
    summary: ClassVar[str] = ""

    @classmethod
    def supports_platform(cls, platform: str = sys.platform) -> bool:
        return any(platform.startswith(p) for p in cls.platforms)

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Probe:
        """Check, without side effects that last, whether this backend can run here."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin counting. Raises BackendError with a one-line reason when it cannot."""

    @abc.abstractmethod
    async def read(self, interval_s: float) -> TrafficSample:
        """Return the traffic since the last read. Raises BackendError when broken."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop counting and release everything (child processes, BPF programs)."""

    def leave_socket_counts(self) -> bool:
        """Stop counting open sockets per process: the collector counts them instead (a
        `run` tree's own, cheaper than the whole machine's; or the machine's, skipping
        the processes that have not run); True if this backend counted them."""
        return False

    async def produce(
        self,
        queue: asyncio.Queue[TrafficSample | BackendFailure],
        interval_s: float,
        stop: asyncio.Event,
        interval_for: IntervalSchedule | None = None,
        abandon: asyncio.Event | None = None,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Publish one sample per interval until `stop` is set, then one final sample,
        none when `abandon` is set too (the user quit: nothing would show it). Each
        sample but the final one first awaits `ready` (the TUI holds it while keys come
        in); the sample then covers the longer time.

        Any failure becomes a BackendFailure on the queue; this never raises.
        """
        self.interval_s = interval_s
        try:
            await self.start()
            started = time.monotonic()
            last = started
            while True:
                wait = interval_for(time.monotonic() - started) if interval_for else interval_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                if ready is not None and not stop.is_set():
                    await ready()
                if abandon is not None and abandon.is_set():
                    return
                now = time.monotonic()
                await queue.put(await self.read(now - last))
                last = now
                if stop.is_set():
                    return
        except BackendError as exc:
            await queue.put(BackendFailure(self.name, str(exc)))
        except Exception as exc:  # a bug in a backend must not take the monitor down
            await queue.put(BackendFailure(self.name, f"{type(exc).__name__}: {exc}"))
        finally:
            with contextlib.suppress(Exception):
                await self.close()


class IntervalSchedule:
    """The sampling interval as a function of time since start.

    With only a base interval the schedule is fixed. With `max_s` it samples at the
    base rate for the first second, ramps linearly to `max_s` by `ramp_end_s`, and
    stays at `max_s` after that.
    """

    def __init__(self, base_s: float, max_s: float | None = None, ramp_end_s: float = 10.0):
        self.base_s = base_s
        self.max_s = max_s if max_s is not None else base_s
        self.ramp_end_s = ramp_end_s

    def __call__(self, elapsed_s: float) -> float:
        if self.max_s <= self.base_s or elapsed_s <= 1.0:
            return self.base_s
        if elapsed_s >= self.ramp_end_s:
            return self.max_s
        frac = (elapsed_s - 1.0) / (self.ramp_end_s - 1.0)
        return self.base_s + frac * (self.max_s - self.base_s)
