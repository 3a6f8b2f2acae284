"""The TUI for `nettop-ui run` and `attach`: the usual screen, its rows cut to one process tree.

`TreeSource` is the live source with two differences: the collector's frames keep
only the tree's members (nettop_ui.tree.TreeTracker: the top process and, with
children, its descendants; exited ones stay, dimmed, with their totals), and it
resumes a held command after the first tick and stops sampling (after one final
sample) when the top process exits. The screen then stays up with a notice until
the user quits. Quitting while the command still runs sends it SIGTERM and keeps the
screen up, saying what it waits for, until the command exits; a second quit sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from nettop_ui.args import PROG
from nettop_ui.collector import Snapshot
from nettop_ui.core import Backend, TrafficSample
from nettop_ui.memory import small_heap
from nettop_ui.monitor import collector_options
from nettop_ui.tree import TreeTracker
from nettop_ui.tui.app import NettopApp
from nettop_ui.tui.frame import Frame, FrameCollector
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.source import Emit, MonitorSource
from nettop_ui.watch import Command, Target, watch_in_kernel


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

    look_first = False  # the tree is known only once the backend runs and CMD is resumed

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
        watch_in_kernel(target, include_children)
        super().__init__(backend, interval_s, fallbacks)
        self.target = target
        self.duration_s = duration_s
        self.on_exit = on_exit
        self.target_exited = False

    def _make_collector(self, backend: Backend) -> FrameCollector:
        return TreeFrameCollector(self.tracker, **collector_options(backend))

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self.target.resume()  # on the collector's thread, before the frame is shown
        super().sample(snap, sample)

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


class TreeApp(NettopApp):
    """The app for `run`/`attach`: quitting a command that still runs stops it first.

    The first quit sends SIGTERM and waits, with a notice, for the command to exit; the
    next one sends SIGKILL. The app leaves once the command has exited.
    """

    def __init__(self, source: TreeSource, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.tree_source = source
        self._ending: asyncio.Future[None] | None = None

    async def action_quit(self) -> None:
        target = self.tree_source.target
        if not isinstance(target, Command) or not target.resumed or self.tree_source.target_exited:
            await super().action_quit()
            return
        what = f"PID {target.pid} ({safe_text(os.path.basename(target.cmdline[0]), 40)})"
        if self._ending is None:
            target.forward(signal.SIGTERM)
            self._ending = asyncio.ensure_future(self._quit_once_exited(target))
            message = f"waiting for {what} to exit after SIGTERM; q again to SIGKILL"
        else:
            target.forward(signal.SIGKILL)
            message = f"sent SIGKILL; waiting for {what} to exit"
        self.notify(message, title="quitting", timeout=3600, markup=False)

    async def _quit_once_exited(self, target: Command) -> None:
        await target.exited()
        await super().action_quit()


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
    app: TreeApp

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
    app = TreeApp.for_user(source, why)
    try:
        with small_heap():  # `run` may watch a job for hours
            app.run()
    finally:
        if isinstance(target, Command):
            if not target.resumed:
                target.abandon()
            elif not source.target_exited:
                target.forward(signal.SIGTERM)
                waiting = f"waiting for PID {target.pid} to exit after SIGTERM"
                print(f"{PROG}: {waiting}", file=sys.stderr)
    return target.finish()
