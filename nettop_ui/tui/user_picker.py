"""`u`: pick one user whose processes the table shows, or "all users" (as in htop)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from nettop_ui.tui.bindings import USER_PICKER_BINDINGS
from nettop_ui.tui.safe import safe_text

ALL_USERS = "all users"


class UserPicker(ModalScreen[tuple[str | None] | None]):
    """The users with a process in the table, each with how many; enter picks one.

    Dismissed with `(user,)`, where None means all users, or with None when cancelled.
    """

    BINDINGS: ClassVar[list[BindingType]] = USER_PICKER_BINDINGS

    def __init__(self, counts: dict[str, int], current: str | None) -> None:
        super().__init__()
        self.choices: list[str | None] = [None, *sorted(counts)]
        self.counts = counts
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(Text(ALL_USERS, style="bold"))]
        for user in self.choices[1:]:
            assert user is not None
            count = self.counts[user]
            label = Text(safe_text(user, 32))  # a name from /etc/passwd or a bare uid
            label.append(f"  {count} process" + ("" if count == 1 else "es"), style="dim")
            options.append(Option(label))
        with Vertical(id="user-box"):
            yield Static(Text("Show the processes of", style="bold"), id="user-title")
            yield OptionList(*options, id="user-list")
            yield Static(Text("enter show · esc cancel", style="dim"), id="user-hint")

    def on_mount(self) -> None:
        users = self.query_one(OptionList)
        current = self.current if self.current in self.choices else None
        users.highlighted = self.choices.index(current)
        users.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss((self.choices[event.option_index],))

    def action_cancel(self) -> None:
        self.dismiss(None)
