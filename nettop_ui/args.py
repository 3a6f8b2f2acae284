"""Command-line pieces shared by `nettop-ui` and its subcommands: the program name,
a parser whose usage errors are one line, argument types, and the TUI's terminal check."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any, NoReturn

PROG = "nettop-ui"


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a pointer to --help), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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
