"""The filter box (`/`, `\\`, F3, F4): incremental; words match name, cmdline, user or PID,
`!` starts a regex, `field:value` terms (host:, port:, proto:, user:, service:, cgroup:,
pid:) scope it (`nettop_ui.filter_expr`). A bad term is shown in red and filters nothing.

`esc` or `enter` close the box and keep the filter (the bar stays, showing it);
`delete` clears it and hides the bar.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Static

from nettop_ui.tui.bindings import FILTER_INPUT_BINDINGS

HINT = "esc keep · del clear · !regex"


class FilterInput(Input):
    """The text field; `delete` clears the whole filter, `esc` closes the box."""

    BINDINGS: ClassVar[list[BindingType]] = FILTER_INPUT_BINDINGS

    def action_clear_filter(self) -> None:
        self.post_message(FilterBar.Cleared())

    def action_close_filter(self) -> None:
        self.post_message(FilterBar.Closed())


class FilterBar(Horizontal):
    """A one-line bar above the footer; visible while editing or while a filter is set."""

    DEFAULT_CSS = """
    FilterBar { height: 1; display: none; }
    FilterBar.-shown { display: block; }
    FilterBar > #filter-label { width: auto; padding: 0 1; text-style: bold; }
    FilterBar > FilterInput { border: none; height: 1; padding: 0; width: 1fr; }
    /* Input's own :focus rule draws a tall border, which in one line hides the text. */
    FilterBar > FilterInput:focus { border: none; }
    FilterBar > #filter-hint { width: auto; color: $text-muted; padding: 0 1; }
    FilterBar.-error > #filter-hint { color: $error; }
    FilterBar.-warning > #filter-hint { color: $warning; }
    """

    class Changed(Message):
        """The filter text changed (every key stroke)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Closed(Message):
        """Close the box and keep the filter."""

    class Cleared(Message):
        """Clear the filter and hide the bar."""

    _hint = HINT  # the hint's text, as last set

    def compose(self) -> ComposeResult:
        yield Static("Filter:", id="filter-label")
        yield FilterInput(
            placeholder="name, cmdline, user or PID; !regex; host: port: proto: user: service:",
            id="filter-input",
        )
        yield Static(HINT, id="filter-hint")

    @property
    def input(self) -> FilterInput:
        return self.query_one(FilterInput)

    @property
    def editing(self) -> bool:
        # The screen's focus, not the field's has_focus: that follows only once the Focus
        # event is handled, and a tick in between would take the bar for idle and reset it.
        return self.has_class("-shown") and self.screen.focused is self.input

    def open(self, text: str) -> None:
        self.add_class("-shown")
        field = self.input
        if field.value != text:
            field.value = text
        field.cursor_position = len(text)
        # At once, not through Widget.focus's call_later: keys typed right after the
        # opening key are already queued and must land in the box, not on the table.
        self.screen.set_focus(field)

    def show_idle(self, text: str) -> None:
        """Unfocused: shown while a filter is set, hidden otherwise."""
        self.set_class(bool(text), "-shown")
        if self.input.value != text:
            with self.input.prevent(Input.Changed):
                self.input.value = text

    def set_status(
        self, error: str | None, shown: int, total: int, warning: str | None = None
    ) -> None:
        """The hint on the right: a bad term, or how many processes match (and `warning`,
        terms this backend cannot match, in place of the keys).

        Called on every tick and key: the hint is touched only when its text changes, and
        lays the screen out again (its width follows its text) only while the bar is
        shown and its width changes; showing the bar lays it out anyway. The count is
        padded to the total's width, so typing a filter seldom changes the width.
        """
        self.set_class(error is not None, "-error")
        self.set_class(error is None and warning is not None, "-warning")
        text = error or f"{shown:>{len(str(total))}} of {total} · {warning or HINT}"
        if text != self._hint:
            resized = cell_len(text) != cell_len(self._hint)
            self._hint = text
            hint = self.query_one("#filter-hint", Static)
            hint.update(Text(text, no_wrap=True), layout=resized and self.has_class("-shown"))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Closed())
