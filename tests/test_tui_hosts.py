"""The remote-host view (`h`), the host screen and the drill-down's connections, by Pilot.

The app is fed the scripted snapshots of tests/tui_fixtures.py: fixed processes whose
connections go through the real `RemoteTable` into `Frame.remotes`, so every figure
below is known: 203.0.113.7 ("edge.example.test") is talked to by both nginx workers
(901: 3 MiB/s up, 902: 2 MiB/s up), 198.51.100.20 by nginx 901 and sshd, 127.0.0.1 is
loopback (local), 192.0.2.99 by the process with the hostile name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Tree

from nettop_ui.remotes import FoldedHosts
from nettop_ui.tui import NettopApp, ScriptedSource
from nettop_ui.tui.conn_table import ConnTable
from nettop_ui.tui.detail_screen import DetailScreen
from nettop_ui.tui.frame import row_key
from nettop_ui.tui.help_screen import HelpScreen
from nettop_ui.tui.host_screen import HostScreen
from nettop_ui.tui.hosts import FOLDED_KEY
from nettop_ui.tui.safe import safe_text
from tests.tui_fixtures import (
    CONNS,
    HOSTILE_NAME,
    MIB,
    T0,
    FixedClock,
    capture_notices,
    pick_user,
    screen_lines,
    scripted_snapshots,
    table_order,
    wait_for,
)

TICKS = 40  # scripted_snapshots()' default: the frame on display is the 40th
EDGE, OFFICE, LOOPBACK, HOSTILE_PEER = "203.0.113.7", "198.51.100.20", "127.0.0.1", "192.0.2.99"


def conn_total(address: str, ticks: int = TICKS) -> int:
    """Bytes to and from `address` since start, from the script."""
    return sum(
        int(up) * ticks + int(down) * ticks
        for _pid, _proto, _local, remote, up, down in CONNS
        if remote.rsplit(":", 1)[0].strip("[]") == address
    )


@asynccontextmanager
async def running(
    size: tuple[int, int] = (160, 48), **source_kw: Any
) -> AsyncIterator[tuple[NettopApp, Pilot[int]]]:
    snaps = source_kw.pop("snaps", None) or scripted_snapshots()
    source = ScriptedSource(snaps, backend_name=source_kw.pop("backend", "ebpf"), **source_kw)
    app = NettopApp(source, host="test", clock=FixedClock())
    app.notes = capture_notices(app)  # type: ignore[attr-defined]
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        await pilot.pause()
        yield app, pilot


async def press(pilot: Pilot[int], *keys: str) -> None:
    await pilot.press(*keys)
    await pilot.pause()


def text(app: NettopApp) -> str:
    return "\n".join(screen_lines(app))


def cell(app: NettopApp, key: str, column: str) -> Any:
    return app.main.table.get_cell(key, column)


def line_of(app: NettopApp, start: str) -> str:
    """The screen line whose text, inside any box border, starts with `start` and a space."""
    return next(line for line in screen_lines(app) if line.strip(" │").startswith(start + " "))


# -- the switch and what a row says --------------------------------------------------------


async def test_h_switches_the_table_to_remote_hosts_and_back() -> None:
    async with running() as (app, pilot):
        assert app.main.table.id == "processes"
        await press(pilot, "h")
        assert app.opts.view == "hosts"
        table = app.main.table
        assert table.id == "hosts" and table.has_focus and table.display
        assert not app.main.query_one("#processes").display
        assert set(table_order(app)) == {
            EDGE,
            OFFICE,
            "192.0.2.80",
            HOSTILE_PEER,
            "192.0.2.123",
            "2001:db8::5",
        }  # loopback is local: hidden by default
        head = next(line for line in screen_lines(app) if "ADDRESS" in line)
        for label in ("NAME", "UP/s", "DOWN/s", "TOTAL", "CONNS", "PROTO", "PORTS", "PROCS"):
            assert label in head, head
        assert "remote hosts" in screen_lines(app)[0]  # the header says which view
        await press(pilot, "h")
        assert app.opts.view == "processes" and app.main.table.id == "processes"
        assert app.main.table.display and not app.main.query_one("#hosts").display


async def test_a_host_row_sums_its_connections() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        up = cell(app, EDGE, "up")
        assert up.value == pytest.approx(3 * MIB + 2 * MIB)  # both workers' connections
        assert up.text.plain == "5.0MiB"
        assert cell(app, EDGE, "total").value == conn_total(EDGE)  # since start
        assert cell(app, EDGE, "conns").value == 2
        row = line_of(app, EDGE)
        assert "edge.example.test" in row and " tcp " in row
        assert "51234,51300" in row  # the remote ports, compact
        assert "2 nginx" in row  # how many processes, and their names
        office = line_of(app, OFFICE)
        assert "2 nginx,sshd" in office and "office.example.test" in office
        unnamed = line_of(app, "2001:db8::5")  # no name yet: NAME shows the address
        assert unnamed.count("2001:db8::5") == 2


async def test_host_sort_keys_invert_move_and_header_click() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        totals = [r.value("total") for r in app.main.rows]
        assert totals == sorted(totals, reverse=True)  # TOTAL, busiest first
        await press(pilot, "r")  # DOWN/s: objects.example.test downloads 14 MiB/s
        assert app.opts.sort == "down" and table_order(app)[0] == "192.0.2.80"
        await press(pilot, "s")
        assert table_order(app)[0] == EDGE
        await press(pilot, "I")
        assert table_order(app)[-1] == EDGE and not app.opts.descending
        await press(pilot, "greater_than_sign")
        assert app.opts.sort == "down"
        await press(pilot, "less_than_sign", "less_than_sign")
        assert app.opts.sort == "name"  # leftwards from DOWN/s: UP/s, then NAME
        names = [r.value("name").text.lower() for r in app.main.rows]
        assert names == sorted(names)
        await press(pilot, "P")  # no CPU column here: said so, sort unchanged
        assert app.opts.sort == "name"
        assert any("no cpu column" in n for n in app.notes)  # type: ignore[attr-defined]
        table = app.main.table
        x = sum(c.get_render_width(table) for c in list(table.columns.values())[:5])
        await pilot.click("#hosts", offset=(x + 2, 0))  # the CONNS header
        await pilot.pause()
        assert (app.opts.sort, app.opts.descending) == ("conns", True)
        conns = [r.value("conns") for r in app.main.rows]
        assert conns == sorted(conns, reverse=True) and conns[0] == 2
        await pilot.click("#hosts", offset=(x + 2, 0))
        await pilot.pause()
        assert (app.opts.sort, app.opts.descending) == ("conns", False)


async def test_filter_matches_address_name_and_process_names() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h", "slash", *"edge.example", "escape")
        assert table_order(app) == [EDGE]
        await press(pilot, "delete", "slash", *"sshd", "escape")  # a process talking to it
        assert table_order(app) == [OFFICE]
        await press(pilot, "delete", "slash", *"192.0.2.", "escape")
        assert set(table_order(app)) == {"192.0.2.80", HOSTILE_PEER, "192.0.2.123"}
        await press(pilot, "delete", "slash", *"!^192.0.2.(80|99)$", "escape")
        assert set(table_order(app)) == {"192.0.2.80", HOSTILE_PEER}
        assert "2 of 6" in text(app)  # the filter bar counts hosts
        await press(pilot, "delete")
        assert len(table_order(app)) == 6


async def test_the_user_picked_with_u_keeps_the_hosts_their_processes_talk_to() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        await pick_user(app, pilot, "www-data")  # the two nginx workers
        assert set(table_order(app)) == {EDGE, OFFICE, "2001:db8::5"}
        await pick_user(app, pilot, "root")  # sshd (and nginx's master, which is silent)
        assert table_order(app) == [OFFICE]
        await pick_user(app, pilot, None)
        assert len(table_order(app)) == 6


async def test_pause_holds_the_host_table_while_frames_arrive() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h", "space")
        before = cell(app, EDGE, "total").value
        later = scripted_snapshots(TICKS + 5)[-1]
        app.source.push(later)  # type: ignore[attr-defined]
        received = app.frames_received
        await wait_for(pilot, lambda: app.frames_received > received, "the pushed frame")
        await pilot.pause()
        assert cell(app, EDGE, "total").value == before
        await press(pilot, "space")
        assert cell(app, EDGE, "total").value == conn_total(EDGE, TICKS + 5)


async def test_totals_and_bits_in_the_host_view() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h", "m")
        labels = [c.label.plain.strip() for c in app.main.table.columns.values()]
        assert "UP" in labels and "UP/s" not in labels
        sent = sum(int(up) * TICKS for *_, remote, up, _down in CONNS if remote.startswith(EDGE))
        assert cell(app, EDGE, "up").value == sent
        await press(pilot, "b")
        assert cell(app, EDGE, "up").text.plain.endswith("ib")
        await press(pilot, "m")
        assert cell(app, EDGE, "up").text.plain == "40.0Mib"  # 5 MiB/s in bits


async def test_local_hosts_show_with_L_marked_local() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        assert LOOPBACK not in table_order(app)
        await press(pilot, "L")
        assert LOOPBACK in table_order(app)
        row = next(r for r in app.main.rows if r.key == LOOPBACK)
        assert row.kind == "local"
        assert "(local)" in line_of(app, LOOPBACK)
        assert "dim" in str(cell(app, LOOPBACK, "address").text.style)
        await press(pilot, "L")
        assert LOOPBACK not in table_order(app)


async def test_numeric_shows_addresses_only() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        assert "edge.example.test" in text(app)
        await press(pilot, "n")
        assert app.opts.numeric
        assert "name" not in app.main.table.column_keys
        screen = text(app)
        assert "example.test" not in screen and EDGE in screen
        await press(pilot, "n")
        assert "edge.example.test" in text(app)


async def test_folded_hosts_get_one_row_with_their_totals() -> None:
    snaps = scripted_snapshots()
    snaps[-1] = dataclasses.replace(snaps[-1], remotes_folded=FoldedHosts(1234, 5 * MIB, 7 * MIB))
    async with running(snaps=snaps) as (app, pilot):
        await press(pilot, "h")
        assert FOLDED_KEY in table_order(app)
        assert "(1,234 idle hosts folded)" in text(app)
        assert cell(app, FOLDED_KEY, "total").value == 12 * MIB
        assert cell(app, FOLDED_KEY, "up").text.plain == ""  # no rate kept: not 0, not -
        await press(pilot, "m")
        assert cell(app, FOLDED_KEY, "up").value == 5 * MIB


async def test_a_backend_without_connections_says_so_in_one_line() -> None:
    snaps = [dataclasses.replace(s, remotes=None) for s in scripted_snapshots(3)]
    async with running(snaps=snaps, backend="nethogs", per_connection=False) as (app, pilot):
        await press(pilot, "h")
        screen = text(app)
        assert (
            "this backend (nethogs) has no per-connection data: "
            "remote hosts need ebpf or sockdiag" in screen
        )
        assert not app.main.query_one("#hosts").display


async def test_hostile_process_names_in_procs_render_literally() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        procs = cell(app, HOSTILE_PEER, "procs").text.plain
        assert procs == " 1 " + safe_text(HOSTILE_NAME, 40)
        assert "[red]x[/red]" in procs and "\\u202e" in procs
        screen = text(app)
        assert "\x1b" not in screen and "\u202e" not in screen
        assert "[red]x[/red]" in line_of(app, HOSTILE_PEER)
        ntp = cell(app, "192.0.2.123", "name").text.plain  # a hostile host name, too
        assert ntp == "ntp\\e]0;pwned\\x07[red]x[/red]\\u202e.test (ptr)"  # a reverse lookup's
        assert ntp in line_of(app, "192.0.2.123")


async def test_host_keys_are_in_help_and_the_footer() -> None:
    async with running() as (app, pilot):
        assert "Hosts" in screen_lines(app)[-1]
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = {row[2] for row in app.screen.rows}
        assert {"remote_hosts", "show_local", "numeric"} <= ids


# -- the host screen ------------------------------------------------------------------------


async def test_enter_on_a_host_opens_its_connections_and_processes() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        assert app.main.table.select_key(EDGE)
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, HostScreen) and screen.address == EDGE
        conns = screen.query_one("#host-conns", ConnTable)
        await wait_for(pilot, lambda: bool(conns.order), "the host's connections")
        assert set(conns.order) == {
            f"{row_key(901, T0 - 1901)}|tcp|10.0.0.2:443|203.0.113.7:51234",
            f"{row_key(902, T0 - 1902)}|tcp|10.0.0.2:443|203.0.113.7:51300",
        }
        lines = screen_lines(app)
        assert "edge.example.test" in lines[0] and EDGE in lines[0]
        row = line_of(app, "901")
        for part in ("nginx", "tcp", "10.0.0.2:443", "51234", "3.0MiB", "60.0KiB"):
            assert part in row, (part, row)
        procs = screen.query_one("#host-procs", ConnTable)
        assert procs.order == [row_key(901, T0 - 1901), row_key(902, T0 - 1902)]
        assert "processes talking to it (2)" in "\n".join(lines)
        await press(pilot, "escape")
        assert app.screen is app.main and app.opts.view == "hosts"
        assert app.main.table.selected_key == EDGE


async def test_enter_on_a_process_of_the_host_screen_opens_its_drill_down() -> None:
    async with running() as (app, pilot):
        await press(pilot, "h")
        assert app.main.table.select_key(OFFICE)
        await press(pilot, "enter")
        assert isinstance(app.screen, HostScreen)
        procs = app.screen.query_one("#host-procs", ConnTable)
        await wait_for(pilot, lambda: len(procs.order) == 2, "the processes talking to it")
        procs.focus()
        await pilot.pause()
        procs.move_cursor(row=procs.order.index(row_key(612, T0 - 1612)))
        await press(pilot, "enter")
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.process_key == row_key(612, T0 - 1612)
        await press(pilot, "escape")
        assert isinstance(app.screen, HostScreen)


# -- the process drill-down -----------------------------------------------------------------


async def open_process(app: NettopApp, pilot: Pilot[int], pid: int) -> DetailScreen:
    assert app.main.table.select_key(row_key(pid, T0 - 1000 - pid))
    await press(pilot, "enter")
    screen = app.screen
    assert isinstance(screen, DetailScreen)
    table = screen.query_one("#detail-conns", ConnTable)
    await wait_for(pilot, lambda: table.row_count > 0, "the connections table")
    return screen


async def test_drill_down_shows_the_subtree_connections_grouped_by_host() -> None:
    """nginx's master (900) has no connection of its own; its workers do the talking."""
    async with running() as (app, pilot):
        detail = await open_process(app, pilot, 900)
        lines = screen_lines(app)
        screen = "\n".join(lines)
        assert "with children: 4 to 3 hosts" in screen  # the box title
        head = next(line for line in lines if "REMOTE" in line and "PID" in line)
        assert "LOCAL" in head and "UP/s" in head
        table = detail.query_one("#detail-conns", ConnTable)
        # Host headings, busiest first, each followed by its connections.
        order = [k for k in table.order if k.startswith("host:")]
        assert order == ["host:203.0.113.7", "host:198.51.100.20", "host:2001:db8::5"]
        first = table.order[: table.order.index("host:198.51.100.20")]
        assert [k.split("|")[0] for k in first[1:]] == ["901", "902"]
        edge = next(line for line in lines if "edge.example.test" in line)
        assert "2 connections" in edge and "5.0MiB" in edge  # the sums of both workers
        rows = [line for line in lines if "203.0.113.7:51300" in line]
        assert rows and " 902 " in rows[0]  # the connection's own PID


