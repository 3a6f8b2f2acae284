"""monitor(): final samples, counts, falling back when a backend dies mid-run, and no
backlog when the collector is slower than the interval."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backends.ebpf import EbpfBackend
from backends.nethogs import NethogsBackend
from backends.nettop import NettopBackend
from backends.psutil_backend import PsutilBackend
from backends.sockdiag import SockdiagBackend
from nettop_ui.collector import Collector, ProcessState, Snapshot
from nettop_ui.core import Backend, BackendFailure, TrafficSample
from nettop_ui.monitor import describe_failure, monitor
from nettop_ui.tui import MonitorSource
from nettop_ui.tui.frame import Frame
from tests.netenv import require, require_root
from tests.tui_fixtures import ScriptedBackend, steady

FIXTURES = Path(__file__).parent / "fixtures" / "nettop"
FAKEBIN = Path(__file__).parent / "fakebin"
Each = Callable[[Snapshot, TrafficSample | BackendFailure], None]


class OnLoop:
    """A monitor sink that calls `each(snap, item)` on the event loop, before the next
    tick (the callbacks here set asyncio events); make it inside the running loop."""

    def __init__(self, each: Each) -> None:
        self.loop = asyncio.get_running_loop()
        self.each = each

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self.loop.call_soon_threadsafe(self.each, snap, sample)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        self.loop.call_soon_threadsafe(self.each, snap, failure)

    def end(self, failure: BackendFailure | None) -> None:
        pass


def test_backend_death_falls_back_and_keeps_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in nettop really exits each time; the backend gives up; psutil takes over."""
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    resolved = FIXTURES / "nettop_L1_J_noP_resolved_macos26_netglass.csv"
    numeric = FIXTURES / "nettop_L1_J_noP_numeric_macos26_netglass.csv"
    monkeypatch.setenv("NETTOP_REPLAY", f"{resolved}{os.pathsep}{numeric}")
    monkeypatch.setenv("NETTOP_REPLAY_EXIT", "1")
    items: list[TrafficSample | BackendFailure] = []
    snaps: list[Snapshot] = []

    def keep(snap: Snapshot, item: TrafficSample | BackendFailure) -> None:
        items.append(item)
        snaps.append(snap)
        if len([i for i in items if isinstance(i, TrafficSample)]) >= 12:
            stop.set()

    stop = asyncio.Event()

    async def go() -> None:
        await monitor(
            NettopBackend(), 1.0, OnLoop(keep), stop=stop, fallbacks=[PsutilBackend],
            handle_signals=False, duration_s=40,
        )  # fmt: skip

    asyncio.run(go())
    failures = [i for i in items if isinstance(i, BackendFailure)]
    assert len(failures) == 1
    assert failures[0].backend == "nettop" and failures[0].fallback == "psutil"
    after = items[items.index(failures[0]) + 1 :]
    assert after and all(isinstance(i, TrafficSample) and i.processes is None for i in after)
    # What nettop counted before it died is still there at the end. Each restart of
    # the stand-in replays the same real pair of samples from a fresh baseline.
    apsd = [p for p in snaps[-1].processes if p.pid == 590]
    assert apsd
    assert apsd[0].sent_bytes is not None
    runs = apsd[0].sent_bytes // (34544 - 34103)
    assert runs >= 1
    assert (apsd[0].sent_bytes, apsd[0].recv_bytes) == (runs * 441, runs * 1504)


def run_with_fault(
    backend: Backend, fault: Callable[[], None], fallback: type[Backend]
) -> tuple[BackendFailure, list[TrafficSample | BackendFailure]]:
    """Monitor `backend` at 0.5 s, call `fault` after its second sample, stop three
    items after the failure; the one failure, and the items after it."""
    items: list[TrafficSample | BackendFailure] = []
    stop = asyncio.Event()
    failed_at: list[int] = []

    def keep(_snap: Snapshot, item: TrafficSample | BackendFailure) -> None:
        items.append(item)
        if len(items) == 2:
            fault()
        if isinstance(item, BackendFailure):
            failed_at.append(len(items))
        if failed_at and len(items) >= failed_at[0] + 3:
            stop.set()

    async def go() -> None:
        await monitor(
            backend, 0.5, OnLoop(keep), stop=stop, fallbacks=[fallback],
            handle_signals=False, duration_s=120,
        )  # fmt: skip

    asyncio.run(go())
    failures = [i for i in items if isinstance(i, BackendFailure)]
    assert len(failures) == 1, items
    assert failures[0].backend == backend.name and failures[0].fallback == fallback.name
    assert "\n" not in failures[0].message
    after = items[items.index(failures[0]) + 1 :]
    assert after and all(isinstance(i, TrafficSample) for i in after)
    return failures[0], after


