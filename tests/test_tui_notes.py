"""A backend's note on a process's bytes reaches the screen: a mark on its byte figures,
and a legend saying what the mark means, in the header and in the process's detail.

The backend reports real processes the test spawned (tests.tui_fixtures), one of them
with the note the nethogs backend gives a process it sees on loopback; the real
collector carries it to the frames the app draws, driven by Pilot.
"""

from __future__ import annotations

import asyncio

from backends.nethogs import LOOPBACK_NOTE
from nettop_ui.core import ProcessTraffic
from nettop_ui.tui import MonitorSource, NettopApp
from nettop_ui.tui.cells import NOTE_MARK
from nettop_ui.tui.detail_screen import DetailScreen
from tests.tui_fixtures import (
    KIB,
    MIB,
    ScriptedBackend,
    named_children,
    pid_order,
    screen_lines,
    table_order,
    wait_for,
)

INTERVAL = 0.2


def row_of(app: NettopApp, pid: int) -> str:
    return next(line for line in screen_lines(app) if line.lstrip().startswith(f"{pid} "))


def test_noted_figures_are_marked_and_explained() -> None:
    async def go() -> None:
        with named_children("ntu-looped", "ntu-plain") as (looped, plain):

            def script(_tick: int) -> list[ProcessTraffic]:
                up, down = int(MIB * INTERVAL), int(64 * KIB * INTERVAL)
                return [
                    ProcessTraffic(looped.pid, up, 0, note=LOOPBACK_NOTE),
                    ProcessTraffic(plain.pid, up, down),
                ]

            app = NettopApp(MonitorSource(ScriptedBackend(script), INTERVAL), host="test")
            async with app.run_test(size=(200, 30)) as pilot:
                pids = [looped.pid, plain.pid]
                await wait_for(
                    pilot,  # past the first look's frame (no bytes yet): a sample's
                    lambda: len(pid_order(app, pids)) == 2 and app.frames_received >= 2,
                    "both rows, sampled",
                )
                await pilot.pause(2 * INTERVAL)
                # UP/s, DOWN/s and TOTAL/s of the noted process carry the mark; not others
                assert row_of(app, looped.pid).count(NOTE_MARK) == 3, row_of(app, looped.pid)
                assert NOTE_MARK not in row_of(app, plain.pid)
                assert f"{NOTE_MARK} {LOOPBACK_NOTE}" in screen_lines(app)[0]
                key = next(k for k in table_order(app) if k.startswith(f"{looped.pid}:"))
                assert app.main.table.select_key(key)
                await pilot.press("enter")
                await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "detail")
                await pilot.pause(2 * INTERVAL)
                assert any(LOOPBACK_NOTE in line for line in screen_lines(app)[:3])

    asyncio.run(go())
