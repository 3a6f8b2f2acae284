"""The messages the screens send up to the app (they bubble from a screen to it).

Dataclass-style Textual messages: the app handles them (`NettopApp.on_open_detail`, ...),
so no screen needs to know the app's class.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from nettop_ui.tui.frame import ProcessView


@dataclass
class OpenDetail(Message):
    """Open the drill-down for the process with row key `key`."""

    key: str


@dataclass
class OpenHost(Message):
    """Open the host screen for the remote address `address` ("": no remote address)."""

    address: str


@dataclass
class KillRequested(Message):
    """The user asked to signal `process` (the app checks it and asks which signal)."""

    process: ProcessView


@dataclass
class CursorMoved(Message):
    """The table cursor is now on the row with key `key` (None: no row)."""

    key: str | None


@dataclass
class DisplayReady(Message):
    """The main screen is mounted: frames can be drawn from now on."""
