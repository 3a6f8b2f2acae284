"""Both cores busy, and how long a key then takes to show on the TUI's screen.

`saturated(names)` starts one TCP server and, per name, a client of that kernel name
uploading to it over loopback without pause until the block ends; on the way out every
one of them is killed. `filter_round` types a filter in a real terminal (tests/tmuxterm)
at human speed and times each key from sending it to the redrawn screen.
`measured_above` puts the measuring side (this process, and so the tmux server it starts)
at a high priority, so that the times are the app's, not a starved terminal's.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.netenv import GEN
from tests.tmuxterm import Terminal, table_rows

FOREVER = 1 << 50  # bytes: more than any test runs for
KEY_GAP_S = 0.15  # between keys: a person typing
MEASURER_NICE = -10
# The app itself started at the default priority, below its measurer's.
AT_DEFAULT_PRIORITY = ["nice", "-n", str(-MEASURER_NICE)]


@contextlib.contextmanager
def saturated(names: Sequence[str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One full-speed upload per name (its kernel comm), all to one loopback server."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        server = subprocess.Popen(
            [sys.executable, GEN, "tcp-server", "--name", "sat-server"], stdout=subprocess.PIPE
        )
        procs.append(server)
        assert server.stdout is not None
        port = server.stdout.readline().split()[1].decode()
        for name in names:
            cmd = [sys.executable, GEN, "tcp", "--name", name, "--port", port, "--up", str(FOREVER)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@contextlib.contextmanager
def measured_above() -> Iterator[None]:
    """This process (and what it starts from now on) at nice MEASURER_NICE (needs root)."""
    saved = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, MEASURER_NICE)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, saved)


def autogroup_nice(pid: int) -> int | None:
    """The nice of `pid`'s session scheduling group; None without autogroup."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except FileNotFoundError:
        return None


def terminal_above(term: Terminal) -> None:
    """The terminal's tmux server at nice MEASURER_NICE, its session's scheduling group
    (autogroup) too: it draws what is measured, and is in a session of its own."""
    pid = int(term.tmux("display", "-p", "#{pid}").strip())
    os.setpriority(os.PRIO_PROCESS, pid, MEASURER_NICE)
    with contextlib.suppress(FileNotFoundError):  # a kernel without autogroup
        Path(f"/proc/{pid}/autogroup").write_text(str(MEASURER_NICE))


def _filter_line(screen: str) -> str:
    return next((line for line in screen.split("\n") if "Filter:" in line), "")


def _key_to_box(term: Terminal, key: str, text: str) -> float:
    shown = re.compile(r"Filter: " + re.escape(text) + r"(\s|$)")
    return term.seconds_until(
        lambda: term.type(key), lambda s: shown.search(_filter_line(s)), f"{text!r} in the box"
    )


def filter_round(term: Terminal, word: str) -> list[float]:
    """`/`, `word` one key at a time, Enter, then delete (clear the filter): the seconds
    from each key to the screen showing it (the box open; the text so far; only `word`'s
    rows; every row again)."""
    times = [term.seconds_until(lambda: term.type("/"), lambda s: _filter_line(s), "the box")]
    for n in range(1, len(word) + 1):
        time.sleep(KEY_GAP_S)
        times.append(_key_to_box(term, word[n - 1], word[:n]))
    time.sleep(KEY_GAP_S)

    def only_word(s: str) -> bool:
        rows = table_rows(s)
        return bool(rows) and all(word in row for row in rows)

    times.append(term.seconds_until(lambda: term.keys("Enter"), only_word, f"only {word}'s rows"))
    time.sleep(KEY_GAP_S)

    def every_row(s: str) -> bool:
        return any(word not in row for row in table_rows(s))

    times.append(term.seconds_until(lambda: term.keys("DC"), every_row, "every row again"))
    return times


def percentile(values: Sequence[float], p: float) -> float:
    """The value below which `p` percent of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]
