"""The TUI for `nettop-ui run` and `attach`: the usual screen, its rows cut to one process tree.

`TreeSource` is the live source with two differences: the collector's frames keep
only the tree's members (nettop_ui.tree.TreeTracker: the top process and, with
children, its descendants; exited ones stay, dimmed, with their totals), and it
resumes a held command after the first tick and stops sampling (after one final
sample) when the top process exits. The screen then stays up with a notice until
the user quits. Quitting while the command still runs sends it SIGTERM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable, Sequence

from nettop_ui.collector import Snapshot
from nettop_ui.core import Backend, BackendFailure, TrafficSample
from nettop_ui.monitor import collector_options
from nettop_ui.tree import TreeTracker
from nettop_ui.tui.app import NettopApp
from nettop_ui.tui.frame import Frame, FrameCollector
from nettop_ui.tui.source import Emit, MonitorSource
from nettop_ui.watch import Command, Target


class TreeFrameCollector(FrameCollector):
    """Freezes only the tree's processes into frames; the scan itself is unchanged."""

    def __init__(self, tracker: TreeTracker, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.tracker = tracker

    def freeze(self, snap: Snapshot) -> Frame:
        keys = self.tracker.member_keys(snap)
        mine = [p for p in snap.processes if p.key in keys]
        return super().freeze(dataclasses.replace(snap, processes=mine))


class TreeSource(MonitorSource):
    """Frames of one process tree; resumes a held command; ends when its top process exits."""

    def __init__(
        self,
        target: Target,
        backend: Backend,
        interval_s: float,
        fallbacks: Sequence[type[Backend]] = (),
        *,
        include_children: bool = True,
        duration_s: float | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.tracker = TreeTracker(target.pid, include_children)  # before the collector
        super().__init__(backend, interval_s, fallbacks, on_snapshot=self._resume)
        self.target = target
        self.duration_s = duration_s
        self.on_exit = on_exit
        self.target_exited = False

    def _make_collector(self, backend: Backend) -> FrameCollector:
        return TreeFrameCollector(self.tracker, **collector_options(backend))

    def _resume(self, snap: Snapshot, item: TrafficSample | BackendFailure) -> None:
        if isinstance(item, TrafficSample):
            self.target.resume()

    def _exited(self, waiter: asyncio.Future[None]) -> None:
        if waiter.cancelled():  # the source is done, not the process
            return
        self.target_exited = True
        self.stop()  # monitor() still takes one final sample

    async def run(self, emit: Emit) -> None:
        waiter = asyncio.ensure_future(self.target.exited())
        waiter.add_done_callback(self._exited)
        timer = None
        if self.duration_s is not None:
            timer = asyncio.get_running_loop().call_later(self.duration_s, self.stop)
        try:
            await super().run(emit)
        finally:
            waiter.cancel()
            if timer is not None:
                timer.cancel()
        if self.target_exited and self.on_exit is not None:
            self.on_exit()


def run_tree_tui(
    target: Target,
    backend_cls: type[Backend],
    why: str,
    interval_s: float,
    *,
    fallbacks: Sequence[type[Backend]] = (),
    include_children: bool = True,
    duration_s: float | None = None,
) -> int | None:
    """Show `target`'s tree until the user quits; return the command's exit status.

    None for an attached process. A command still running when the user quits gets
    SIGTERM; one never resumed (the backend did not start) is killed.
    """
    app: NettopApp

    def on_exit() -> None:
        what = "the command" if isinstance(target, Command) else f"process {target.pid}"
        app.notify(f"{what} exited; q quits", title="done", timeout=3600, markup=False)

    source = TreeSource(
        target,
        backend_cls(),
        interval_s,
        fallbacks,
        include_children=include_children,
        duration_s=duration_s,
        on_exit=on_exit,
    )
    app = NettopApp.for_user(source, why)
    try:
        app.run()
    finally:
        if isinstance(target, Command):
            if not target.resumed:
                target.abandon()
            elif not source.target_exited:
                target.forward(signal.SIGTERM)
    return target.finish()
