"""A process none of whose figures changed in a tick costs nothing that tick: no row of
history (its last row is repeated for the ticks it missed when it is next read or
changes) and no look at its view (handed on as it was). What the frames and the
histories say is still exactly what they said when every process was looked at.

Real processes: some asleep throughout, one woken to burn CPU on some ticks, one that
is said to move bytes on two ticks (its sparkline then slides back to rest), one that
exits and one that starts half-way.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from nettop_ui.collector import HISTORY_SERIES
from nettop_ui.core import ProcessTraffic, TrafficSample
from nettop_ui.history import FIRST_ROWS
from nettop_ui.tui import frame as frame_module
from nettop_ui.tui.frame import FrameCollector, ProcessView, build_frame

WORKER = r"""
import sys
print("ready", flush=True)
for line in sys.stdin:
    sum(range(int(line)))
    print("done", flush=True)
"""
INTERVAL_S = 10.0  # as the collector is told: 6 points of sparkline
TICKS = 24


class Worker:
    """A child that sleeps on its stdin, and burns CPU when told."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"
        self.pid = self.proc.pid

    def burn(self, n: int = 3_000_000) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    made: list[Worker] = []
    try:
        yield made
    finally:
        for w in made:
            w.stop()


def figures(v: ProcessView) -> tuple[float, ...]:
    """The figures a process's history keeps, as its view showed them (NaN: unknown)."""
    row = (v.sent_bps, v.recv_bps, v.cpu_percent, v.rss_bytes)
    return tuple(math.nan if x is None else float(x) for x in row)


