"""The kill dialog (`k`/F9): names the process, offers four signals, SIGTERM first.

`enter` sends the highlighted signal, `esc` cancels. The dialog returns the chosen
signal; the app sends it through `nettop_ui.tui.kill.send_signal`.
"""

from __future__ import annotations

import signal
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from nettop_ui.tui.bindings import KILL_DIALOG_BINDINGS
from nettop_ui.tui.frame import ProcessView
from nettop_ui.tui.kill import SIGNALS
from nettop_ui.tui.safe import command_line, safe_text


class KillDialog(ModalScreen[signal.Signals | None]):
    """Choose a signal for one process."""

    BINDINGS: ClassVar[list[BindingType]] = KILL_DIALOG_BINDINGS

    def __init__(self, process: ProcessView) -> None:
        super().__init__()
        self.process = process

    def compose(self) -> ComposeResult:
        p = self.process
        title = Text("Send a signal to ", style="bold")
        title.append(f"PID {p.pid} ", style="bold")
        title.append(safe_text(p.name, 60), style="bold cyan")
        info = Text(f"user {safe_text(p.user, 32)}\n", style="dim")
        info.append(command_line(p.name, p.cmdline, 300), style="")
        options = [Option(Text(f"{sig.name:<8} {what}"), id=sig.name) for sig, what in SIGNALS]
        with Vertical(id="kill-box"):
            yield Static(title, id="kill-title")
            yield Static(info, id="kill-info")
            yield OptionList(*options, id="kill-signals")
            yield Static(Text("enter send · esc cancel", style="dim"), id="kill-hint")

    def on_mount(self) -> None:
        signals = self.query_one(OptionList)
        signals.highlighted = 0
        signals.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(signal.Signals[event.option.id or "SIGTERM"])

    def action_cancel(self) -> None:
        self.dismiss(None)
