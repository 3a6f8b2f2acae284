"""What the app hands its screens to draw from: the `ViewState`.

The app owns one `ViewState` and updates it as frames arrive (`shown`, `paused`, ...).
The screens read it; the only thing a screen changes in it is `opts`, replaced whole
(`ViewOptions` is frozen) by `MainScreen.set_options`, which also redraws. Anything else a
screen wants from the app it asks for with a message (`nettop_ui.tui.messages`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from nettop_ui.tui.frame import Frame
from nettop_ui.tui.model import ViewOptions
from nettop_ui.tui.system_history import SystemHistory


class SourceInfo(Protocol):
    """What the screens may know of the frame source (a `FrameSource`). Read-only: the
    backend's name and layer change when it falls back to another."""

    @property
    def backend_name(self) -> str: ...
    @property
    def layer(self) -> str: ...
    @property
    def interval_s(self) -> float: ...
    @property
    def per_process(self) -> bool: ...
    @property
    def per_connection(self) -> bool: ...
    @property
    def per_host(self) -> bool: ...
    def typing_for(self) -> float:
        """Seconds until the keys being typed have paused (0: they have)."""
        ...


@dataclass(eq=False)
class ViewState:
    """The state the screens draw: options, the frame on display, paused, the source."""

    source: SourceInfo
    host: str
    system_history: SystemHistory
    elapsed_s: Callable[[], float]  # seconds of uptime (replay: into the recording)
    opts: ViewOptions = field(default_factory=ViewOptions)
    shown: Frame | None = None  # the frame on display (older than the newest while paused)
    paused: bool = False
    source_error: str | None = None  # sampling stopped for good: why
    position: str | None = None  # replay: where on the timeline, shown instead of uptime
    disabled_actions: frozenset[str] = frozenset()  # e.g. replay: no "kill"
