"""Where frames come from: a live backend + collector, or a script (tests, screenshots).

A source runs as a Textual worker on the app's event loop. The live source drives
`nettop_ui.monitor.monitor` as its sink: the collector's tick and the sink's calls run
in a worker thread, and each finished tick reaches the UI, back on the event loop, as
one `Frame` through the `emit` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence

from nettop_ui.collector import Snapshot
from nettop_ui.core import Backend, BackendFailure, TrafficSample
from nettop_ui.monitor import Sink, Tee, collector_options, monitor
from nettop_ui.tui.frame import Frame, FrameCollector, build_frame

Emit = Callable[[Frame], None]

# While keys come in, the next sample waits until none has come for QUIET_S (a person
# types a key every 0.1 to 0.3 s), at most HOLD_S: sampling then never takes the CPU
# and the GIL from the keys (issue #15: a filter typed on a saturated machine). The
# main screen's footer waits the same way (main_screen.KeysFooter).
QUIET_S = 0.5
HOLD_S = 2.0


class FrameSource:
    """Base class: `run(emit)` until `stop()`; `set_history_keys` asks for full process
    histories."""

    backend_name: str = "scripted"
    layer: str = "scripted"
    per_connection: bool = False
    per_host: bool = False  # True: each process's remote hosts, without connections (history)
    per_process: bool = True  # False: the backend cannot tie bytes to processes (psutil)
    interval_s: float = 1.0

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._monitor_stop = asyncio.Event()  # set by monitor() itself when it ends
        self._abandon = asyncio.Event()  # `quit`: no final sample
        self.watch_keys: frozenset[str] = frozenset()
        self._typed_at = -math.inf  # time.monotonic() of the last key

    def typed(self) -> None:
        """A key has come in (from any thread: the terminal's input thread)."""
        self._typed_at = time.monotonic()

    def typing_for(self) -> float:
        """Seconds until keys have paused for QUIET_S (0: they have)."""
        return max(0.0, self._typed_at + QUIET_S - time.monotonic())

    async def after_typing(self) -> None:
        """Return once no key has come for QUIET_S, HOLD_S at the latest, or on a stop."""
        deadline = time.monotonic() + HOLD_S
        while not self._stop.is_set():
            wait = min(self.typing_for(), deadline - time.monotonic())
            if wait <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)

    def set_history_keys(self, keys: Iterable[str]) -> None:
        """Ask for the full history of these row keys in the next frames."""
        self.watch_keys = frozenset(keys)

    def stop(self) -> None:
        self._stop.set()
        self._monitor_stop.set()

    def quit(self) -> None:
        """Stop at once, without the final sample `stop` takes: the user is leaving."""
        self._abandon.set()
        self.stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def run(self, emit: Emit) -> None:
        raise NotImplementedError