def test_netlink_error_mid_run_falls_back_with_one_line() -> None:
    """The sockdiag backend's netlink socket fails under it (closed, as a dying netlink
    would leave it): the run goes on with psutil and says why in one line."""
    backend = SockdiagBackend()

    def fault() -> None:
        # On the backend's netlink thread, between two polls (closing it under a dump
        # in flight would leave pyroute2 waiting forever instead).
        backend._worker.submit(backend._diag.close)  # type: ignore[union-attr]

    failure, after = run_with_fault(backend, fault, PsutilBackend)
    assert failure.message.startswith("sock_diag poll failed")
    assert all(isinstance(i, TrafficSample) and i.processes is None for i in after)


@pytest.mark.timeout(180)
def test_ebpf_program_gone_mid_run_falls_back_with_one_line() -> None:
    """The ebpf backend's programs are detached and its maps closed under it (as a
    dying program would leave them): auto's next backend takes over.

    This once hung in CI: right after the churn test, tens of thousands of TIME_WAIT
    sockets made every sock_diag dump of the fallback take seconds, and stopping it
    waited for each. sockdiag now skips sockets no process holds, and stops at once.
    """
    require_root()
    backend = EbpfBackend()

    def fault() -> None:
        with backend._lock:  # between two reads, as a fault from outside would land
            backend._prog.close()  # type: ignore[union-attr]  # detached, map fds closed

    failure, after = run_with_fault(backend, fault, SockdiagBackend)
    assert failure.message.startswith("reading the eBPF maps failed")
    assert all(isinstance(i, TrafficSample) and i.processes is not None for i in after)


@pytest.mark.timeout(180)
def test_nethogs_stopped_is_a_fault_and_auto_falls_back() -> None:
    """The nethogs child stopped (SIGSTOP): it printed nothing, the stream showed 0 B/s
    and later a spike, and what it missed was lost without a word. Silence past a few
    of its refreshes is now a backend failure, and auto's next backend takes over."""
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    backend = NethogsBackend()
    stopped: list[int] = []

    def fault() -> None:
        assert backend._child is not None
        stopped.append(backend._child.pid)
        os.kill(backend._child.pid, signal.SIGSTOP)

    started = time.monotonic()
    failure, after = run_with_fault(backend, fault, PsutilBackend)
    assert failure.message.startswith("nethogs printed nothing for"), failure.message
    assert time.monotonic() - started < 30  # found within a few refreshes, not at the end
    assert all(isinstance(i, TrafficSample) and i.processes is None for i in after)
    assert not os.path.exists(f"/proc/{stopped[0]}")  # the stopped child was ended and reaped


class CountedSockdiag(SockdiagBackend):
    """The real sockdiag backend (netlink: a read takes milliseconds), counting reads."""

    reads = 0

    async def read(self, interval_s: float) -> TrafficSample:
        self.reads += 1
        return await super().read(interval_s)


class SlowCollector(Collector):
    """The real collector on a machine too busy to keep up: each tick takes 0.25 s."""

    def ingest(self, item: TrafficSample | BackendFailure) -> Snapshot:
        time.sleep(0.25)  # in monitor's worker thread, as a slow /proc scan would be
        return super().ingest(item)


