"""The Textual app: owns the frame source, the view state and the screens.

Frames arrive from a `FrameSource` running as a worker (the collector's blocking work
is in a thread); each is drawn on arrival unless the display is paused. The app never
waits on sampling. The screens get the `ViewState` (what to draw) and send messages up
(`nettop_ui.tui.messages`) that the app handles here; no screen imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Self

from textual import events
from textual.app import App
from textual.binding import BindingType
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker

from nettop_ui import profile
from nettop_ui.args import is_tty
from nettop_ui.format import Units
from nettop_ui.monitor import describe_failure
from nettop_ui.tui.bindings import APP_BINDINGS
from nettop_ui.tui.detail_screen import DetailScreen
from nettop_ui.tui.frame import Frame
from nettop_ui.tui.heap import HeapPolicy
from nettop_ui.tui.help_screen import HelpScreen, binding_rows
from nettop_ui.tui.host_screen import HostScreen
from nettop_ui.tui.keymap import load_keymap
from nettop_ui.tui.kill import KillRefused, refusal, send_signal
from nettop_ui.tui.kill_dialog import KillDialog
from nettop_ui.tui.main_screen import HEADER_EVERY_S, MainScreen
from nettop_ui.tui.messages import CursorMoved, DisplayReady, KillRequested, OpenDetail, OpenHost
from nettop_ui.tui.model import ViewOptions
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.source import FrameSource, ScriptedSource
from nettop_ui.tui.state import ViewState
from nettop_ui.tui.system_history import SystemHistory

STOP_GRACE_S = 3.0  # how long quitting waits for the backend to close


class QuickExitDriver(LinuxDriver):
    """Textual's terminal driver, restoring the terminal without waiting on its input
    thread. That thread polls the terminal every 0.1 s, and once more on its way out:
    waiting for it added 0.2 s to every quit. It is told to stop and ends by itself;
    `nettop_ui.cli.entry` ends the process without waiting for it. (A suspend, which
    starts the thread again, still waits.)"""

    def stop_application_mode(self) -> None:
        signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        self._disable_mouse_support()
        self.exit_event.set()  # disable_input, which waits on the thread, sees it stopping
        with contextlib.suppress(termios.error):
            termios.tcflush(self.fileno, termios.TCIFLUSH)
        super().stop_application_mode()

    def suspend_application_mode(self) -> None:
        LinuxDriver.stop_application_mode(self)
        self.close()

    def _get_terminal_size(self) -> tuple[int, int]:
        """The size the terminal itself reports. Textual asks `shutil`, which takes
        COLUMNS and LINES from the environment first: a shell that exports them (bash
        keeps them current in its own variables, not in a child's environment) left
        the app at its starting size through every resize."""
        for stream in (self._file, sys.__stdin__):  # where it draws, where it reads
            try:
                width, height = os.get_terminal_size(stream.fileno())  # type: ignore[union-attr]
            except (AttributeError, OSError, ValueError):  # None, closed, not a terminal
                continue
            if width and height:
                return width, height
        return super()._get_terminal_size()


class StdoutDriver(QuickExitDriver):
    """Textual's terminal driver, drawing on stdout instead of stderr."""

    def __init__(self, app: App[Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._file = sys.__stdout__


def _terminal_alive() -> bool:
    """False once the controlling terminal has hung up (its ioctls then fail)."""
    try:
        termios.tcgetattr(0)  # stdin: the terminal the app reads keys from
    except (termios.error, OSError):
        return False
    return True


class NettopApp(App[int]):
    """nettop-ui's full-screen interface.

    `source` supplies frames: `MonitorSource` for a real backend, `ScriptedSource`
    for tests and screenshots. `clock` (monotonic seconds) and `host` are injectable
    so a screenshot is the same on every run.
    """

    CSS_PATH = Path(__file__).with_name("nettop.tcss")
    BINDINGS: ClassVar[list[BindingType]] = APP_BINDINGS
    ENABLE_COMMAND_PALETTE = False
    TITLE = "nettop-ui"
    DISABLED_ACTIONS: ClassVar[frozenset[str]] = frozenset()  # the screens' actions not offered

    @classmethod
    def for_user(
        cls, source: FrameSource, why: str, *, filter_text: str = "", units: Units = "iec"
    ) -> Self:
        """The app as `nettop-ui` runs it: the user's keymap (a problem with it shown as
        a notice once the app runs) and SIGTERM/SIGHUP handled; `filter_text` and
        `units` from the command line (`--filter`, `--units`)."""
        keymap, problem = load_keymap()
        app = cls(
            source,
            why=why,
            keymap=keymap,
            handle_sigterm=True,
            filter_text=filter_text,
            units=units,
        )
        if problem:
            app.call_later(app.notify, problem, severity="warning", markup=False)
        return app

    def __init__(
        self,
        source: FrameSource,
        *,
        why: str = "",
        host: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        keymap: dict[str, str] | None = None,
        handle_sigterm: bool = False,
        filter_text: str = "",
        units: Units = "iec",
    ) -> None:
        super().__init__()
        self.source = source
        self.why = why
        self.host = host if host is not None else socket.gethostname()
        self.clock = clock
        self.started = clock()
        # bytes unknown for every process: sort on sockets
        opts = ViewOptions(filter_text=filter_text, units=units)
        self.state = ViewState(
            source=source,
            host=self.host,
            system_history=SystemHistory(),
            elapsed_s=self.elapsed_s,
            opts=opts if source.per_process else replace(opts, sort="conns"),
            disabled_actions=self.DISABLED_ACTIONS,
        )
        self.latest: Frame | None = None  # the newest frame received
        self.frames_received = 0
        self._selected: str | None = None
        self._worker: Worker[None] | None = None
        self._keymap_arg = keymap or {}
        self._handle_sigterm = handle_sigterm
        self._failure_seen: object | None = None
        self.heap = HeapPolicy()  # garbage-collector settings while the app runs

    # -- lifecycle ------------------------------------------------------------------

    def get_driver_class(self) -> type[Driver]:
        """Textual draws on stderr: with stderr sent elsewhere (`2>log`) and stdout still
        the terminal, draw there, so the screen is not blank and the log holds no
        escape codes."""
        driver = super().get_driver_class()
        if driver is not LinuxDriver:
            return driver
        if not is_tty(sys.__stderr__) and is_tty(sys.__stdout__):
            return StdoutDriver
        return QuickExitDriver

    def post_message(self, message: Message) -> bool:
        """A key is told to the source as it arrives (on the terminal's input thread),
        before the loop gets to it: the next sample waits for the typing to pause."""
        if isinstance(message, events.Key):
            self.source.typed()
        return super().post_message(message)

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(self.state)

    @property
    def opts(self) -> ViewOptions:
        return self.state.opts

    @property
    def shown(self) -> Frame | None:
        """The frame on display (older than `latest` while paused)."""
        return self.state.shown

    @property
    def paused(self) -> bool:
        return self.state.paused

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def on_key(self, event: events.Key) -> None:
        """A character that bubbled up to the app while a text field has the focus was
        typed in the same burst as the key that opened the field (`/ntu` typed fast):
        the app had routed it to the table before the focus moved. It belongs in the
        field (a field stops the characters typed into it, so none gets here twice)."""
        focused = self.focused
        if isinstance(focused, Input) and event.is_printable and event.character:
            event.stop()
            focused.insert_text_at_cursor(event.character)

    def on_mount(self) -> None:
        self.heap.start()
        if self._keymap_arg:
            self.set_keymap(self._keymap_arg)
        self.set_interval(HEADER_EVERY_S, self._tick)
        if self.why:
            self.notify(
                f"{self.source.backend_name} ({self.source.layer}): {self.why}",
                title="backend",
                timeout=6,
            )
        if self._handle_sigterm:  # SIGHUP too: its default would orphan a backend's child
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop = asyncio.get_running_loop()
                quit_signals = [signal.SIGTERM]
                # SIGINT (`kill -INT`; ^C is a key here) quits as q does, not by cancelling
                # everything mid-sample; one ignored by whoever started us stays ignored.
                if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
                    quit_signals.append(signal.SIGINT)
                for sig in quit_signals:
                    loop.add_signal_handler(sig, lambda: self.call_later(self.action_quit))
                loop.add_signal_handler(signal.SIGHUP, self._hangup)

    def _hangup(self) -> None:
        """SIGHUP: quit like `q`. When the terminal itself has gone (closed window),
        there is nothing to restore and Textual's shutdown would wait on it forever:
        stop the backend (and any child of it), then leave."""
        if _terminal_alive():
            self.call_later(self.action_quit)
        else:
            self.call_later(self._leave_hung_up)

    async def _leave_hung_up(self) -> None:
        self.source.quit()
        if self._worker is not None and not self._worker.is_finished:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._worker.wait(), timeout=STOP_GRACE_S)
        os._exit(128 + signal.SIGHUP)

    def on_display_ready(self, _message: DisplayReady) -> None:
        """The main screen is mounted: start the source, frames can be drawn now."""
        if self._worker is not None:
            return
        if isinstance(self.source, ScriptedSource):
            self.source.emit_initial(self.on_frame)
        self._worker = self.run_worker(
            self._collect(), name="collector", group="collector", exit_on_error=False
        )

    async def _collect(self) -> None:
        try:
            await self.source.run(self.on_frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in sampling must not take the screen down
            self.state.source_error = f"sampling stopped: {type(exc).__name__}: {exc}"
            self.notify(
                safe_text(self.state.source_error, 300),
                severity="error",
                timeout=15,
                markup=False,
            )
            if self.state.shown is not None:
                self.main.redraw()

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def _tick(self) -> None:
        if self.screen is self.main:
            self.main.tick_header()

    # -- frames ---------------------------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        """A new frame from the source (on the event loop)."""
        self.latest = frame
        self.frames_received += 1
        if frame.failure is not None and frame.failure is not self._failure_seen:
            self._failure_seen = frame.failure
            self.notify(
                safe_text(describe_failure(frame.failure), 300),
                title="backend failure",
                severity="error",
                timeout=15,
                markup=False,
            )
        if not self.state.paused:
            self.display_frame(frame)
        self.heap.frame(self.frames_received)

    def on_unmount(self) -> None:
        self.heap.stop()

    def display_frame(self, frame: Frame) -> None:
        self.state.shown = frame
        gpu = {d.index: d.util_percent for d in frame.gpu.devices} if frame.gpu else None
        self.state.system_history.add(frame.system, gpu)
        if self.screen is self.main:
            self.main.redraw()
        elif isinstance(self.screen, DetailScreen | HostScreen):
            self.screen.show_frame(frame, self.state.opts.scale)

    def on_cursor_moved(self, message: CursorMoved) -> None:
        """The table cursor moved: have its full history ready for the drill-down."""
        if not self.screen_stack:  # arrived while the app shuts down (a replay redraws)
            return
        self._selected = message.key
        self._update_history_keys()

    def _update_history_keys(self, closing: Screen[Any] | None = None) -> None:
        """The row under the cursor and every open drill-down (`closing` aside) get their
        full history."""
        keys = {s.process_key for s in self.screen_stack if isinstance(s, DetailScreen)}
        keys.discard(closing.process_key if isinstance(closing, DetailScreen) else "")
        profiler = profile.active()
        if profiler is not None:  # `--profile`: per-thread and per-syscall detail for these
            profiler.show(int(key.split(":", 1)[0]) for key in keys)
        if self._selected:
            keys.add(self._selected)
        self.source.set_history_keys(keys)

    # -- actions --------------------------------------------------------------------

    def action_pause(self) -> None:
        paused = self.state.paused = not self.state.paused
        if not paused and self.latest is not None:
            self.display_frame(self.latest)
        elif self.screen is self.main:
            self.main.tick_header(at_once=True)
        self.notify("display paused; sampling continues" if paused else "resumed", timeout=2)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        note = f"backend: {self.source.backend_name} ({self.source.layer})"
        if self.why:
            note += f"; {self.why}"
        self.push_screen(HelpScreen(binding_rows(self.screen), note))

    async def action_quit(self) -> None:
        self.source.quit()
        if self._worker is not None and not self._worker.is_finished:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._worker.wait(), timeout=STOP_GRACE_S)
        self.exit(0)

    def _can_open(self) -> bool:
        """Drill-downs open from the table, a drill-down or a host, not from a dialog; and
        only once for the same screen (a second enter sent before the first was handled)."""
        return self.screen is self.main or isinstance(self.screen, DetailScreen | HostScreen)

    def on_open_detail(self, message: OpenDetail) -> None:
        if not self._can_open() or (
            isinstance(self.screen, DetailScreen) and self.screen.process_key == message.key
        ):
            return
        screen = DetailScreen(message.key, self.state)
        self.push_screen(screen, lambda _result: self._update_history_keys(closing=screen))
        self._update_history_keys()

    def on_open_host(self, message: OpenHost) -> None:
        if not self._can_open() or (
            isinstance(self.screen, HostScreen) and self.screen.address == message.address
        ):
            return
        self.push_screen(HostScreen(message.address, self.state))

    def on_kill_requested(self, message: KillRequested) -> None:
        if not isinstance(self.screen, MainScreen | DetailScreen):  # a dialog is already up
            return
        process = message.process
        reason = refusal(process.pid, process.create_time)
        if process.exited:
            reason = f"PID {process.pid} has already exited"
        if reason is not None:
            self.notify(reason, severity="warning", timeout=5, markup=False)
            return

        def chosen(sig: signal.Signals | None) -> None:
            if sig is None:
                return
            try:
                send_signal(process.pid, process.create_time, sig)
            except KillRefused as exc:
                self.notify(str(exc), severity="error", timeout=6, markup=False)
                return
            name = safe_text(process.name, 40)
            self.notify(f"sent {sig.name} to {process.pid} ({name})", timeout=4, markup=False)

        self.push_screen(KillDialog(process), chosen)


def timeline_keys_on(app: NettopApp) -> bool:
    """Whether the timeline keys act now: on the table or a drill-down, not while typing."""
    return isinstance(app.screen, (MainScreen, DetailScreen)) and not isinstance(app.focused, Input)
