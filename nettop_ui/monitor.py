"""Runs a backend and the collector together and hands each tick to a `Sink`.

The backend produces on the event loop; the collector's blocking psutil work runs in
a worker thread so neither the loop nor a UI on it ever waits on /proc. At most one
sample waits between them: a slow consumer gets longer samples, not a backlog. The sink
runs on that worker thread too, right after the tick it gets: what it does (writing a
line, updating the Prometheus exporter) never holds up the loop either.

Every consumer of `monitor` is a `Sink`: the JSON stream and the one-shot table
(cli.py), the Prometheus exporter, the process-tree recorder (watch.py) and the TUI's
live source (tui/source.py). `Tee` hands each tick to several; `describe_failure` is
the one way a backend failure is put into words.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypedDict

from nettop_ui import profile
from nettop_ui.collector import Collector, Snapshot
from nettop_ui.core import Backend, BackendFailure, IntervalSchedule, TrafficSample
from nettop_ui.profile import ProfileSource

# What ends sampling cleanly (one final sample): ^C, kill, and the terminal hanging up.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Sink(Protocol):
    """What `monitor` hands each tick to, in order, one call at a time, on the collector's
    worker thread (so never while the collector is busy). An exception from a sink ends
    monitoring at once and reaches `monitor`'s caller (no `end` then)."""

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        """One tick: the snapshot the collector made of `sample`."""

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        """The backend died; `snap` is the collector's tick at that moment. `fallback` is
        the backend taking over (`failure.fallback` names it), None when none does: then
        monitoring ends and `end` gets this failure."""

    def end(self, failure: BackendFailure | None) -> None:
        """Monitoring has ended: `failure` is the one no fallback took over from, None for
        a stop (signal, duration, count or the `stop` event)."""


class Tee:
    """A sink that hands every call to each of `sinks`, in order."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        for sink in self.sinks:
            sink.sample(snap, sample)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        for sink in self.sinks:
            sink.failure(snap, failure, fallback)

    def end(self, failure: BackendFailure | None) -> None:
        for sink in self.sinks:
            sink.end(failure)


def describe_failure(failure: BackendFailure) -> str:
    """A backend failure in one line (untrusted text: escape it where it is drawn)."""
    text = f"backend {failure.backend} failed: {failure.message}"
    return text if failure.fallback is None else f"{text}; continuing with {failure.fallback}"


_look_up_names = True  # `--no-resolve` sets it False, once, before monitoring starts


def look_up_names(on: bool) -> None:
    """Whether the collectors this process makes from now on look up the remote hosts'
    names (`--no-resolve`: not). Every mode makes its collector with `collector_options`,
    so the CLI sets this once instead of handing it down each path."""
    global _look_up_names
    _look_up_names = on


class CollectorOptions(TypedDict):
    """The Collector settings `collector_options` decides."""

    per_process_bytes: bool
    has_unattributed: bool
    resolve: bool
    profiler: ProfileSource | None


def collector_options(backend: Backend | type[Backend]) -> CollectorOptions:
    """The Collector settings that follow from what `backend` can measure, whether to
    look up host names (`look_up_names`) and the profiler (`--profile`, profile.enable)."""
    return {
        "per_process_bytes": backend.coverage.per_process,
        "has_unattributed": backend.has_unattributed,
        "resolve": _look_up_names,
        "profiler": profile.active(),
    }


def take_socket_counts(backend: Backend, collector: Collector) -> None:
    """A backend that counts every process's sockets (psutil) leaves that to the
    collector, which counts them every tick as the backend did, looking only at the
    processes that ran since (Collector._socket_counts). run/attach's collector (a
    scope) counts its tree's own; watch.py decides there."""
    if collector.scope is None and backend.leave_socket_counts():
        collector.connection_count_every_s = 0.0


async def monitor(
    backend: Backend,
    interval_s: float,
    sink: Sink,
    *,
    duration_s: float | None = None,
    count: int | None = None,
    collector: Collector | None = None,
    stop: asyncio.Event | None = None,
    schedule: IntervalSchedule | None = None,
    handle_signals: bool = True,
    fallbacks: Sequence[type[Backend]] = (),
    abandon: asyncio.Event | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Sample into `sink` until SIGINT/SIGTERM/SIGHUP, `duration_s`, `count` samples (a
    backend failure is not one) or a backend failure.

    A stop by signal or duration still produces one final sample covering the time
    since the previous one. When the backend fails and `fallbacks` are given (the
    backends `--backend auto` would have picked next), the next one that starts takes
    over; the sink's `failure` gets it, and the totals counted so far are kept. A
    collector made here is closed at the end; one passed in stays its caller's to close.
    Setting `abandon` stops at once, without a final sample (the TUI's quit: nothing
    would show it, and the user waits for the exit). `ready` is awaited before each
    sample is taken (`Backend.produce`).
    """
    owned = collector is None
    collector = collector or Collector(**collector_options(backend), history_size=0)
    take_socket_counts(backend, collector)
    stop = stop or asyncio.Event()
    # One sample waits at most: when the collector (or a UI fed by on_snapshot) is slower
    # than the interval, the backend's next read waits and then covers the longer time,
    # instead of samples piling up in memory (the TUI, slower than 0.2 s ticks on a busy
    # machine, grew by 57 MiB in 9 minutes) and the display falling ever further behind.
    queue: asyncio.Queue[TrafficSample | BackendFailure] = asyncio.Queue(maxsize=1)
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    timer = loop.call_later(duration_s, stop.set) if duration_s is not None else None
    abandon = abandon or asyncio.Event()
    abandoned = asyncio.ensure_future(abandon.wait())
    producer = asyncio.create_task(
        backend.produce(queue, interval_s, stop, schedule, abandon, ready)
    )
    emitted = 0
    remaining = list(fallbacks)
    fatal: BackendFailure | None = None

    def tick(
        item: TrafficSample | BackendFailure, fallback: type[Backend] | None, shown: bool
    ) -> None:
        """On the worker thread: the collector's tick, then the sink's."""
        snap = collector.ingest(item)
        if not shown:
            return
        if isinstance(item, BackendFailure):
            sink.failure(snap, item, fallback)
        else:
            sink.sample(snap, item)

    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, producer, abandoned}, return_when=asyncio.FIRST_COMPLETED)
            if abandon.is_set() or not getter.done():
                getter.cancel()
                break  # abandoned, or the producer returned and the queue is drained
            item = getter.result()
            fallback = None  # the backend taking over from a failed one
            if isinstance(item, BackendFailure) and remaining and not stop.is_set():
                fallback = remaining[0]
                item = dataclasses.replace(item, fallback=fallback.name)
            shown = count is None or emitted < count  # not a failure after the last sample
            await asyncio.to_thread(tick, item, fallback, shown)
            if isinstance(item, BackendFailure):  # an event, not one of the `count` samples
                if fallback is None:
                    fatal = item if shown else None
                    break
                backend = remaining.pop(0)()
                take_socket_counts(backend, collector)
                producer = asyncio.create_task(
                    backend.produce(queue, interval_s, stop, schedule, abandon, ready)
                )
                continue
            emitted += 1
            if count is not None and emitted >= count:
                stop.set()
    finally:
        stop.set()
        abandoned.cancel()
        if timer:
            timer.cancel()
        while not producer.done():  # one waiting to put its final sample must get to its end
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.wait({producer}, timeout=0.05)
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        if owned:
            collector.close()
        if handle_signals:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
    await asyncio.to_thread(sink.end, fatal)
