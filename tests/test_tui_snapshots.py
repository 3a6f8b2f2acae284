"""SVG snapshots of the main screen, the filtered screen, the drill-down, the host view and
the host screen, 80x24 and 160x48.

The app is fed fully scripted snapshots (fixed pids, names, numbers, clock and host),
so the pictures are the same on every machine. Regenerate after a deliberate change with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from nettop_ui.tui import NettopApp, ScriptedSource
from nettop_ui.tui.frame import row_key
from tests.tui_fixtures import T0, FixedClock, profiled_snapshots, scripted_snapshots

SIZES = [(80, 24), (160, 48)]


def make_app() -> NettopApp:
    source = ScriptedSource(scripted_snapshots(), backend_name="ebpf", layer="socket payload")
    return NettopApp(source, host="testhost", clock=FixedClock())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_filtered_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, press=["slash", *"nginx", "escape"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_drill_down(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_nginx_master(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, NettopApp)
        await pilot.pause()
        assert app.main.table.select_key(row_key(900, T0 - 1000 - 900))
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_nginx_master)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_host_view(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, press=["h"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_host_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_edge(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, NettopApp)
        await pilot.press("h")
        await pilot.pause()
        assert app.main.table.select_key("203.0.113.7")
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_edge)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_drill_down_profile(snap_compare: Any, size: tuple[int, int]) -> None:
    """`--profile`: train.py's drill-down with its off-CPU and syscall section."""

    async def open_train(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, NettopApp)
        await pilot.pause()
        assert app.main.table.select_key(row_key(2002, T0 - 1000 - 2002))
        await pilot.press("enter")
        await pilot.pause()

    source = ScriptedSource(profiled_snapshots(), backend_name="ebpf", layer="socket payload")
    app = NettopApp(source, host="testhost", clock=FixedClock())
    assert snap_compare(app, terminal_size=size, run_before=open_train)
