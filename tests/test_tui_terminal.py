"""The real TUI in a real terminal (tmux) under hostile conditions.

Processes with hostile names and command lines move traffic and must show literally,
one row each, without touching the terminal (no clear, no title change); signals and
a closed terminal must end the app with the terminal restored and no child left;
a 20x5 terminal must not crash it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from nettop_ui.tui.priority import PRIORITY_NICE
from nettop_ui.tui.safe import safe_text
from tests.dnsenv import dns_server
from tests.netenv import Network, require, require_root
from tests.saturate import (
    AT_DEFAULT_PRIORITY,
    autogroup_nice,
    filter_round,
    measured_above,
    percentile,
    saturated,
    terminal_above,
)
from tests.tmuxterm import (
    PROMPT,
    Terminal,
    children_of,
    column,
    gone,
    header_line,
    host_cell,
    host_row,
    parse_rate,
    pid_of,
    table_rows,
    tui,
)
from tests.tui_fixtures import spawn_named

# (comm, argv[1:]): markup, CSI clear, OSC title, OSC 8 link, bidi override, tab, newline.
HOSTILE = [
    ("[bold red]x[/]", ["[kworker/0:1]", "[link=http://evil]y[/link]"]),
    (
        "\x1b[2J\x1b]0;pwned\x07",
        ["\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "\x1b]2;owned\x07"],
    ),
    ("\u202eevil\tt\nx", ["line1\nline2\ttab", "\u202egnp.exe"]),
]
# Invalid UTF-8 in the comm and the argv, and a 100 KB argument.
RAW_COMM, RAW_ARGS = b"bad\xff\xfe", [b"\xff\x80arg", b"Z" * 100_000]
ARGV0 = "py"  # short, so the hostile arguments fit on the row
# Sets its comm, then uploads to the loopback server, ~320 KB/s, until killed.
UPLOAD = """
import ctypes, socket, struct, time
ctypes.CDLL(None).prctl(15, {comm!r}, 0, 0, 0)
s = socket.create_connection(("127.0.0.1", {port}))
s.send(struct.pack("!QQ", 1 << 40, 0))
print("ready", flush=True)
while True:
    s.send(b"h" * 16384)
    time.sleep(0.05)
"""


@pytest.fixture
def hostile(net: Network) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One uploading process per HOSTILE entry, then the RAW one; `python - ARGS`, the
    code on stdin."""
    require_root()
    entries: list[tuple[bytes, list[str] | list[bytes]]]
    entries = [(c.encode(), a) for c, a in HOSTILE] + [(RAW_COMM, RAW_ARGS)]
    with uploaders(net, entries) as procs:
        yield procs


