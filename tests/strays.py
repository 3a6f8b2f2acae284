"""A command that leaves a mark when it runs, and the processes a test left behind.

`marked_cmd(marker)` is a CMD whose first act is to create `marker` (so a test knows
whether it ever ran); the marker's path, unique to the test, is also on its command
line, so `strays(marker)` finds it (or the trampoline that would have become it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil

_SCRIPT = "import sys, time\nopen(sys.argv[1], 'w').close()\ntime.sleep(60)\n"


def marked_cmd(marker: Path) -> list[str]:
    """CMD that creates `marker` as soon as it runs, then sleeps a minute."""
    return [sys.executable, "-c", _SCRIPT, str(marker)]


def strays(marker: Path) -> list[psutil.Process]:
    """Processes not yet dead (zombies aside) with `marker` on their command line."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if str(marker) in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def kill_strays(marker: Path) -> list[tuple[int, str]]:
    """Kill what `strays` finds; return each one's (pid, status) as it was found."""
    found = []
    for p in strays(marker):
        try:
            found.append((p.pid, p.status()))
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return found
