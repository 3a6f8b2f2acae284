"""`?` / F1: every key of the screen it was opened from (remapped keys included), by id."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from nettop_ui.tui.bindings import HELP, HELP_NOTES, HELP_SCREEN_BINDINGS


def binding_rows(screen: Screen[Any]) -> list[tuple[str, str, str]]:
    """(keys, what it does, binding id) for nettop-ui's bindings active on `screen`."""
    grouped: dict[str, list[str]] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.id is None or binding.id not in HELP:
            continue
        display = screen.app.get_key_display(replace(binding, key_display=None)) or key
        keys = grouped.setdefault(binding.id, [])
        if display not in keys:
            keys.append(display)
    order = list(HELP)
    ids = sorted(grouped, key=order.index)
    return [(" ".join(grouped[i]), HELP[i], i) for i in ids]


class HelpScreen(ModalScreen[None]):
    """A scrollable list of keys and notes; any of esc, ?, F1, q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = HELP_SCREEN_BINDINGS

    def __init__(self, rows: list[tuple[str, str, str]], backend_note: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.backend_note = backend_note

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=False)
        table.add_column("KEY", style="bold cyan", no_wrap=True)
        table.add_column("ACTION")
        table.add_column("ID (remappable)", style="dim")
        for keys, desc, binding_id in self.rows:
            table.add_row(Text(keys), Text(desc), Text(binding_id))
        notes = Text("\n".join(f"• {n}" for n in HELP_NOTES), style="")
        with VerticalScroll(id="help-box"):
            yield Static(Text("nettop-ui keys", style="bold"), id="help-title")
            yield Static(table)
            yield Static(notes, id="help-notes")
            if self.backend_note:
                yield Static(Text(self.backend_note, style="dim"), id="help-backend")

    def action_close(self) -> None:
        self.dismiss(None)
