"""A real terminal for end-to-end TUI tests: the real `nettop-ui` in a detached tmux.

Each `Terminal` runs its own tmux server (a private socket, no config file) with one
window of a fixed size holding `bash --norc --noprofile` whose prompt is `PROMPT`, so
"back at a clean shell" is checkable. Keys go in with `tmux send-keys`, the screen
comes out with `tmux capture-pane -p`; `wait_for` polls it with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from tests.netenv import require

NETTOP_UI = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "nettop-ui")
PROMPT = "NTU-SHELL> "
ESC_GAP_S = 0.5
_UNIT = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}

Wrap = Callable[[list[str]], list[str]]  # a command line -> how to run it

# The shell's environment, as in a fresh terminal. COLUMNS and LINES stay out: something
# in the test session puts them in the C-level environment (not in os.environ), which
# children inherit, and an app that trusts them ignores every resize.
TERMINAL_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def parse_rate(text: str) -> float:
    """Bytes/s of a table cell such as `2.4MiB` or `0B`."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(B|KiB|MiB|GiB)(?:/s)?", text.strip())
    assert m, f"not a rate: {text!r}"
    return float(m.group(1)) * _UNIT[m.group(2)]


class Terminal:
    """One tmux window of `width` x `height` with a bash at `PROMPT`."""

    def __init__(self, width: int = 160, height: int = 48) -> None:
        require(shutil.which("tmux") is not None, "needs tmux (apt install tmux)")
        self.socket = f"ntu-test-{os.getpid()}-{time.monotonic_ns()}"
        self.target = "ntu:0.0"
        self.tmux(
            "new-session", "-d", "-s", "ntu", "-x", str(width), "-y", str(height),
            "env PS1='NTU-SHELL> ' bash --norc --noprofile",
        )  # fmt: skip
        self.tmux("set", "-g", "window-size", "manual")
        self.tmux("set", "-g", "status", "off")  # the window is the whole terminal
        self.wait_for(lambda s: s.rstrip().endswith(PROMPT.rstrip()), 10, "the shell prompt")

    def tmux(self, *args: str, check: bool = True) -> str:
        res = subprocess.run(
            ["tmux", "-f", "/dev/null", "-L", self.socket, *args],
            env=TERMINAL_ENV,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if check:
            assert res.returncode == 0, f"tmux {args}: {res.stderr}"
        return res.stdout

    def keys(self, *keys: str) -> None:
        """Key names as tmux knows them (Enter, Escape, DC for delete, C-c)."""
        self.tmux("send-keys", "-t", self.target, *keys)

    def escape(self) -> None:
        """The escape key alone. A key sent right after it would read as alt+key (ESC is
        also the start of escape sequences), so leave the app a moment to take it."""
        self.keys("Escape")
        time.sleep(ESC_GAP_S)

    def type(self, text: str) -> None:
        """Literal text, one character at a time as a user types it."""
        self.tmux("send-keys", "-t", self.target, "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target)

    def lines(self) -> list[str]:
        return self.screen().split("\n")

    def display(self, fmt: str) -> str:
        return self.tmux("display", "-p", "-t", self.target, fmt).strip()

    def wait_for(
        self, check: Callable[[str], object], timeout: float, what: str, poll_s: float = 0.2
    ) -> str:
        """Poll the screen until `check(screen)` is true; fail showing the last screen.

        A check that raises (a row not there yet, a cell not a rate yet) counts as false.
        """
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            try:
                if check(screen):
                    return screen
            except (AssertionError, IndexError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s; screen:\n{screen}")
            time.sleep(poll_s)

    def seconds_until(
        self, act: Callable[[], object], check: Callable[[str], object], what: str
    ) -> float:
        """Seconds from `act()` (keys typed) until the screen passes `check`: the time
        from a key to the redrawn screen, to within the polling (every 10 ms)."""
        start = time.monotonic()
        act()
        self.wait_for(check, 10, what, poll_s=0.01)
        return time.monotonic() - start

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "ntu", "-x", str(width), "-y", str(height))

    @property
    def shell_pid(self) -> int:
        return int(self.display("#{pane_pid}"))

    def expect_exit_status(self, code: int, what: str) -> None:
        """Ask the shell for the last command's exit status and wait to see `code`."""
        self.type("echo rc=$?")
        self.keys("Enter")
        self.wait_for(lambda s: f"rc={code}" in s, 10, what)

    def close(self) -> None:
        self.tmux("kill-server", check=False)


class App:
    """`nettop-ui ARGS` started from the terminal's shell, with its process found."""

    def __init__(self, term: Terminal, *args: str, wrap: Wrap | None = None) -> None:
        """`wrap`: how to run it (tests/dnsenv.py: with a test DNS server as resolver)."""
        self.term = term
        cmd = [NETTOP_UI, *args]
        term.type(shlex.join(wrap(cmd)) if wrap is not None else " ".join(cmd))
        term.keys("Enter")
        self.entered = time.monotonic()  # when Enter was sent: the start of the timings
        self.proc = self._find(15)

    def _find(self, timeout: float) -> psutil.Process:
        shell = psutil.Process(self.term.shell_pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in shell.children(recursive=True):
                try:
                    if any("nettop-ui" in part for part in child.cmdline()):
                        return child
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.1)
        raise AssertionError("nettop-ui did not start under the shell")

    def wait_table(self, timeout: float = 90, sampled: bool = True) -> str:
        """Wait until the process table has a header and rows and (`sampled`) the header
        shows the first sample's rates, not the first look's `-/s`: the backend is
        running, so traffic started now is counted."""

        def ready(s: str) -> bool:
            up = header_line(s) is not None and len(table_rows(s)) > 2
            return up and (not sampled or "↑-/s" not in s.split("\n", 1)[0])

        return self.term.wait_for(ready, timeout, "table, sampled" if sampled else "table")

    def seconds_to_exit(self, act: Callable[[], object], timeout: float = 10) -> float:
        """Seconds from `act()` (a key, a signal) to the app's exit, read off a pidfd
        opened before it (no polling interval in the figure)."""
        fd = os.pidfd_open(self.proc.pid)
        try:
            start = time.monotonic()
            act()
            ready, _, _ = select.select([fd], [], [], timeout)
            elapsed = time.monotonic() - start
        finally:
            os.close(fd)
        assert ready, f"nettop-ui still running {timeout}s later"
        return elapsed

    def wait_exit(self, timeout: float = 10) -> None:
        try:
            self.proc.wait(timeout)
        except psutil.TimeoutExpired:
            raise AssertionError(f"nettop-ui still running {timeout}s later") from None

    def kill(self) -> None:
        """Clean-up: the app and whatever it started, by pid."""
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


@contextlib.contextmanager
def tui(
    width: int, height: int, *args: str, wrap: Wrap | None = None
) -> Iterator[tuple[Terminal, App]]:
    """A `width`x`height` terminal running `nettop-ui ARGS` (through `wrap`, if given); on
    the way out the app and what it started are killed and the terminal closed, whatever
    happened."""
    term = Terminal(width, height)
    try:
        app = App(term, *args, wrap=wrap)
        try:
            yield term, app
        finally:
            app.kill()
    finally:
        term.close()


def header_line(screen: str) -> int | None:
    """Index of the table header row (PID ... UP/s ...), or None."""
    for i, line in enumerate(screen.split("\n")):
        if re.match(r"\s*PID[▼▲]?\s+(USER[▼▲]?\s+)?(SERVICE[▼▲]?\s+)?PROGRAM", line) and (
            "UP/s" in line
        ):
            return i
    return None


def table_rows(screen: str) -> list[str]:
    """The process rows under the header, top to bottom (stops at the first non-row)."""
    lines = screen.split("\n")
    head = header_line(screen)
    if head is None:
        return []
    rows = []
    for line in lines[head + 1 :]:
        if not re.match(r"\s*\d+ ", line):
            break
        rows.append(line)
    return rows


def column(screen: str, row: str, label: str, head: int | None = None) -> str:
    """The right-aligned cell of `row` under the header `label` (sort arrow included);
    `head`: the header's line (default: the process table's)."""
    head = header_line(screen) if head is None else head
    assert head is not None
    header = screen.split("\n")[head]
    m = re.search(re.escape(label) + r"[▼▲]?", header)
    assert m, f"no {label} column in {header!r}"
    return row[: m.end()].split()[-1]


def host_header_line(screen: str) -> int | None:
    """Index of the remote-host table's header row (ADDRESS ... UP ...), or None."""
    for i, line in enumerate(screen.split("\n")):
        if re.match(r"\s*ADDRESS[▼▲]?\s", line) and " UP" in line:
            return i
    return None


def host_row(screen: str, address: str) -> str:
    """The host table's row of `address` (it starts with the address)."""
    head = host_header_line(screen)
    assert head is not None, "no host table"
    lines = screen.split("\n")[head + 1 :]
    row = next((line for line in lines if line.lstrip().startswith(address + " ")), None)
    assert row is not None, f"no row for {address}"
    return row


def host_cell(screen: str, address: str, label: str) -> str:
    """The right-aligned cell under `label` in the row of `address`."""
    return column(screen, host_row(screen, address), label, host_header_line(screen))


def pid_of(row: str) -> int:
    return int(row.split()[0])


def children_of(pid: int) -> list[psutil.Process]:
    try:
        kids: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        return kids
    except psutil.NoSuchProcess:
        return []


def gone(procs: list[psutil.Process], timeout: float = 5) -> list[psutil.Process]:
    """Those of `procs` still alive after `timeout` seconds."""
    alive: list[psutil.Process] = psutil.wait_procs(procs, timeout=timeout)[1]
    return alive
