"""`nettop-ui replay FILE`: a recording in the TUI, with a timeline.

A `run`/`attach` recording or a whole-machine one (`--json`, `--output`): both hold
the processes of each sample. A file of INDEX_FROM_BYTES or more is not read whole:
`IndexedReplaySource` reads the sample shown from an index of byte offsets.

`ReplaySource` turns each recorded sample back into the collector's `ProcessState`s
and freezes it with `build_frame`, so the app draws it exactly as it draws a live
tick; sort, filter, tree and drill-down work unchanged. `ReplayApp` adds the timeline
keys (left/right one sample, home/end first/last, space play/pause), bound only here,
and offers no kill. A recording has no machine-wide CPU, memory or disk figures: the
panels say so, and show the tree's own sums and the interfaces' bytes it does hold.
A sample's recorded `remotes` (the tree's traffic per remote host) become the frame's
`remotes`, so the remote-host view works in replay too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from textual.binding import BindingType

from nettop_ui import profile
from nettop_ui.args import MIN_INTERVAL_S, PROG, closed_stream_problem
from nettop_ui.collector import (
    HISTORY_SERIES,
    ConnectionState,
    ProcessKey,
    ProcessState,
    Snapshot,
    Unattributed,
    history_row,
)
from nettop_ui.history import SeriesSet
from nettop_ui.recording_index import (
    INDEX_FROM_BYTES,
    DamagedSample,
    IndexedSamples,
    index_recording,
)
from nettop_ui.remotes import FoldedHosts, RemoteHostState
from nettop_ui.schema import FIELDS, Field
from nettop_ui.summary import Record, RecordingError, read_recording, say_if_unreadable
from nettop_ui.tui.app import NettopApp, timeline_keys_on
from nettop_ui.tui.bindings import REPLAY_BINDINGS
from nettop_ui.tui.frame import Frame, RecordedFigures, build_frame
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.source import Emit, FrameSource

MIN_STEP_S = 0.02  # play never advances faster than this, whatever the timestamps say
MAX_STEP_S = 60.0


def _num(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _interval(record: dict[str, Any]) -> float | None:
    """A recorded interval_s, at least MIN_INTERVAL_S: a damaged tiny one would size
    the sparklines absurdly."""
    value = _num(record, "interval_s")
    return max(value, MIN_INTERVAL_S) if value is not None and value > 0 else None


def _int(record: dict[str, Any], key: str) -> int | None:
    value = _num(record, key)
    return None if value is None else int(value)


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _field(f: Field, record: dict[str, Any]) -> Any:
    """Field `f` of a recorded process record; what is missing or malformed is unknown
    (a name "?", a command line empty, `exited` false)."""
    value = record.get(f.key)
    if f.type is bool:
        return value is True
    if f.type is list:
        return [a for a in value if isinstance(a, str)] if isinstance(value, list) else []
    if f.type is str:
        return (_text(value) or None) if f.nullable else _text(value, "?")
    return _num(record, f.key) if f.type is float else _int(record, f.key)


def process_state(record: dict[str, Any]) -> ProcessState | None:
    """A recorded process record (schema.FIELDS) as a `ProcessState`; None if unusable."""
    values = {f.name: _field(f, record) for f in FIELDS}
    if values["pid"] is None:
        return None
    state = ProcessState(**values)
    state.ebpf = profile.from_record(record.get("ebpf"))
    conns = record.get("connections")
    for c in conns if isinstance(conns, list) else ():
        if not isinstance(c, dict):
            continue
        conn = ConnectionState(
            protocol=_text(c.get("protocol"), "?"),
            local=_text(c.get("local")),
            remote=_text(c.get("remote")),
            sent_bytes=_int(c, "sent_bytes") or 0,
            recv_bytes=_int(c, "recv_bytes") or 0,
            sent_bps=_num(c, "sent_bps") or 0.0,
            recv_bps=_num(c, "recv_bps") or 0.0,
            remote_name=_text(c.get("remote_name")) or None,
            remote_scope=_scope(c.get("remote_scope")),
        )
        state.connections[(conn.protocol, conn.local, conn.remote)] = conn
    return state


def _scope(value: Any) -> str:
    return "local" if value == "local" else "remote"


def _list(record: dict[str, Any], key: str, kind: type) -> list[Any]:
    """The items of type `kind` in a recorded list; [] when it is none."""
    value = record.get(key)
    items = value if isinstance(value, list) else []
    return [v for v in items if isinstance(v, kind) and not isinstance(v, bool)]


def recorded_remotes(
    sample: Record, names: dict[int, str]
) -> tuple[list[RemoteHostState] | None, FoldedHosts | None]:
    """A sample's `remotes` as the collector's hosts, and `remotes_folded`; None where
    the recording has none (a backend without connections, a schema 1 file). `names`:
    the sample's process names by pid, for the processes talking to each host."""
    hosts = sample.get("remotes")
    if not isinstance(hosts, list):
        return None, None
    found = [
        RemoteHostState(
            address=_text(h.get("address")),
            scope=_scope(h.get("scope")),
            name=_text(h.get("name")) or None,
            name_source=_text(h.get("name_source")) or None,
            sent_bytes=_int(h, "sent_bytes") or 0,
            recv_bytes=_int(h, "recv_bytes") or 0,
            sent_bps=_num(h, "sent_bps") or 0.0,
            recv_bps=_num(h, "recv_bps") or 0.0,
            connection_count=_int(h, "connection_count") or 0,
            protocols=tuple(_list(h, "protocols", str)),
            ports=tuple(_list(h, "ports", int)),
            pids={pid: names.get(pid, "?") for pid in _list(h, "pids", int)},
        )
        for h in hosts
        if isinstance(h, dict)
    ]
    f = sample.get("remotes_folded")
    folded = None
    if isinstance(f, dict):
        folded = FoldedHosts(
            _int(f, "hosts") or 0, _int(f, "sent_bytes") or 0, _int(f, "recv_bytes") or 0
        )
    return found, folded