def test_a_consumer_slower_than_the_interval_gets_longer_samples_not_a_backlog() -> None:
    """Sampling every 0.05 s while each tick takes 0.25 s to ingest: the samples waiting
    stay at one or two (each then covers more time) instead of piling up in memory, and
    no time is lost between them."""
    backend = CountedSockdiag()
    lags: list[int] = []
    items: list[TrafficSample] = []

    class Keep:
        """Runs on the collector's thread, right after each tick."""

        def sample(self, _snap: Snapshot, item: TrafficSample) -> None:
            items.append(item)
            lags.append(backend.reads - len(items))  # read but not yet handed on

        def failure(self, *_: object) -> None:
            raise AssertionError("no failure expected")

        def end(self, _failure: BackendFailure | None) -> None:
            pass

    async def go() -> None:
        collector = SlowCollector()
        await monitor(backend, 0.05, Keep(), count=12, collector=collector, handle_signals=False)

    asyncio.run(go())
    assert len(items) >= 12
    assert max(lags) <= 2, lags
    span = items[-1].ts - items[0].ts
    assert abs(sum(i.interval_s for i in items[1:]) - span) < 0.05 * span


class Calls:
    """A sink that notes each call and the thread it ran on, what failed and how it ended."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failures: list[tuple[BackendFailure, type[Backend] | None]] = []
        self.ended: list[BackendFailure | None] = []

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self.calls.append(("sample", threading.get_ident()))

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        self.calls.append(("failure", threading.get_ident()))
        self.failures.append((failure, fallback))

    def end(self, failure: BackendFailure | None) -> None:
        self.calls.append(("end", threading.get_ident()))
        self.ended.append(failure)


@pytest.mark.parametrize("fallbacks", [(), (PsutilBackend,)], ids=["alone", "fallback"])
def test_the_sink_gets_samples_the_failure_and_the_end_off_the_loop(
    fallbacks: tuple[type[Backend], ...],
) -> None:
    """A backend that dies on its third read: the sink gets two samples, the failure with
    the backend taking over (if any), then `end` with the failure nothing took over from;
    every call off the event loop, on the collector's thread."""
    sink = Calls()
    backend = ScriptedBackend(steady({os.getpid(): (1000, 0)}, 0.1), fail_at=3)

    async def go() -> int:
        await monitor(backend, 0.1, sink, count=4, handle_signals=False, fallbacks=fallbacks)
        return threading.get_ident()

    loop_thread = asyncio.run(go())
    names = [name for name, _ in sink.calls]
    [(failure, fallback)] = sink.failures
    why = "scripted failure: the capture process died"
    assert (failure.backend, failure.message) == ("scripted", why)
    if fallbacks:  # `count` counts samples only; the stop by count is no failure
        assert fallback is PsutilBackend and failure.fallback == "psutil"
        assert names == ["sample", "sample", "failure", "sample", "sample", "end"]
        assert sink.ended == [None]
        said = f"backend scripted failed: {why}; continuing with psutil"
        assert describe_failure(failure) == said
    else:
        assert fallback is None and failure.fallback is None
        assert names == ["sample", "sample", "failure", "end"]
        assert sink.ended == [failure]
        assert describe_failure(failure) == f"backend scripted failed: {why}"
    assert loop_thread not in {thread for _, thread in sink.calls}


async def test_an_error_showing_a_frame_ends_the_live_source_with_it() -> None:
    """An exception from `emit` (the UI, on the event loop) ends MonitorSource.run with
    it, as one raised inside monitor() did: the app says so instead of going on silently."""
    source = MonitorSource(ScriptedBackend(steady({os.getpid(): (1000, 0)}, 0.1)), 0.1)
    shown: list[Frame] = []

    def emit(frame: Frame) -> None:
        shown.append(frame)
        raise RuntimeError("drawing failed")

    with pytest.raises(RuntimeError, match="drawing failed"):
        await asyncio.wait_for(source.run(emit), 60)
    assert len(shown) == 1


def test_headless_monitoring_keeps_no_sparkline_history() -> None:
    """Per-process history feeds only the TUI's sparklines (~6 KB a process): the
    collector monitor() makes for the headless modes keeps none."""
    seen: list[ProcessState] = []

    class Keep(Calls):
        def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
            seen.extend(p for p in snap.processes if p.pid == os.getpid())

    backend = ScriptedBackend(steady({os.getpid(): (1000, 0)}, 0.1))
    asyncio.run(monitor(backend, 0.1, Keep(), count=3, handle_signals=False))
    assert len(seen) == 3 and (seen[-1].sent_bytes or 0) > 0
    assert all(p.history is None for p in seen)
