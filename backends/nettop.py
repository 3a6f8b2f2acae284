"""macOS: per-process bytes from Apple's `nettop` in CSV logging mode.

Runs `nettop -P -L 0 -s N -x -n -J bytes_in,bytes_out` (process rows only, CSV, samples
forever, every N seconds, raw numbers, no name resolution). nettop prints a header line
before every sample block and nothing else between blocks; each row is `name.pid,` then
the cumulative bytes of that process's *currently open* sockets. So a process total
drops when one of its sockets closes: the bytes a socket moved since the previous
block are lost when it closes before the next one (deltas are clamped at zero rather
than guessed).

The parser follows the real captures in tests/fixtures/nettop/ (see FORMATS.md there):
columns are mapped by header name, the unnamed column holds `name.pid` (split on the
last dot: names contain dots, spaces and parentheses and are cut to 15 characters),
a row with more fields than its header has commas in its name, connection rows
(`tcp4 a:1<->b:2`, present without -P) belong to the process row above them, empty
byte fields mean "no value". A line longer than LINE_LIMIT is skipped whole and counted
as unparsed; stderr is read all along (so nettop never blocks writing to it) and its
last line explains an exit. nettop is restarted if it exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

from backends.child import Child, stop
from nettop_ui.core import (
    Backend,
    BackendError,
    Coverage,
    Probe,
    ProcessTraffic,
    TrafficSample,
    merge_by_process,
)

log = logging.getLogger(__name__)
CONN_PREFIXES = ("tcp4", "tcp6", "udp4", "udp6", "quic4", "quic6")
QUIET_S = 0.25  # a block is complete once nettop has been silent this long
MAX_QUICK_RESTARTS = 3
LINE_LIMIT = 1 << 16  # longest line read; a row is far shorter (names are cut to 15)


@dataclass(slots=True)
class NettopRow:
    """One process row (or connection row, with `connection` set) of one block."""

    name: str
    pid: int
    bytes_in: int | None
    bytes_out: int | None
    connection: str | None = None  # "tcp4 1.2.3.4:5<->6.7.8.9:10" for connection rows


@dataclass(slots=True)
class NettopParser:
    """Incremental parser: feed lines, get complete blocks of rows."""

    columns: list[str] | None = None
    block: list[NettopRow] = field(default_factory=list)
    bad_lines: int = 0
    _owner: tuple[str, int] | None = None

    def feed(self, line: str) -> list[NettopRow] | None:
        """Consume one line; return the previous block when this line starts a new one."""
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            return None
        fields = line.split(",")
        if "bytes_in" in fields and "bytes_out" in fields:
            done = self.flush()
            self.columns = fields
            return done
        if self.columns is None:  # chatter before the first header (a shell prompt, say)
            self.bad_lines += 1
            return None
        row = self._row(fields)
        if row is None:
            self.bad_lines += 1
            log.debug("nettop: unparsed line %r", line[:200])
        else:
            self.block.append(row)
        return None

    def flush(self) -> list[NettopRow] | None:
        """The block collected so far, if any, and start a new one."""
        done, self.block, self._owner = self.block, [], None
        return done or None

    def _row(self, fields: list[str]) -> NettopRow | None:
        assert self.columns is not None
        cols = self.columns
        name_idx = next((i for i, c in enumerate(cols) if c == "" and i < len(cols) - 1), None)
        if name_idx is None:
            return None
        extra = len(fields) - len(cols)
        if extra < 0:
            return None
        if extra:  # commas inside the name: nettop does not quote fields
            joined = ",".join(fields[name_idx : name_idx + extra + 1])
            fields = [*fields[:name_idx], joined, *fields[name_idx + extra + 1 :]]
        values = dict(zip(cols, fields, strict=True))
        try:
            bytes_in, bytes_out = _count(values["bytes_in"]), _count(values["bytes_out"])
        except ValueError:
            return None
        label = fields[name_idx]
        if label.split(" ", 1)[0] in CONN_PREFIXES and "<->" in label:
            if self._owner is None:
                return None
            name, pid = self._owner
            return NettopRow(name, pid, bytes_in, bytes_out, connection=label)
        name, dot, pid_text = label.rpartition(".")
        if not dot or not pid_text.isdigit():
            return None
        self._owner = (name, int(pid_text))
        return NettopRow(name, int(pid_text), bytes_in, bytes_out)


def _count(text: str) -> int | None:
    text = text.strip()
    return None if text == "" else int(text)


def parse_capture(text: str) -> list[list[NettopRow]]:
    """All blocks of a complete capture (for tests and replay)."""
    parser = NettopParser()
    blocks = [b for line in text.splitlines() if (b := parser.feed(line))]
    if last := parser.flush():
        blocks.append(last)
    return blocks


class DeltaTracker:
    """Turns blocks of cumulative per-process counts into per-interval deltas.

    The first block is the baseline. A process first seen later contributes all of
    its bytes (its sockets are new since the previous block). A count that drops
    (a socket closed) contributes nothing for that interval.
    """

    def __init__(self) -> None:
        self.last: dict[tuple[int, str], tuple[int, int]] | None = None

    def update(self, block: list[NettopRow]) -> list[ProcessTraffic]:
        current: dict[tuple[int, str], tuple[int, int]] = {}
        for row in block:
            if row.connection is None:
                current[(row.pid, row.name)] = (row.bytes_out or 0, row.bytes_in or 0)
        previous, self.last = self.last, current
        if previous is None:
            return []
        out = []
        for (pid, name), (sent, recv) in current.items():
            old_sent, old_recv = previous.get((pid, name), (0, 0))
            d_sent, d_recv = max(sent - old_sent, 0), max(recv - old_recv, 0)
            if d_sent or d_recv:
                out.append(ProcessTraffic(pid, d_sent, d_recv, name=name))
        return out


class NettopBackend(Backend):
    name = "nettop"
    platforms = ("darwin",)
    layer = "socket payload (nettop's per-socket byte counts)"
    coverage = Coverage(
        protocols=("tcp", "udp", "quic"),
        per_connection=False,
        note="bytes of a socket that closes between two samples are missed",
    )
    accuracy_rank = 20
    summary = "macOS nettop -P -L 0: per-process bytes, no root needed"

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or shutil.which("nettop") or "nettop"
        self._child: Child | None = None
        self._reader: asyncio.Task[None] | None = None
        self._parser = NettopParser()
        self._deltas = DeltaTracker()
        self._pending: list[ProcessTraffic] = []
        self._error: str | None = None
        self._restarts: list[float] = []

    @classmethod
    def probe(cls) -> Probe:
        if shutil.which("nettop") is None:
            fix = "run on macOS, where /usr/bin/nettop ships with the system"
            return Probe(False, "nettop not found on PATH", fix)
        if not sys.platform.startswith("darwin"):
            return Probe(True, "a nettop executable is on PATH (replay or stand-in)")
        return Probe(True, "per-process bytes without root")

    def command(self) -> list[str]:
        seconds = str(max(1, round(self.interval_s)))  # nettop's -s takes whole seconds
        return [
            self.executable,
            "-P",
            "-L",
            "0",
            "-s",
            seconds,
            "-x",
            "-n",
            "-J",
            "bytes_in,bytes_out",
        ]

    async def start(self) -> None:
        await self._spawn()

    async def _spawn(self) -> None:
        env = {**os.environ, "NSUnbufferedIO": "YES"}  # line-buffered output from nettop
        if sys.platform == "darwin":
            env["LC_ALL"] = "en_US.UTF-8"  # plain digits in the numbers
        self._child = await Child.start(self.command(), limit=LINE_LIMIT, env=env, name="nettop")
        self._reader = asyncio.create_task(self._read_lines(self._child))

    async def _read_lines(self, child: Child) -> None:
        usage = False  # whether nettop printed its usage text
        try:
            async for line in child.lines(QUIET_S):
                if line is None:
                    self._take(self._parser.flush())
                    continue
                usage = usage or line.lower().startswith("usage")
                self._take(self._parser.feed(line))
            self._take(self._parser.flush())
        except Exception as exc:  # a bug here must surface through read(), not vanish
            self._error = f"nettop output reader failed: {type(exc).__name__}: {exc}"
            return
        why = await child.exit_reason()
        if usage:
            why = "nettop rejected its arguments and printed its usage text"
        await self._restart_or_fail(why)

    async def _restart_or_fail(self, why: str) -> None:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 30] + [now]
        if len(self._restarts) > MAX_QUICK_RESTARTS:
            self._error = f"nettop keeps exiting: {why}"
            return
        log.warning("nettop exited (%s); restarting it", why)
        self._deltas = DeltaTracker()  # a new nettop starts a new baseline
        self._parser = NettopParser(bad_lines=self.bad_lines)  # the next child counts anew
        await self._spawn()

    @property
    def bad_lines(self) -> int:
        """Lines of nettop's output that did not parse (logged at debug level)."""
        return self._parser.bad_lines + (self._child.overlong if self._child else 0)

    def _take(self, block: list[NettopRow] | None) -> None:
        if block:
            self._pending.extend(self._deltas.update(block))

    async def read(self, interval_s: float) -> TrafficSample:
        if self._error:
            raise BackendError(self._error)
        procs, self._pending = merge_by_process(self._pending), []
        return TrafficSample(time.time(), interval_s, procs)

    async def close(self) -> None:
        reader, self._reader = self._reader, None  # the child stays: bad_lines counts on it
        await stop(self._child, reader)