def _tree(sample: Record) -> dict[str, Any]:
    tree = sample.get("tree")
    return tree if isinstance(tree, dict) else {}


def _rate(before: Record | None, here: Record, key: str, tree: bool) -> float | None:
    """Per second, from a cumulative byte count in two samples (of the tree, or of the
    sample itself); None without a sample before or when the count went backwards."""
    if before is None:
        return None
    a, b = (_num(_tree(s) if tree else s, key) for s in (before, here))
    dt = here["ts"] - before["ts"]
    if a is None or b is None or b < a or dt <= 0:
        return None
    return float((b - a) / dt)


def recorded_figures(before: Record | None, here: Record) -> RecordedFigures:
    """What the panels can honestly show for sample `here` (`before`: the one before)."""
    tree = _tree(here)
    return RecordedFigures(
        tree_cpu_percent=_num(tree, "cpu_percent"),
        tree_rss_bytes=_int(tree, "rss_bytes"),
        tree_read_bps=_rate(before, here, "read_bytes", tree=True),
        tree_write_bps=_rate(before, here, "write_bytes", tree=True),
        nic_sent_bps=_rate(before, here, "interfaces_sent_bytes", tree=False),
        nic_recv_bps=_rate(before, here, "interfaces_recv_bytes", tree=False),
    )


def _processes(sample: Record) -> list[ProcessState]:
    records = sample.get("processes")
    states = (process_state(r) for r in records if isinstance(r, dict)) if records else ()
    return [s for s in states if s is not None] if isinstance(records, list) else []


def _history_rows(sample: Record) -> dict[ProcessKey, tuple[float | None, ...]]:
    """A sample's HISTORY_SERIES values per process identity, as `process_state` and
    `history_row` would give them, without making the states."""
    records = sample.get("processes")
    rows: dict[ProcessKey, tuple[float | None, ...]] = {}
    for r in records if isinstance(records, list) else ():
        if isinstance(r, dict) and (pid := _int(r, "pid")) is not None:
            rows[(pid, _num(r, "start_time"))] = tuple(_num(r, k) for k in HISTORY_SERIES)
    return rows