class MonitorSource(FrameSource):
    """A real backend through the collector. A backend failure leaves the rest running.

    With `fallbacks` (what `--backend auto` would try next), the monitor switches to the
    next backend and the source follows it (name, layer, what it can measure). After a
    failure with nothing to fall back to, the collector keeps scanning (CPU, memory,
    disk, interfaces and process facts stay live); per-process traffic becomes unknown.
    The collector (and with it NVML) is made once, here, and closed when `run` ends.

    Before the backend's first sample, which takes an interval, the collector's
    `first_look` (names, CPU time, memory; rates and bytes unknown) is shown, made while
    the backend starts (`look_first`).

    The source is the monitor's sink. Its `sample`/`failure` run on the collector's
    thread: they hand the tick to `sink` there (the Prometheus exporter), then hop to the
    event loop, where the frame is emitted before the monitor's next tick.
    """

    look_first = True  # show the collector's first_look before the first sample

    def __init__(
        self,
        backend: Backend,
        interval_s: float,
        fallbacks: Sequence[type[Backend]] = (),
        *,
        sink: Sink | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.sink = sink  # also gets every tick (the Prometheus exporter)
        self.fallbacks = list(fallbacks)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frames: Emit | None = None
        self._error: Exception | None = None  # raised showing a tick: `run` re-raises it
        self._emitted: Frame | None = None  # the last frame emitted
        self._describe(backend)
        self.interval_s = interval_s
        self.collector = self._make_collector(backend)

    def _make_collector(self, backend: Backend) -> FrameCollector:
        return FrameCollector(**collector_options(backend))

    def _describe(self, backend: Backend | type[Backend]) -> None:
        self.backend_name = backend.name
        self.layer = backend.layer
        self.per_connection = backend.coverage.per_connection
        self.per_process = backend.coverage.per_process

    # -- the monitor's sink: on the collector's worker thread ---------------------------

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self._to_loop(None)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        self._to_loop(fallback)

    def end(self, failure: BackendFailure | None) -> None:
        pass

    def _to_loop(self, fallback: type[Backend] | None) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._ticked, fallback)

    # -- on the event loop ----------------------------------------------------------------

    def _ticked(self, fallback: type[Backend] | None) -> None:
        """A tick is in (before the monitor's next one starts): show it."""
        if self._frames is None or self._error is not None:
            return  # `run` has ended (the app is closing), or is ending on an error
        try:
            if fallback is not None:  # the monitor moved on: describe that one from now on
                self._describe(fallback)
                if not self.per_process:
                    self.collector.fail_traffic()  # its samples carry no per-process bytes
            self.collector.watch = self.watch_keys
            self._emit_frame(self._frames)
        except Exception as exc:  # ends `run` with it, as one raised in monitor() would
            self._error = exc
            self._monitor_stop.set()

    def _emit_frame(self, emit: Emit) -> None:
        frame = self.collector.frame
        if frame is not None and frame is not self._emitted:
            self._emitted = frame
            emit(frame)

    async def _first_look(self) -> None:
        """The table at once: the collector's first look, emitted unless a sample beat it."""
        try:
            looked = await asyncio.to_thread(self.collector.first_look)
        except Exception as exc:  # ends `run` with it, as one showing a tick does
            self._error = exc
            self._monitor_stop.set()
            return
        if looked is not None:
            self._ticked(None)

    async def run(self, emit: Emit) -> None:
        try:
            await self._run(emit)
        finally:
            self._frames = None
            self.collector.close()

    async def _run(self, emit: Emit) -> None:
        collector = self.collector
        self._loop = asyncio.get_running_loop()
        self._frames = emit
        collector.watch = self.watch_keys
        looking = asyncio.ensure_future(self._first_look()) if self.look_first else None
        try:
            await monitor(
                self.backend,
                self.interval_s,
                self if self.sink is None else Tee(self.sink, self),
                collector=collector,
                stop=self._monitor_stop,
                handle_signals=False,
                fallbacks=self.fallbacks,
                abandon=self._abandon,
                ready=self.after_typing,
            )
        finally:
            if looking is not None:
                looking.cancel()
        if self._error is not None:
            raise self._error
        if self._stop.is_set():
            return
        collector.fail_traffic()  # monitor only returns early when no backend is left
        last = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            await self.after_typing()
            if self._stop.is_set():
                return
            now = time.monotonic()
            collector.watch = self.watch_keys
            sample = TrafficSample(time.time(), now - last, None)
            await asyncio.to_thread(collector.ingest, sample)
            last = now
            self._emit_frame(emit)


class ScriptedSource(FrameSource):
    """Frames from ready-made snapshots: all of `initial` at once, then whatever is pushed.

    For tests and screenshots: no psutil, no clock, so what is drawn is fully determined.
    """

    def __init__(
        self,
        initial: Iterable[Snapshot] = (),
        *,
        backend_name: str = "scripted",
        layer: str = "socket payload",
        per_connection: bool = True,
        per_process: bool = True,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.initial = list(initial)
        self.per_process = per_process
        self.backend_name = backend_name
        self.layer = layer
        self.per_connection = per_connection
        self.interval_s = interval_s
        self.last: Snapshot | None = None
        self._queue: asyncio.Queue[Snapshot] = asyncio.Queue()
        self._emit: Emit | None = None

    def frame_of(self, snap: Snapshot) -> Frame:
        return build_frame(snap, self.watch_keys, traffic_known=snap.failure is None)

    def emit_initial(self, emit: Emit) -> None:
        """Emit the initial snapshots synchronously (before the first paint)."""
        self._emit = emit
        for snap in self.initial:
            self.last = snap
            emit(self.frame_of(snap))
        self.initial = []

    def set_history_keys(self, keys: Iterable[str]) -> None:
        changed = frozenset(keys) != self.watch_keys
        super().set_history_keys(keys)
        if changed and self._emit is not None and self.last is not None:
            self._emit(self.frame_of(self.last))

    def push(self, snap: Snapshot) -> None:
        """Emit one more snapshot (from the test, on the app's loop)."""
        self._queue.put_nowait(snap)

    async def run(self, emit: Emit) -> None:
        self.emit_initial(emit)
        while not self._stop.is_set():
            getter = asyncio.ensure_future(self._queue.get())
            stopper = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                return
            stopper.cancel()
            snap = getter.result()
            self.last = snap
            emit(self.frame_of(snap))
