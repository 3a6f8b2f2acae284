"""Command-line pieces shared by `nettop-ui` and its subcommands: the program name,
a parser whose usage errors are one line, argument types, and the TUI's terminal check."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import IO, Any, NoReturn

from nettop_ui import filter_expr

PROG = "nettop-ui"
JOB_COMMANDS = ("run", "attach", "summary", "replay")  # nettop_ui/jobs.py's subcommands


PROFILE_HELP = "eBPF profiling: off-CPU time and syscalls per process (root or CAP_BPF+CAP_PERFMON)"

MIN_INTERVAL_S = 0.05  # faster sampling only burns a core walking /proc


def positive_float(text: str) -> float:
    try:
        value = float(text) if text.isascii() else None  # not Arabic-Indic or other digits
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def interval(text: str) -> float:
    """Seconds between samples: a positive number, at least MIN_INTERVAL_S."""
    value = positive_float(text)
    if value < MIN_INTERVAL_S:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL_S} s: {text!r}")
    return value


def positive_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):  # ASCII digits only
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def backend_and_interval(p: argparse.ArgumentParser) -> None:
    """`--backend` and `--interval`, as every monitoring command takes them."""
    p.add_argument(
        "--backend", default="auto", help="ebpf, nethogs, sockdiag, psutil, ... (default: auto)"
    )
    p.add_argument(
        "--interval", type=interval, default=1.0, help="seconds between samples (at least 0.05)"
    )


def filter_expression(text: str) -> filter_expr.Filter:
    """`--filter`: the filter box's expression, compiled (its error is the message)."""
    try:
        return filter_expr.parse(text)
    except filter_expr.FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_file(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("empty file name")
    return text


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a pointer to --help), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def start_profiling(on: bool, *, watched_tree: bool, detail_all: bool) -> str | None:
    """`--profile`: start the profiler, or say in one line on stderr why it cannot run
    (the rest runs without it); that line is returned too (the TUI shows it)."""
    if not on:
        return None
    from nettop_ui import profile

    problem = profile.enable(watched_tree=watched_tree, detail_all=detail_all)
    if problem:
        print(f"{PROG}: warning: {problem}", file=sys.stderr, flush=True)
    return problem


def reader_gone() -> int:
    """Exit status 0 after the reader of stdout went away (`| head`): stdout is pointed
    at /dev/null so that Python's final flush does not complain about the pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def is_tty(stream: IO[Any] | None) -> bool:
    """An open stream on a terminal. A descriptor closed at start (`<&-`, `>&-`) leaves
    sys.stdin/stdout None."""
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed since
        return False


def closed_stream_problem(instead: str, *, tui_only: bool = False) -> str | None:
    """The error line's text when stdout was closed at start, or stdin while stdout is a
    terminal (the TUI would have run), or either with `tui_only`; None otherwise."""
    if sys.stdout is None:
        closed = "stdout"
    elif sys.stdin is None and (tui_only or is_tty(sys.stdout)):
        closed = "stdin"
    else:
        return None
    return f"the TUI needs a terminal on stdin and stdout, and {closed} is closed; {instead}"