@contextlib.contextmanager
def uploaders(
    net: Network, entries: Sequence[tuple[bytes, Sequence[str] | Sequence[bytes]]]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One UPLOAD process per (comm, argv[1:]) entry, `python - ARGS`, the code on stdin,
    each uploading once this yields; killed on the way out."""
    procs = []
    try:
        for comm, args in entries:
            proc = subprocess.Popen(
                [ARGV0, "-", *args],
                executable=sys.executable,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            procs.append(proc)
            code = UPLOAD.format(comm=comm, port=net.ports["tcp-lo"])
            assert proc.stdin and proc.stdout
            proc.stdin.write(code.encode())
            proc.stdin.close()
            assert proc.stdout.readline().strip() == b"ready"
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def program_cell(screen: str, row: str) -> str:
    """The PROGRAM cell of a row (left-aligned; the next cells follow after 2+ spaces)."""
    head = header_line(screen)
    assert head is not None
    start = screen.split("\n")[head].index("PROGRAM")
    return re.split(r"\s{2,}", row[start:])[0]


def test_hostile_names_render_literally_on_one_row(
    hostile: list[subprocess.Popen[bytes]],
) -> None:
    pids = [p.pid for p in hostile]

    def all_shown(screen: str) -> bool:
        shown = {int(r.split()[0]) for r in table_rows(screen)}
        return set(pids) <= shown

    with tui(160, 48, "--backend", "ebpf", "--interval", "1") as (term, _app):
        screen = term.wait_for(all_shown, 90, "every hostile process in the table")
        time.sleep(2)  # a few more frames: any escape that got through would act now
        screen = term.wait_for(all_shown, 10, "every hostile process in the table")
        lines = screen.split("\n")
        assert lines[0].startswith("nettop-ui "), "the screen was cleared or scrolled"
        assert len(lines) >= 48
        rows = table_rows(screen)
        for pid, (comm, args) in zip(pids[:-1], HOSTILE, strict=True):
            (row,) = [r for r in rows if r.split()[0] == str(pid)]
            assert sum(line.lstrip().startswith(f"{pid} ") for line in lines) == 1
            cell = program_cell(screen, row)
            # argv[0] is not the comm, so the whole command line follows the name.
            expected = safe_text(comm) + " " + safe_text(" ".join([ARGV0, "-", *args]))
            # Shown literally (escapes visible, markup as text), maybe cut with an ellipsis.
            assert len(cell) > 20 and expected.startswith(cell.removesuffix("…")), (cell, row)
            assert "\\e" in expected or "[" in expected or "\\u202e" in expected
        # Invalid UTF-8 shows as visible escapes; 100 KB of argv stays on its one row.
        raw_pid = hostile[-1].pid
        (raw_row,) = [r for r in rows if r.split()[0] == str(raw_pid)]
        assert sum(line.lstrip().startswith(f"{raw_pid} ") for line in lines) == 1
        assert program_cell(screen, raw_row).startswith("bad\\xff\\xfe py - \\xff\\x80arg Z")
        assert len(raw_row) <= 160
        title = term.display("#{pane_title}")
        assert "pwned" not in title and "owned" not in title, title
        assert "\x1b" not in screen and "\u202e" not in screen


def assert_restored_shell(term: Terminal) -> None:
    screen = term.wait_for(lambda s: s.rstrip().endswith(PROMPT.rstrip()), 10, "prompt")
    assert "Traceback" not in screen, screen
    assert term.display("#{alternate_on}") == "0", "still on the alternate screen"
    term.type("echo ok-$((1+1))")
    term.keys("Enter")
    term.wait_for(lambda s: "\nok-2\n" in s, 10, "the shell's echo (terminal restored)")


SIGNAL_CASES = [
    (signal.SIGTERM, "ebpf"),
    (signal.SIGINT, "sockdiag"),
    (signal.SIGHUP, "nethogs"),
]
# Quitting (q or a signal) to the process's exit. The goal is 0.2 s (bench/tui.py --quit
# records it); the bound leaves room for a busy machine. It took 0.45 to 0.8 s here
# before (waiting for the final sample, for Textual's input thread, and for Python's
# own shutdown).
QUIT_S = 0.3


@pytest.mark.parametrize(("sig", "backend"), SIGNAL_CASES, ids=lambda v: str(v))
def test_signal_ends_app_and_restores_terminal(
    net: Network, sig: signal.Signals, backend: str
) -> None:
    require_root()
    with tui(160, 48, "--backend", backend, "--interval", "1") as (term, app):
        app.wait_table()
        kids = children_of(app.proc.pid)
        if backend == "nethogs":
            assert any(k.name() == "nethogs" for k in kids), "no nethogs child to check"
        took = app.seconds_to_exit(lambda: os.kill(app.proc.pid, sig))
        assert took < QUIT_S, f"{sig.name}: {took:.3f}s to exit"
        assert not gone(kids), f"{sig.name} left a child running"
        assert_restored_shell(term)


@pytest.mark.parametrize("backend", ["ebpf", "nethogs", "sockdiag", "psutil"])
def test_q_quits_at_once_and_cleanly(net: Network, backend: str) -> None:
    require_root()
    with tui(160, 48, "--backend", backend, "--interval", "1") as (term, app):
        app.wait_table(sampled=False)  # the first look: the backend may still be starting
        kids = children_of(app.proc.pid)
        took = app.seconds_to_exit(lambda: term.keys("q"))
        assert took < QUIT_S, f"{took:.3f}s from q to the exit"
        assert not gone(kids), "q left a child running"
        assert_restored_shell(term)
        term.expect_exit_status(0, "exit status 0")


# A sample interval far longer than starting takes: a table before its end cannot have
# come from a sample. Before the first look, the first table came after a whole interval.
FIRST_INTERVAL_S = 8.0


def test_table_shows_before_the_first_sample_with_unknowns_then_the_measured_figures(
    net: Network,
) -> None:
    """From Enter, the table is up with rows within half the first interval: the
    collector's first look (names, CPU time, memory from /proc/PID/stat), made while the
    backend starts. Until the first sample the rates, users and socket counts read
    unknown, never 0; then they show what was measured: the uploads' rates, root, one
    socket each. (The 2,000-process timing is bench/memory's.)"""
    require_root()
    comm = b"ntu-first"
    args = ("--backend", "ebpf", "--interval", f"{FIRST_INTERVAL_S:g}", "--filter", "ntu-first")
    with uploaders(net, [(comm, [])] * 3) as procs, tui(160, 48, *args) as (term, app):
        pids = {p.pid for p in procs}
        screen = app.wait_table(3 * FIRST_INTERVAL_S, sampled=False)
        took = time.monotonic() - app.entered
        assert took < FIRST_INTERVAL_S / 2, f"{took:.2f}s from Enter to the first table"
        rows = table_rows(screen)
        assert {pid_of(r) for r in rows} == pids, screen  # nettop-ui's own args: not yet read
        for row in rows:
            cells = [column(screen, row, label) for label in ("USER", "UP/s", "TOTAL/s", "CONNS")]
            assert cells == ["-"] * 4, row
        seen: list[tuple[str, str, str]] = []  # (USER, UP/s, CONNS) of every row, every screen

        def measured(screen: str) -> bool:
            ours = [r for r in table_rows(screen) if pid_of(r) in pids]
            cells = [
                (column(screen, r, "USER"), column(screen, r, "UP/s"), column(screen, r, "CONNS"))
                for r in ours
            ]
            seen.extend(cells)
            return len(ours) == len(pids) and all(c[1] != "-" for c in cells)

        term.wait_for(measured, 3 * FIRST_INTERVAL_S, "the first sample's figures")
        for user, up, conns in seen:
            assert (user, up, conns) == ("-", "-", "-") or (
                user == "root" and parse_rate(up) > 0 and conns == "1"
            ), seen


def test_closed_terminal_ends_app_and_its_child(net: Network) -> None:
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    with tui(160, 48, "--backend", "nethogs", "--interval", "1") as (term, app):
        app.wait_table()
        kids = children_of(app.proc.pid)
        assert any(k.name() == "nethogs" for k in kids), "no nethogs child to check"
        term.tmux("kill-session", "-t", "ntu")
        app.wait_exit(10)
        assert not gone(kids), "the closed terminal left a child running"


def stale_size(cmd: list[str]) -> list[str]:
    """`cmd` with COLUMNS and LINES exported at the starting size, as some shells do."""
    return ["env", "COLUMNS=160", "LINES=48", *cmd]


def test_tiny_terminal_does_not_crash_and_redraws(net: Network) -> None:
    """Down to 20x5 and back, with the starting size left in COLUMNS and LINES: the app
    lays itself out for each size the terminal reports (the footer on its 5th line),
    and back at full size every line is drawn again."""
    require_root()
    with tui(160, 48, "--backend", "ebpf", "--interval", "1", wrap=stale_size) as (term, app):
        app.wait_table()
        term.resize(20, 5)
        term.wait_for(
            lambda s: (
                (lines := s.rstrip("\n").split("\n"))[-1].startswith("⏎ Open ? Help")
                and len(lines) <= 5
            ),
            10,
            "the app drawn for a 20x5 screen",
        )
        deadline = time.monotonic() + 3  # three frames drawn at 20x5
        while time.monotonic() < deadline:
            assert app.proc.is_running() and app.proc.status() != psutil.STATUS_ZOMBIE
            time.sleep(0.2)
        assert "Traceback" not in term.screen()
        term.resize(160, 48)
        screen = term.wait_for(lambda s: len(table_rows(s)) >= 20, 10, "the full table again")
        assert screen.split("\n")[0].startswith("nettop-ui ")
        assert "UP/s" in screen and "DOWN/s" in screen and "CONNS" in screen


# -- issue #11: the filter box in a real terminal ---------------------------------------------

PSUTIL = ("--backend", "psutil", "--interval", "1")  # no privileges, every process listed


def filter_line(screen: str) -> str:
    return next((line for line in screen.split("\n") if "Filter:" in line), "")


def open_filter_box(term: Terminal) -> None:
    """`/`, then wait for the box, as a person does before typing (a burst typed with the
    `/` is tests/test_tui_keys.py::test_keys_typed_right_after_slash_land_in_the_filter_box)."""
    term.type("/")
    term.wait_for(lambda s: "Filter:" in filter_line(s), 10, "the filter box")


def test_filter_box_shows_what_is_typed_while_typing() -> None:
    with tui(160, 48, *PSUTIL) as (term, app):
        app.wait_table()
        open_filter_box(term)
        term.type("kworker")
        # The count on the right shows once the start-up notice (6 s) no longer covers it.
        term.wait_for(
            lambda s: (
                "Filter: kworker " in filter_line(s) and re.search(r"\d+ of \d+", filter_line(s))
            ),
            15,
            "the typed text and the match count",
        )
        term.type("/0")  # still editing: more text shows too
        term.wait_for(lambda s: "Filter: kworker/0" in filter_line(s), 10, "more typed text")


# Catastrophic backtracking for a backtracking engine: (a+)+ tried 2**40 ways against the
# run of a's, since the "!" after it keeps $ from matching.
REDOS = "!(a+)+$"


@pytest.mark.parametrize("how", ["q", "SIGTERM"])
def test_hostile_regex_cannot_hang_the_ui(how: str) -> None:
    victim = spawn_named("ntu-redos", "a" * 40 + "!")
    try:
        with tui(160, 48, *PSUTIL) as (term, app):
            app.wait_table()
            open_filter_box(term)
            term.type(REDOS)
            term.keys("Enter")  # close the box, keep the filter
            term.wait_for(
                lambda s: filter_line(s).startswith(f" Filter: {REDOS} ") and " of " in s,
                10,
                "the regex applied (the UI still answering)",
            )
            if how == "q":
                term.type("q")
            else:
                os.kill(app.proc.pid, signal.SIGTERM)
            app.wait_exit(5)
            assert_restored_shell(term)
    finally:
        victim.stop()


@pytest.mark.parametrize("command", ["top", "run"])
def test_stderr_to_a_file_still_draws_on_the_terminal(tmp_path: Path, command: str) -> None:
    """`nettop-ui 2>log`: the TUI draws on the terminal (stdout), the log gets no escapes."""
    log = tmp_path / "err.log"
    args = ["--backend", "psutil", "--interval", "0.5"]
    if command == "run":
        args = ["run", *args, "--", "sleep", "60"]
    with tui(160, 48, *args, f"2>{log}") as (term, app):
        term.wait_for(lambda s: header_line(s) is not None and table_rows(s), 60, "the table")
        term.keys("q")
        app.wait_exit(15)
        assert_restored_shell(term)
    assert "\x1b" not in log.read_text(errors="replace")


# -- issue #13: the remote-host view in a real terminal ------------------------------------

PACED_RATE, PACED_S = 2_000_000, 180  # bytes/s to the namespace's IPv4 address
BURST = 20_000_000  # bytes to its IPv6 address, at once


def test_host_view_shows_the_peers_with_their_rates_and_totals(net: Network) -> None:
    """The real app on ebpf, `h`: a paced upload to the peer's IPv4 address shows on its
    row at its rate, with the uploader in PROCS; after `m`, the IPv6 address's TOTAL is
    the bytes a burst client moved to it (within 1%)."""
    require_root()
    paced = net.client("ntu-host-paced", "tcp", "v4", up=PACED_RATE * PACED_S, rate=PACED_RATE)
    try:
        with tui(160, 48, "--backend", "ebpf", "--interval", "1") as (term, app):
            app.wait_table()
            term.type("h")
            v4, v6 = net.ns_v4, net.ns_v6

            def paced_row(screen: str) -> bool:
                rate = parse_rate(host_cell(screen, v4, "UP/s"))
                return 0.5 * PACED_RATE <= rate <= 2 * PACED_RATE

            screen = term.wait_for(paced_row, 30, f"{v4} at the paced client's rate")
            assert "ntu-host-paced" in host_row(screen, v4)  # PROCS: the uploader
            burst = net.client("ntu-host-burst", "tcp", "v6", up=BURST).wait_done()  # counted
            term.type("m")
            truth = burst.sent + burst.recv

            def burst_total(screen: str) -> bool:
                total = parse_rate(host_cell(screen, v6, "TOTAL"))
                return abs(total - truth) <= 0.01 * truth

            screen = term.wait_for(burst_total, 20, f"{v6} with the burst's {truth} bytes")
            assert "ntu-host-burst" in host_row(screen, v6)
            burst.finish()
    finally:
        paced.proc.kill()
        paced.proc.wait(10)


def test_host_view_names_the_peers_from_a_real_dns_server(net: Network) -> None:
    """nettop-ui in tmux, its resolver a real dnsmasq (tests/dnsenv.py): `h` names the
    peer dnsmasq has a PTR record for (marked `(ptr)`), the peer a process looked up by
    name gets that name, and `n` shows numbers only."""
    require_root()
    peer, other = net.ns_v4, net.ns_v6
    names, forward = {other: "beta.nettop.test"}, {"www.shop.test": peer}
    args = ("--backend", "ebpf", "--interval", "1")

    def row(screen: str, address: str) -> str:
        try:
            return host_row(screen, address)
        except AssertionError:  # not listed yet
            return ""

    with (
        dns_server(net, names, forward=forward) as dns,
        tui(160, 48, *args, wrap=dns.wrap) as (term, app),
    ):
        app.wait_table()
        term.type("h")
        clients = [
            net.client("ntu-tmux-asked", "tcp", "v4", up=2_000_000, hold=30.0,
                       to="www.shop.test", wrap=dns.wrap),
            net.client("ntu-tmux-ptr", "tcp", "v6", up=2_000_000, hold=30.0),
        ]  # fmt: skip
        try:
            term.wait_for(
                lambda s: (
                    "www.shop.test" in row(s, peer) and "beta.nettop.test (ptr)" in row(s, other)
                ),
                30,
                "both peers named",
            )
            term.type("n")
            screen = term.wait_for(
                lambda s: row(s, peer) != "" and "www.shop.test" not in row(s, peer),
                10,
                "numbers only",
            )
            assert "beta.nettop.test" not in row(screen, other)
        finally:
            for c in clients:
                c.proc.kill()
                c.proc.wait(10)


# -- issue #15: keys answered on a saturated machine -------------------------------------------

SATURATING = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
# The same app, unable to raise its priority (root without CAP_SYS_NICE): how the TUI ran
# before, measured in the same run, a round each in turn, so both see the same load.
AS_BEFORE = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "--"]
# p95 of key-to-screen times against the one that cannot raise its priority. The goal
# is 0.2 s with the cores saturated by the generators alone (bench/tui_latency.py records
# it); this shared machine carries other load as well, so the test compares, unless the
# goal itself is met. Before, both were the same (the issue saw a filter not yet applied
# 2.5 s after the Enter). Sampling held while keys come in speeds up both apps alike.
P95_RATIO, P95_GOAL_S = 0.7, 0.2
# Rounds of 8 keys: at 3 (24 keys) the p95 was the second-slowest key, and one slow key
# on this shared VM failed a CI run (0.289 s against 0.396 s: 0.73); 5 rounds give 40.
ROUNDS = 5


def test_filter_typed_at_human_speed_applies_promptly_when_both_cores_are_busy() -> None:
    """`/bravo` Enter, then delete, typed at human speed ROUNDS times with both cores busy
    (eight full-speed loopback uploads), into the TUI and, in turn, into one that cannot
    raise its priority: the keys reach the screen markedly sooner. The measuring side
    (this test, the tmux servers) runs at a high priority so the times are the apps';
    both apps start at the default priority."""
    require_root()
    require(shutil.which("setpriv") is not None, "needs setpriv (util-linux)")
    at_default = [*AT_DEFAULT_PRIORITY]
    with (
        measured_above(),
        saturated(SATURATING),
        tui(160, 48, *PSUTIL, wrap=lambda cmd: [*at_default, *cmd]) as (term, app),
        tui(160, 48, *PSUTIL, wrap=lambda cmd: [*AS_BEFORE, *at_default, *cmd]) as (
            before_term,
            before,
        ),
    ):
        for t in (term, before_term):
            terminal_above(t)
        app.wait_table()
        before.wait_table()
        assert os.getpriority(os.PRIO_PROCESS, app.proc.pid) == PRIORITY_NICE
        assert autogroup_nice(app.proc.pid) in (None, PRIORITY_NICE)
        assert os.getpriority(os.PRIO_PROCESS, before.proc.pid) == 0
        times: list[float] = []
        before_times: list[float] = []
        for _ in range(ROUNDS):
            times += filter_round(term, "bravo")
            before_times += filter_round(before_term, "bravo")
        app.seconds_to_exit(lambda: term.keys("q"))
        # The terminal's session group is put back once the TUI ends.
        assert autogroup_nice(term.shell_pid) in (None, 0)
    p95, before_p95 = percentile(times, 95), percentile(before_times, 95)
    assert p95 < P95_GOAL_S or p95 < P95_RATIO * before_p95, (
        f"p95 {p95:.3f}s against {before_p95:.3f}s; every key: {[round(t, 3) for t in times]}"
    )