class ReplaySource(FrameSource):
    """Frames from the samples of one recording; the position moves only when asked."""

    def __init__(self, records: Iterable[Record], path: str = "", problem: str | None = None):
        super().__init__()
        records = list(records)
        meta = next((r for r in records if r.get("type") == "meta"), {})
        self._describe(meta, [r for r in records if r.get("type") == "sample"], path, problem)
        # Per process identity: (sample index, ts, HISTORY_SERIES values) for its history.
        self._rows: dict[ProcessKey, list[tuple[int, float, tuple[float | None, ...]]]] = {}
        self._states = [_processes(s) for s in self.samples]
        for i, (sample, states) in enumerate(zip(self.samples, self._states, strict=True)):
            for p in states:
                self._rows.setdefault(p.key, []).append((i, sample["ts"], history_row(p)))

    def _describe(
        self, meta: Record, samples: Sequence[Record], path: str, problem: str | None
    ) -> None:
        """What the recording's meta line says, and its samples."""
        self.samples = samples
        if not self.samples:
            raise RecordingError(f"no samples to replay in {path}")
        self.path, self.problem = path, problem
        found = meta.get("coverage")
        coverage: dict[str, Any] = found if isinstance(found, dict) else {}
        self.backend_name = _text(meta.get("backend"), "recording")
        self.layer = _text(meta.get("layer"), "recorded")
        self.per_process = coverage.get("per_process") is not False
        self.per_connection = coverage.get("per_connection") is True
        self.interval_s = _interval(meta) or 1.0
        self.index = 0
        self.playing = False
        self._emit: Emit | None = None
        self._wake = asyncio.Event()

    def _states_at(self, index: int) -> list[ProcessState]:
        return self._states[index]

    def __len__(self) -> int:
        return len(self.samples)

    # -- frames -----------------------------------------------------------------------

    def _history(self, key: ProcessKey, upto: int) -> SeriesSet:
        rows = self._rows.get(key, [])
        rows = rows[: bisect_right(rows, upto, key=lambda r: r[0])]
        history = SeriesSet(HISTORY_SERIES, max(1, len(rows)))
        for _i, ts, values in rows:
            history.append_row(ts, values)
        return history

    def frame_at(self, index: int) -> Frame:
        sample = self.samples[index]
        states = self._states_at(index)
        for state in states:  # built anew each time: the history is as of `index`
            state.history = self._history(state.key, index)
        unattributed = None
        u = sample.get("unattributed")
        if isinstance(u, dict):
            unattributed = Unattributed(
                _int(u, "sent_bytes") or 0,
                _int(u, "recv_bytes") or 0,
                _num(u, "sent_bps") or 0.0,
                _num(u, "recv_bps") or 0.0,
            )
        interval = _interval(sample) or self.interval_s
        snap = Snapshot(sample["ts"], interval, list(states), unattributed, None)
        snap.gpu_unavailable = "not recorded"
        names = {p.pid: p.name for p in states}
        snap.remotes, snap.remotes_folded = recorded_remotes(sample, names)
        before = self.samples[index - 1] if index else None
        recorded = recorded_figures(before, sample)
        return replace(build_frame(snap, self.watch_keys), recorded=recorded)

    def position(self) -> str:
        """`replay 3/40 · 2026-01-02 10:00:03 (+2.0s)`, and `▶` while playing."""
        ts = self.samples[self.index]["ts"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
        offset = ts - self.samples[0]["ts"]
        mark = "▶ " if self.playing else ""
        return f"{mark}replay {self.index + 1}/{len(self)} · {when} (+{offset:.1f}s)"

    def _show(self) -> None:
        if self._emit is not None:
            self._emit(self.frame_at(self.index))

    # -- the timeline -----------------------------------------------------------------

    def goto(self, index: int) -> None:
        self.index = max(0, min(index, len(self) - 1))
        if self.index == len(self) - 1:
            self.playing = False
        self._wake.set()  # restart the play timer from here
        self._show()

    def step(self, delta: int) -> None:
        self.goto(self.index + delta)

    def toggle_play(self) -> None:
        if not self.playing and self.index == len(self) - 1:
            self.index = 0  # play again from the start
        self.playing = not self.playing
        self._wake.set()
        self._show()

    def _delay(self) -> float:
        """Seconds until the next sample, as recorded."""
        here, after = self.samples[self.index], self.samples[self.index + 1]
        delay = after["ts"] - here["ts"]
        return float(min(max(delay, MIN_STEP_S), MAX_STEP_S))

    def set_history_keys(self, keys: Iterable[str]) -> None:
        changed = frozenset(keys) != self.watch_keys
        super().set_history_keys(keys)
        if changed:
            self._show()

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    async def run(self, emit: Emit) -> None:
        self._emit = emit
        self._show()
        while not self._stop.is_set():
            self._wake.clear()
            playing = self.playing and self.index < len(self) - 1
            timeout = self._delay() if playing else None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                if self.playing and not self._stop.is_set():
                    self.step(1)


HISTORY_WINDOW = 300  # samples of history a large recording's frame shows, as live,
HISTORY_BYTES = 16 * 1024 * 1024  # fewer when they are large: what a step may have to read


class IndexedReplaySource(ReplaySource):
    """A large recording, replayed from its index (recording_index.py): a sample is read
    when shown, and a process's history covers the HISTORY_WINDOW samples before it (at
    most HISTORY_BYTES of them), so opening takes an index scan, a jump reads a bounded
    amount and memory stays small whatever the file's size."""

    def __init__(self, meta: Record, samples: IndexedSamples, path: str) -> None:
        FrameSource.__init__(self)
        self._describe(meta, samples, path, samples.problem)
        self.indexed = samples
        # The history rows of the samples in the window: index -> (ts, values by process).
        self._window: dict[int, tuple[float, dict[ProcessKey, tuple[float | None, ...]]]] = {}
        self._histories: dict[ProcessKey, SeriesSet] = {}  # as of sample _histories_upto
        self._histories_upto = -1
        try:
            self.samples[0]
        except DamagedSample as exc:
            raise RecordingError(f"no samples to replay in {path} ({exc})") from None

    def _states_at(self, index: int) -> list[ProcessState]:
        return _processes(self.samples[index])

    def _rows_of(self, index: int) -> tuple[float, dict[ProcessKey, tuple[float | None, ...]]]:
        rows = self._window.get(index)
        if rows is None:
            sample = self.samples[index]
            rows = self._window[index] = (sample["ts"], _history_rows(sample))
        return rows

    def _history(self, key: ProcessKey, upto: int) -> SeriesSet:
        if self._histories_upto != upto:  # one pass over the window for the whole frame
            self._histories = self._histories_at(upto)
            self._histories_upto = upto
        return self._histories.get(key) or SeriesSet(HISTORY_SERIES, 1)

    def _histories_at(self, upto: int) -> dict[ProcessKey, SeriesSet]:
        offsets = self.indexed.offsets
        first = max(0, upto - HISTORY_WINDOW + 1)
        first = min(upto, max(first, bisect_left(offsets, offsets[upto] - HISTORY_BYTES)))
        for old in [i for i in self._window if not first <= i <= upto]:
            del self._window[old]
        histories: dict[ProcessKey, SeriesSet] = {}
        for i in range(first, upto + 1):
            ts, rows = self._rows_of(i)
            for key, values in rows.items():
                history = histories.get(key)
                if history is None:
                    history = histories[key] = SeriesSet(HISTORY_SERIES, upto - first + 1)
                history.append_row(ts, values)
        return histories

    def frame_at(self, index: int) -> Frame:
        """As ReplaySource's; a damaged sample ends the recording before it (`problem`)."""
        while True:
            try:
                return super().frame_at(min(index, len(self) - 1))
            except DamagedSample:
                self.problem = self.indexed.problem
                self._window.clear()
                self._histories_upto = -1
                self.index = min(self.index, len(self) - 1)

    def _delay(self) -> float:
        try:
            return super()._delay()
        except DamagedSample:  # the next sample is damaged: the recording ends here
            self.problem = self.indexed.problem
            return MIN_STEP_S


def load(path: str) -> ReplaySource:
    """The replay of the recording at `path`: read whole, or indexed when large.

    Raises OSError and RecordingError as `read_recording` does."""
    if os.stat(path).st_size >= INDEX_FROM_BYTES:
        meta, samples = index_recording(path)
        return IndexedReplaySource(meta, samples, path)
    records, problem = read_recording(path)
    return ReplaySource(records, path, problem)


class ReplayApp(NettopApp):
    """The app, fed by a `ReplaySource`, with the timeline keys.

    The keys are priority bindings (left/right/home/end would otherwise move the
    table), handed on to the focused widget while the filter box is being edited or a
    dialog is open.
    """

    BINDINGS: ClassVar[list[BindingType]] = REPLAY_BINDINGS
    TITLE = "nettop-ui replay"
    DISABLED_ACTIONS = frozenset({"kill"})  # a recorded PID is no process to signal now

    def __init__(self, source: ReplaySource, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.replay = source
        self._told: str | None = None  # the damage the user was told about

    def on_mount(self) -> None:
        super().on_mount()
        self._tell_problem()

    def _tell_problem(self) -> None:
        """The damage that ends the recording, once: at the start, or when a large
        recording's damaged sample is reached."""
        if self.replay.problem and self.replay.problem != self._told:
            self._told = self.replay.problem
            self.notify(
                safe_text(f"{self.replay.path}: {self.replay.problem}; replaying up to there", 300),
                title="damaged recording",
                severity="warning",
                timeout=15,
                markup=False,
            )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":  # the live display pause: space plays and pauses here
            return False
        if action.startswith("replay_"):
            return timeline_keys_on(self)
        return super().check_action(action, parameters)

    def display_frame(self, frame: Frame) -> None:
        self.state.position = self.replay.position()
        super().display_frame(frame)
        self._tell_problem()

    def elapsed_s(self) -> float:
        samples = self.replay.samples
        return float(samples[self.replay.index]["ts"] - samples[0]["ts"])

    def action_replay_step(self, delta: int) -> None:
        self.replay.step(delta)

    def action_replay_first(self) -> None:
        self.replay.goto(0)

    def action_replay_last(self) -> None:
        self.replay.goto(len(self.replay) - 1)

    def action_replay_play(self) -> None:
        self.replay.toggle_play()


def run_replay(path: str) -> int:
    """Replay the recording at `path` until the user quits; one stderr line on error."""
    source = say_if_unreadable(load, path)
    if source is None:
        return 1
    closed = closed_stream_problem(f"use `{PROG} summary FILE`", tui_only=True)
    if closed:
        print(f"{PROG}: error: {closed}", file=sys.stderr)
        return 2
    app = ReplayApp.for_user(source, why="")
    with contextlib.suppress(KeyboardInterrupt):
        app.run()
    if source.problem:
        print(f"{PROG}: warning: {path}: {source.problem}; replayed up to there", file=sys.stderr)
    return app.return_code or 0
