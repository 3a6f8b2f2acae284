"""The live app as `nettop-ui` runs it: `NettopApp`, plus `H`, the history view.

`H` opens the default history database (`nettop-ui record`'s, nettop_ui/store.py) over
the last 24 hours as `replay --db` shows it (nettop_ui/tui/history_source.py): the
timeline keys move through its minutes, and sort, filter, groups and drill-down work
on it as on the live frames. Sampling goes on meanwhile; `H` again goes back to the
newest live frame. Without a database, or with one that cannot be read, `H` says so in
one line and the live view stays.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual.binding import BindingType
from textual.screen import Screen

from nettop_ui.store import StoreError, default_path
from nettop_ui.tui.app import NettopApp, timeline_keys_on
from nettop_ui.tui.bindings import APP_BINDINGS, LIVE_BINDINGS, REPLAY_BINDINGS
from nettop_ui.tui.frame import Frame

if TYPE_CHECKING:
    from nettop_ui.tui.history_source import HistorySource

HISTORY_S = 24 * 3600.0  # how far back `H` looks


class LiveApp(NettopApp):
    """The live app with a switch to the history database's view and back (`H`)."""

    BINDINGS: ClassVar[list[BindingType]] = [*APP_BINDINGS, *LIVE_BINDINGS, *REPLAY_BINDINGS]

    def __init__(self, *args: Any, db_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.db_path = db_path or default_path()
        self.history: HistorySource | None = None  # while the history is on display

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "history":  # from the table or a drill-down, not over a dialog
            return timeline_keys_on(self)
        if action.startswith("replay_"):
            return self.history is not None and timeline_keys_on(self)
        if action == "pause" and self.history is not None:  # space plays the history
            return False
        return super().check_action(action, parameters)

    def action_history(self) -> None:
        if self.history is not None:
            self._leave_history()
            return
        if not os.path.exists(self.db_path):
            self.notify(
                f"no history database at {self.db_path}: start `nettop-ui record`",
                severity="warning",
                timeout=6,
                markup=False,
            )
            return
        from nettop_ui.tui.history_source import HistorySource  # only once asked for

        now = time.time()
        try:
            history = HistorySource(self.db_path, now - HISTORY_S, now)
        except StoreError as exc:
            self.notify(str(exc), severity="warning", timeout=6, markup=False)
            return
        self.history = history
        history.set_history_keys(self.source.watch_keys)
        self.run_worker(self._run_history(history), name="history", exit_on_error=False)
        self.refresh_bindings()
        self.notify("history: ←/→ a minute, home/end, space plays; H back to live", timeout=4)

    async def _run_history(self, history: HistorySource) -> None:
        try:
            await history.run(self._show_history)
        except StoreError as exc:  # the database went bad under us: back to live
            self.notify(str(exc), severity="error", timeout=10, markup=False)
            if self.history is history:
                self._leave_history()

    def _leave_history(self) -> None:
        history, self.history = self.history, None
        if history is not None:
            history.stop()
            history.close()
        self.state.position = None
        if self.latest is not None and not self.state.paused:
            self.display_frame(self.latest)
        self.refresh_bindings()

    def _show_history(self, frame: Frame) -> None:
        if self.history is None:  # a frame left over from before `H` went back to live
            return
        self.state.position = self.history.position()
        self.display_frame(frame)

    def on_frame(self, frame: Frame) -> None:
        """A live frame: kept for the return to live while the history is on display."""
        if self.history is None:
            super().on_frame(frame)
            return
        self.latest = frame
        self.frames_received += 1

    def _update_history_keys(self, closing: Screen[Any] | None = None) -> None:
        super()._update_history_keys(closing)
        if self.history is not None:  # the drill-downs' histories come from the database
            self.history.set_history_keys(self.source.watch_keys)

    def action_replay_step(self, delta: int) -> None:
        if self.history is not None:
            self.history.step(delta)

    def action_replay_first(self) -> None:
        if self.history is not None:
            self.history.goto(0)

    def action_replay_last(self) -> None:
        if self.history is not None:
            self.history.goto(len(self.history) - 1)

    def action_replay_play(self) -> None:
        if self.history is not None:
            self.history.toggle_play()
