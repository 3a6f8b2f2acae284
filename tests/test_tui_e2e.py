"""End to end: the real `nettop-ui` TUI in a real terminal (tmux), against real traffic.

Two named clients upload to the test namespace at known paces; the app runs with the
ebpf backend as a user starts it, from a shell, and is driven with keys. Every check
polls the screen with a deadline (a frame comes once a second).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.netenv import Client, Network, require_root
from tests.tmuxterm import (
    PROMPT,
    App,
    Terminal,
    children_of,
    column,
    gone,
    parse_rate,
    pid_of,
    table_rows,
    tui,
)

HEAVY, HEAVY_RATE = "ntu-tui-heavy", 3_000_000  # bytes/s
LIGHT, LIGHT_RATE = "ntu-tui-light", 400_000
RUN_S = 180  # the clients keep uploading this long at most


@pytest.fixture
def uploads(net: Network) -> Iterator[tuple[Client, Client]]:
    """A heavy and a light paced upload to the namespace, killed after the test."""
    require_root()
    heavy = net.client(HEAVY, "tcp", "v4", up=HEAVY_RATE * RUN_S, rate=HEAVY_RATE)
    light = net.client(LIGHT, "tcp", "v4", up=LIGHT_RATE * RUN_S, rate=LIGHT_RATE)
    try:
        yield heavy, light
    finally:
        for client in (heavy, light):
            client.proc.kill()
            client.proc.wait(10)


def rows_named(screen: str, name: str) -> list[str]:
    return [r for r in table_rows(screen) if f" {name} " in r]


def in_range(measured: float, truth: float) -> bool:
    return 0.5 * truth <= measured <= 2 * truth


def top_is(pid: int, label: str, rate: float) -> Callable[[str], bool]:
    """A screen check: the top row is `pid`, its `label` cell within 0.5x..2x of `rate`."""

    def check(screen: str) -> bool:
        rows = table_rows(screen)
        return pid_of(rows[0]) == pid and in_range(parse_rate(column(screen, rows[0], label)), rate)

    return check


def above(upper: int, lower: int) -> Callable[[str], bool]:
    """A screen check: row `upper` is shown above row `lower` (other traffic may sit
    between them: the machine may be busy with more than this test)."""

    def check(screen: str) -> bool:
        order = pids(screen)
        return upper in order and lower in order and order.index(upper) < order.index(lower)

    return check


def pids(screen: str) -> list[int]:
    return [pid_of(r) for r in table_rows(screen)]


def quit_to_clean_shell(term: Terminal, app: App) -> None:
    """`q` ends the app; the shell is back, usable, out of the alternate screen."""
    left = children_of(app.proc.pid)
    term.keys("q")
    app.wait_exit(10)
    assert not gone(left), "nettop-ui left a child process running"
    screen = term.wait_for(lambda s: s.rstrip().endswith(PROMPT.rstrip()), 10, "prompt")
    assert "Traceback" not in screen and "Error" not in screen, screen
    assert term.display("#{alternate_on}") == "0"
    term.type("echo ok-$((1+1))")
    term.keys("Enter")
    term.wait_for(lambda s: "\nok-2\n" in s, 10, "the shell's echo")


def test_tui_shows_ranks_filters_and_drills_down(
    net: Network, uploads: tuple[Client, Client]
) -> None:
    with tui(160, 48, "--backend", "ebpf", "--interval", "1") as (term, app):
        app.wait_table()
        both = HEAVY_RATE + LIGHT_RATE
        server = next(p.pid for p in net.servers if "srv-tcp4" in p.args)  # type: ignore[operator]
        heavy, light = (c.proc.pid for c in uploads)
        # Default sort, total: the namespace's server receives both uploads.
        term.wait_for(top_is(server, "DOWN/s", both), 60, "the server on top")
        term.wait_for(above(heavy, light), 20, "the heavy client above the light one")
        # s: sort by sent. The heavy uploader on top at its pace, above the light one.
        term.type("s")
        term.wait_for(top_is(heavy, "UP/s", HEAVY_RATE), 20, "the heavy client on top")
        term.wait_for(above(heavy, light), 20, "the heavy client above the light one")
        # r: sort by received. The server again.
        term.type("r")
        term.wait_for(top_is(server, "DOWN/s", both), 20, "the server on top by DOWN")
        # N: by PID, ascending; I: inverted.
        term.type("N")
        term.wait_for(lambda s: pids(s) == sorted(pids(s)) and pids(s)[0] < 100, 10, "PIDs up")
        term.type("I")
        term.wait_for(
            lambda s: pids(s) == sorted(pids(s), reverse=True) and pids(s)[0] > 100, 10, "PIDs down"
        )
        term.type("B")
        term.wait_for(top_is(server, "TOTAL/s", both), 20, "the server on top by TOTAL")

        # /: filter on the light client's name; the heavy one disappears.
        term.type("/")
        term.type(LIGHT)
        screen = term.wait_for(
            lambda s: bool(table_rows(s)) and all(f" {LIGHT} " in r for r in table_rows(s)),
            10,
            "only the light client",
        )
        assert HEAVY not in screen and "srv-tcp4" not in screen
        term.escape()  # keeps the filter, back to the table
        # enter: the drill-down of the (only) row; esc returns to the filtered table.
        term.keys("Enter")
        screen = term.wait_for(lambda s: "connections" in s and LIGHT in s, 10, "the drill-down")
        assert table_rows(screen) == [], "the table should not be on the drill-down"
        term.escape()
        screen = term.wait_for(lambda s: bool(rows_named(s, LIGHT)), 10, "the table again")
        assert HEAVY not in screen
        # delete: clears the filter, everything is back.
        term.keys("DC")
        term.wait_for(lambda s: rows_named(s, HEAVY) and rows_named(s, LIGHT), 10, "all rows")

        quit_to_clean_shell(term, app)


def test_tui_narrow_terminal_still_ranks(uploads: tuple[Client, Client]) -> None:
    with tui(80, 24, "--backend", "ebpf", "--interval", "1") as (term, app):
        app.wait_table()
        term.type("s")
        heavy = uploads[0].proc.pid
        screen = term.wait_for(top_is(heavy, "UP/s", HEAVY_RATE), 60, "the heavy client on top")
        assert all(len(line) <= 80 for line in screen.split("\n"))
        quit_to_clean_shell(term, app)
