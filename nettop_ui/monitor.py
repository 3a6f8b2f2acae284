"""Runs a backend and the collector together and hands each snapshot to a callback.

The backend produces on the event loop; the collector's blocking psutil work runs in
a worker thread so neither the loop nor a UI on it ever waits on /proc. At most one
sample waits between them: a slow consumer gets longer samples, not a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Callable, Sequence

from nettop_ui.collector import Collector, Snapshot
from nettop_ui.core import Backend, BackendFailure, IntervalSchedule, TrafficSample

# What ends sampling cleanly (one final sample): ^C, kill, and the terminal hanging up.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def collector_options(backend: Backend | type[Backend]) -> dict[str, bool]:
    """The Collector settings that follow from what `backend` can measure."""
    return {
        "per_process_bytes": backend.coverage.per_process,
        "has_unattributed": backend.has_unattributed,
    }


async def monitor(
    backend: Backend,
    interval_s: float,
    on_snapshot: Callable[[Snapshot, TrafficSample | BackendFailure], None],
    *,
    duration_s: float | None = None,
    count: int | None = None,
    collector: Collector | None = None,
    stop: asyncio.Event | None = None,
    schedule: IntervalSchedule | None = None,
    handle_signals: bool = True,
    fallbacks: Sequence[type[Backend]] = (),
) -> Collector:
    """Sample until SIGINT/SIGTERM, `duration_s`, `count` samples (a backend failure is
    not one) or a backend failure.

    A stop by signal or duration still produces one final sample covering the time
    since the previous one. When the backend fails and `fallbacks` are given (the
    backends `--backend auto` would have picked next), the next one that starts takes
    over; the failure reaches `on_snapshot` with its `fallback` field naming it, and
    the totals counted so far are kept. A collector made here is closed at the end;
    one passed in stays its caller's to close.
    """
    owned = collector is None
    collector = collector or Collector(**collector_options(backend))
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
    producer = asyncio.create_task(backend.produce(queue, interval_s, stop, schedule))
    emitted = 0
    remaining = list(fallbacks)
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break  # the producer returned and the queue is drained
            item = getter.result()
            if isinstance(item, BackendFailure) and remaining and not stop.is_set():
                item = dataclasses.replace(item, fallback=remaining[0].name)
            snap = await asyncio.to_thread(collector.ingest, item)
            if count is None or emitted < count:
                on_snapshot(snap, item)
            if isinstance(item, BackendFailure):  # an event, not one of the `count` samples
                if not remaining or stop.is_set():
                    break
                backend = remaining.pop(0)()
                producer = asyncio.create_task(backend.produce(queue, interval_s, stop, schedule))
                continue
            emitted += 1
            if count is not None and emitted >= count:
                stop.set()
    finally:
        stop.set()
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
    return collector
