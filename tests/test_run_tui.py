"""`nettop-ui run` on a terminal: the real TUI in tmux, its rows cut to the command's tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from tests.tmuxterm import pid_of, table_rows, tui

LOAD = str(Path(__file__).parent / "treeload.py")


def test_run_tui_shows_only_the_tree_and_exits_with_its_code() -> None:
    with tui(150, 40, "run", "--backend", "psutil", "--interval", "0.3", "--",
             sys.executable, LOAD, "--cpu", "4", "--exit", "5") as (term, app):  # fmt: skip
        # The command runs under nettop-ui; with its child, those are the only rows.
        screen = term.wait_for(lambda s: len(table_rows(s)) == 2, 60, "the tree's two rows")
        tree = {p.pid for p in app.proc.children(recursive=True)}
        shown = {pid_of(row) for row in table_rows(screen)}
        assert shown <= tree and len(shown) == 2, (shown, tree)
        assert len(psutil.pids()) > 20  # there were plenty of other processes to hide
        term.wait_for(lambda s: "exited; q quits" in s, 60, "the exit notice")
        term.keys("q")
        app.wait_exit(15)
        term.expect_exit_status(5, "the command's exit code")


def test_quitting_the_tui_terminates_the_command() -> None:
    args = ("run", "--backend", "psutil", "--interval", "0.3", "--", "sleep", "60")
    with tui(150, 40, *args) as (term, app):
        term.wait_for(lambda s: len(table_rows(s)) == 1, 60, "the command's row")
        (sleeper,) = app.proc.children()
        term.keys("q")
        app.wait_exit(15)
        assert not sleeper.is_running()
        term.expect_exit_status(143, "SIGTERM's exit code")


def test_attach_tui_follows_a_process_until_it_exits() -> None:
    sleeper = subprocess.Popen(["sleep", "4"])
    args = ("attach", str(sleeper.pid), "--backend", "psutil", "--interval", "0.3")
    try:
        with tui(150, 40, *args) as (term, app):
            screen = term.wait_for(lambda s: len(table_rows(s)) == 1, 60, "the process's row")
            assert pid_of(table_rows(screen)[0]) == sleeper.pid
            term.wait_for(lambda s: f"process {sleeper.pid} exited" in s, 30, "the exit notice")
            term.keys("q")
            app.wait_exit(15)
            term.expect_exit_status(0, "exit status 0")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_quitting_while_the_command_ignores_sigterm_says_so_and_q_again_kills_it() -> None:
    ignores_term = "'trap \"\" TERM; while :; do sleep 0.2; done'"
    args = ("run", "--backend", "psutil", "--interval", "0.3", "--", "sh", "-c", ignores_term)
    with tui(150, 40, *args) as (term, app):
        term.wait_for(lambda s: len(table_rows(s)) >= 1, 60, "the command's rows")
        (cmd,) = [p for p in app.proc.children() if p.name() == "sh"]
        term.keys("q")
        waiting = f"waiting for PID {cmd.pid} (sh) to exit after SIGTERM"  # a toast wraps
        term.wait_for(lambda s: waiting in s and "SIGKILL" in s, 15, "the wait notice")
        assert cmd.is_running() and app.proc.is_running()  # it ignored SIGTERM; we wait
        term.keys("q")
        app.wait_exit(15)
        assert not cmd.is_running()
        term.expect_exit_status(137, "SIGKILL's exit code")