def same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def test_unchanged_processes_cost_nothing_and_frames_and_histories_stay_exact(
    workers: list[Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = 0
    real_view_of = frame_module.view_of

    def counting_view_of(*args: object, **kwargs: object) -> ProcessView:
        nonlocal made
        made += 1
        return real_view_of(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(frame_module, "view_of", counting_view_of)
    fc = FrameCollector(per_process_bytes=True, system=False, gpu=False, history_size=20)
    workers.extend(Worker() for _ in range(6))
    busy, talker, leaver = workers[0], workers[1], workers[2]
    late: Worker | None = None
    seen: dict[int, list[tuple[float, tuple[float, ...]]]] = {}  # pid -> (ts, figures)
    try:
        for tick in range(TICKS):
            if tick % 3 == 1:
                busy.burn()
            if tick == 9:
                leaver.stop()
            if tick == 12:
                late = Worker()
                workers.append(late)
            traffic = [ProcessTraffic(talker.pid, 5_000, 7_000)] if tick in (3, 4) else []
            made = 0
            fc.ingest(TrafficSample(time.time(), INTERVAL_S, traffic))
            frame = fc.frame
            assert frame is not None
            looked_at = made
            # Every view as one frozen afresh from fully caught-up histories says.
            for state in fc.processes.values():
                fc.history_of(state)
            snap = fc.snapshot(frame.ts, frame.interval_s)
            assert frame.processes == build_frame(snap, traffic_known=True).processes
            ours = {v.pid: v for v in frame.processes if v.pid in {w.pid for w in workers}}
            for pid, v in ours.items():
                if not v.exited:
                    seen.setdefault(pid, []).append((frame.ts, figures(v)))
            if tick >= 12:  # settled: only what changed was looked at
                assert looked_at < len(frame.processes) // 2, (looked_at, len(frame.processes))
        # Each live worker's history: one row per tick it lived, each as its view said.
        for w in workers:
            if w is leaver:
                continue
            state = next(s for s in fc.processes.values() if s.pid == w.pid and not s.exited)
            history = fc.history_of(state)
            assert history is not None
            rows = zip(*(history[n] for n in HISTORY_SERIES), strict=True)
            got = list(zip(history.ts, rows, strict=True))
            want = seen[w.pid][-history.size :]
            assert [ts for ts, _ in got] == [ts for ts, _ in want], w.pid
            assert all(same(g, f) for (_, g), (_, f) in zip(got, want, strict=True)), w.pid
        assert late is not None and len(seen[late.pid]) == TICKS - 12
        assert len(seen[workers[3].pid]) == TICKS > fc.history_size  # the ring wrapped
        assert fc.frame is not None
        talked = next(v for v in fc.frame.processes if v.pid == talker.pid)
        assert talked.spark == (0.0,) * 6  # slid back to rest
    finally:
        fc.close()


def test_idle_processes_keep_a_row_or_two_of_history_even_when_every_one_is_looked_at(
    workers: list[Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where every process counts as changed every tick (the psutil scan, a failed
    listing), a process whose figures stay the same still gets no row written until its
    history is read: then it has every tick's, as before."""
    fc = FrameCollector(per_process_bytes=True, system=False, gpu=False, history_size=300)
    monkeypatch.setattr(fc, "_begin_tick", lambda: None)  # every process changed, each tick
    workers.extend(Worker() for _ in range(4))
    ticks = 40
    stamps = []
    try:
        for _ in range(ticks):
            fc.ingest(TrafficSample(time.time(), INTERVAL_S, []))
            assert fc.frame is not None
            stamps.append(fc.frame.ts)
        states = [s for s in fc.processes.values() if s.pid in {w.pid for w in workers}]
        assert len(states) == len(workers)
        for state in states:
            assert state.history is not None
            # Allocated: the first few rows only (its figures settle on the second tick).
            assert len(state.history._data) <= FIRST_ROWS * (len(HISTORY_SERIES) + 1)
            history = fc.history_of(state)
            assert history is not None and history.ts.values() == stamps
            assert history["cpu_percent"].values()[1:] == [0.0] * (ticks - 1)
            assert len(set(history["rss_bytes"].values())) == 1
    finally:
        fc.close()


def test_watched_rows_are_found_by_pid_with_the_walk_as_fallback(
    workers: list[Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cursor's row and the drill-downs' get their full history every tick. They
    are found by the pid in their keys, not by a walk over every process: the walk runs
    only when a process row's key is not found that way, and either way the frame holds
    the same histories as a walk finds."""
    walks = 0
    real_walk = frame_module.watched_in

    def counting_walk(*args: object) -> list[object]:
        nonlocal walks
        walks += 1 if args[2] else 0
        return real_walk(*args)  # type: ignore[arg-type, return-value]

    monkeypatch.setattr(frame_module, "watched_in", counting_walk)
    fc = FrameCollector(per_process_bytes=True, system=False, gpu=False, history_size=20)
    workers.extend(Worker() for _ in range(2))
    live, leaver = workers
    try:
        fc.ingest(TrafficSample(time.time(), INTERVAL_S, []))
        assert fc.frame is not None
        keys = {v.pid: v.key for v in fc.frame.processes}
        leaver.stop()
        fc.watch = frozenset({keys[live.pid], keys[leaver.pid], "user:root", "unattributed"})
        for _ in range(3):
            live.burn()
            fc.ingest(TrafficSample(time.time(), INTERVAL_S, []))
        assert walks == 0  # both found by pid: the live one and the exited one
        frame = fc.frame
        assert frame is not None and set(frame.histories) == {keys[live.pid], keys[leaver.pid]}
        states = {s.pid: s for s in fc.processes.values()}
        history = fc.history_of(states[live.pid])
        assert history is not None and frame.histories[keys[live.pid]].ts == tuple(history.ts)
        # A key whose pid now names another process (or none): the walk, same result.
        fc.watch = frozenset({keys[live.pid], f"{live.pid}:1.5"})
        fc.ingest(TrafficSample(time.time(), INTERVAL_S, []))
        assert walks == 1 and fc.frame is not None
        assert set(fc.frame.histories) == {keys[live.pid]}
    finally:
        fc.close()