async def test_enter_on_a_host_row_of_the_drill_down_opens_the_host() -> None:
    async with running() as (app, pilot):
        detail = await open_process(app, pilot, 900)
        table = detail.query_one("#detail-conns", ConnTable)
        table.focus()
        await pilot.pause()
        table.move_cursor(row=table.order.index("host:198.51.100.20"))
        await press(pilot, "enter")
        assert isinstance(app.screen, HostScreen) and app.screen.address == OFFICE


async def test_enter_on_a_child_in_the_tree_opens_that_child() -> None:
    async with running() as (app, pilot):
        detail = await open_process(app, pilot, 900)
        tree = detail.query_one("#detail-tree", Tree)
        assert str(tree.root.children[0].label).startswith("nginx 901")
        tree.move_cursor(tree.root.children[0])
        await press(pilot, "enter")
        child = app.screen
        assert isinstance(child, DetailScreen)
        assert child.process_key == row_key(901, T0 - 1901)
        assert "PID 901" in screen_lines(app)[0]
        await press(pilot, "escape")
        back = app.screen
        assert isinstance(back, DetailScreen) and back.process_key == row_key(900, T0 - 1900)
        await press(pilot, "escape")
        assert app.screen is app.main


async def test_drill_down_of_a_talker_without_children_lists_its_own() -> None:
    async with running() as (app, pilot):
        await open_process(app, pilot, 2002)
        screen = text(app)
        assert "connections (2 to 1 host)" in screen and "(with children:" not in screen
        assert "objects.example.te" in screen and "192.0.2.80:443" in screen  # (cut to fit)
        assert "12.0MiB" in screen  # its busiest connection's download
