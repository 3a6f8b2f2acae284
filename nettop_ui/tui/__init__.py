"""The full-screen Textual interface of nettop-ui.

`run_tui(backend_cls, why, interval_s)` runs it against a real backend; `NettopApp`
takes any `FrameSource` (tests and screenshots use `ScriptedSource`). Textual is
imported only inside this package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from nettop_ui.core import Backend
from nettop_ui.format import Units
from nettop_ui.memory import small_heap
from nettop_ui.monitor import Sink
from nettop_ui.tui.app import NettopApp
from nettop_ui.tui.live import LiveApp
from nettop_ui.tui.priority import responsive
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.source import FrameSource, MonitorSource, ScriptedSource

NOTICE_S = 30  # how long a notice from `notices` stays on screen

__all__ = [
    "FrameSource",
    "MonitorSource",
    "NettopApp",
    "ScriptedSource",
    "run_tui",
    "safe_text",
]


class Notices(Protocol):
    """Something that has things to tell the user while the TUI runs (a recording that
    stopped): `run_tui` sets its `tell`, callable from any thread, to show a notice."""

    tell: Callable[[str], None]


def run_tui(
    backend_cls: type[Backend],
    why: str,
    interval_s: float,
    *,
    fallbacks: Sequence[type[Backend]] = (),
    sink: Sink | None = None,
    notices: Notices | None = None,
    filter_text: str = "",
    units: Units = "iec",
) -> int:
    """Run the TUI until the user quits; returns the process exit status.

    `fallbacks`: the backends to switch to, in order, if this one dies (as `--backend
    auto` would pick them; `registry.fallbacks_after(backend_cls)`). The terminal is
    restored on every exit path (q, F10, ctrl+c, SIGTERM, SIGHUP, a crash). `sink` also
    gets every tick, on the collector's thread (the Prometheus exporter, `--output`);
    what `notices` tells shows as a notice. `filter_text` starts in the filter box
    (`--filter`); `units` are binary or decimal (`--units`).
    """
    with responsive(), small_heap():  # a top is left open for hours (docs/benchmarks.md)
        source = MonitorSource(backend_cls(), interval_s, fallbacks, sink=sink)
        app = LiveApp.for_user(source, why, filter_text=filter_text, units=units)
        if notices is not None:
            notices.tell = lambda text: app.notify(  # thread-safe: it posts a message
                safe_text(text, 300), severity="error", timeout=NOTICE_S, markup=False
            )
        result = app.run()
    if app.return_code not in (None, 0):
        return app.return_code
    return result or 0
