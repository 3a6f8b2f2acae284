"""Linux: per-process bytes from `nethogs -t` (libpcap packet capture), for comparison
and as a fallback where eBPF cannot run.

Runs `nethogs -t -v 2 -C -a -d N`: trace mode, cumulative bytes since nethogs started,
UDP on, every device (loopback included), a refresh every N whole seconds. Each
refresh prints `Refreshing:` and then one line per process,
`name[ args]/pid/uid<TAB>sent<TAB>recv` (see tests/fixtures/FORMATS.md, from nethogs's
source). The backend turns those totals into deltas per (pid, name).

What a nethogs byte is: the length of each captured IP packet, headers included, so it
reads above socket payload (and a process's UDP may be counted under "unknown UDP").
Totals print with six significant digits (`1.25701e+07`), so above 1 MB a total is
rounded; deltas are clamped at zero so rounding never makes traffic negative.
Rows nethogs cannot tie to a process (`unknown TCP`, `unknown UDP`, and rows named
after a connection, pid 0) go to the unattributed bucket.

Error sources, all nethogs's own (the wrapper reproduces nethogs's totals exactly,
tested against a tee of its own nethogs's output): six-digit rounding of totals above
1e6 (up to 5 bytes per 1e6, never negative here since deltas clamp at zero and the
baseline keeps the highest total seen); packets seen before nethogs ties a connection to
a process go to "unknown"; nethogs 0.8.7 does not tie unconnected UDP sockets to
processes at all (their bytes are unattributed); on loopback both ends are local, so
nothing is booked as received (each packet counts as sent by the end that sent it:
a receiver's "upload" is its ACKs; the backend marks with LOOPBACK_NOTE the figures of
each process it sees holding a loopback connection); fast bursts lose packets to
libpcap (two nethogs instances watching the same traffic disagree by up to half of a
fast download). A block is complete when
the next `Refreshing:` arrives or nethogs has been quiet for QUIET_S. If nethogs exits,
read() raises BackendError with the last line of its stderr (or the signal that killed
it); it is not restarted. nethogs reports once a refresh (a whole number of seconds),
so read() waits for the next complete block and each sample covers the time since the
previous one: sampled faster, a 0.2 s sample would hold a whole second's bytes (a
1 MiB/s upload read 5 MiB/s, then 0). Samples thus come at nethogs's pace, one a
second at most. nethogs prints a block every refresh, traffic or not; one
silent for STALL_REFRESHES refreshes (stopped, or too busy attributing packets to keep
up) has lost what it did not count, so read() raises BackendError then too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

from backends.child import Child, stop
from nettop_ui import procfs
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
# What nethogs is known to get wrong, measured in tests/test_nethogs.py: marked on the
# processes the backend sees holding a loopback connection.
LOOPBACK_NOTE = "nethogs books loopback traffic as sent by each end and never as received"
QUIET_S = 0.3  # a block is complete once nethogs has been silent this long
STALL_REFRESHES = 4  # refreshes without a line of output before nethogs counts as stalled
LINE_LIMIT = 1 << 20  # longest line read; longer ones are skipped whole, counted as unparsed


@dataclass(frozen=True, slots=True)
class NethogsRow:
    """One process line of a refresh block: cumulative bytes since nethogs started."""

    name: str
    pid: int
    uid: int
    sent: float
    recv: float

    @property
    def attributed(self) -> bool:
        return self.pid > 0


def parse_line(line: str) -> NethogsRow | None:
    """Parse one process line; None if it is not one.

    Fields are split on the last two TABs (a name can contain tabs) or, in copies
    where TABs became spaces, on the last two runs of whitespace; then the name is
    split from `/pid/uid` on the last two slashes (names contain slashes).
    """
    line = line.rstrip("\r\n")
    parts = line.rsplit("\t", 2) if line.count("\t") >= 2 else line.strip().rsplit(None, 2)
    if len(parts) != 3:
        return None
    head, sent_text, recv_text = parts
    head = head.rstrip(" ")
    name, sep1, rest = head.rpartition("/")
    name, sep2, pid_text = name.rpartition("/")
    if not (sep1 and sep2):
        return None
    if not (_is_number(pid_text) and _is_number(rest)):
        return None
    try:
        pid, uid = int(pid_text), int(rest)
        sent, recv = float(sent_text), float(recv_text)
    except ValueError:
        return None
    if pid < 0 or not (sent >= 0 and recv >= 0) or sent == float("inf") or recv == float("inf"):
        return None
    return NethogsRow(name, pid, uid, sent, recv)


def _is_number(text: str) -> bool:
    """ASCII digits only (int() would also take spaces, `_` and other scripts' digits)."""
    return text.isascii() and text.isdigit()


@dataclass(slots=True)
class NethogsParser:
    """Incremental parser: feed lines, get each complete refresh block."""

    block: list[NethogsRow] | None = None
    bad_lines: int = 0
    blocks: int = 0
    _started: bool = field(default=False)

    def feed(self, line: str) -> list[NethogsRow] | None:
        """Consume one line; return the previous block when this line starts a new one."""
        text = line.strip()
        if text == "Refreshing:":
            done = self.flush()
            self.block = []
            return done
        if self.block is None or not text or text.startswith("Unknown connection:"):
            return None  # startup chatter, blank separators, debug lines
        row = parse_line(line)
        if row is None:
            self.bad_lines += 1
            log.debug("nethogs: unparsed line %r", line[:200])
        else:
            self.block.append(row)
        return None

    def flush(self) -> list[NethogsRow] | None:
        done, self.block = self.block, ([] if self.block is not None else None)
        if done is not None:
            self.blocks += 1
        return done


def parse_output(text: str) -> list[list[NethogsRow]]:
    """Every block of a complete `nethogs -t` output (for tests and replays)."""
    parser = NethogsParser()
    blocks = [b for line in text.splitlines() if (b := parser.feed(line)) is not None]
    last = parser.flush()
    if last is not None:
        blocks.append(last)
    return blocks


class NethogsDeltas:
    """Cumulative totals per (pid, name) -> deltas since the previous block."""

    def __init__(self) -> None:
        self.last: dict[tuple[int, str], tuple[float, float]] = {}

    def update(self, block: list[NethogsRow]) -> tuple[list[ProcessTraffic], int, int]:
        """(per-process deltas, unattributed sent, unattributed recv) for one block."""
        procs: list[ProcessTraffic] = []
        un_sent = un_recv = 0
        for row in block:
            key = (row.pid, row.name)
            old_sent, old_recv = self.last.get(key, (0.0, 0.0))
            self.last[key] = (max(row.sent, old_sent), max(row.recv, old_recv))
            d_sent = round(max(row.sent - old_sent, 0.0))
            d_recv = round(max(row.recv - old_recv, 0.0))
            if not (d_sent or d_recv):
                continue
            if row.attributed:
                procs.append(ProcessTraffic(row.pid, d_sent, d_recv, name=display_name(row.name)))
            else:
                un_sent += d_sent
                un_recv += d_recv
        return procs, un_sent, un_recv


def display_name(argv0: str) -> str:
    """nethogs names a process by argv[0], often a path: show its last component."""
    base = argv0.rsplit("/", 1)[-1] if not argv0.endswith("/") else argv0
    return base or argv0


class NethogsBackend(Backend):
    name = "nethogs"
    platforms = ("linux",)
    layer = "wire frames (IP packets with headers, as libpcap captures them; GSO/GRO super-packets)"
    coverage = Coverage(
        protocols=("tcp", "udp"),
        per_connection=False,
        note="packet lengths, not payload; totals rounded to 6 digits; traffic it cannot "
        "tie to a process (unconnected UDP, a connection's first packets) is unattributed",
    )
    accuracy_rank = 40
    has_unattributed = True
    summary = "nethogs -t: libpcap capture attributed through /proc"

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or shutil.which("nethogs") or "/usr/sbin/nethogs"
        self._child: Child | None = None
        self._reader: asyncio.Task[None] | None = None
        self._parser = NethogsParser()
        self._deltas = NethogsDeltas()
        self._pending: list[ProcessTraffic] = []
        self._unattributed = [0, 0]
        self._error: str | None = None
        self._looped: set[int] = set()  # pids seen holding a loopback connection
        self._block = asyncio.Event()  # set when a block completes, cleared by read()
        self._last_read = 0.0  # time.monotonic() of the last read(), or of start()

    @classmethod
    def probe(cls) -> Probe:
        if not sys.platform.startswith("linux"):
            return Probe(False, "runs on Linux only", "")
        path = shutil.which("nethogs") or (
            "/usr/sbin/nethogs" if os.path.exists("/usr/sbin/nethogs") else None
        )
        if path is None:
            return Probe(False, "nethogs is not installed", "apt install nethogs")
        if os.geteuid() != 0 and not _has_capture_caps(path):
            return Probe(
                False,
                "needs root to capture packets",
                f"run with sudo, or setcap cap_net_admin,cap_net_raw+ep {path}",
            )
        return Probe(True, "packet capture on every device")

    @property
    def bad_lines(self) -> int:
        """Lines of nethogs's output that did not parse (logged at debug level)."""
        return self._parser.bad_lines + (self._child.overlong if self._child else 0)

    @property
    def refresh_s(self) -> int:
        return max(1, round(self.interval_s))  # nethogs's -d takes whole seconds

    def command(self) -> list[str]:
        return [self.executable, "-t", "-v", "2", "-C", "-a", "-d", str(self.refresh_s)]

    async def start(self) -> None:
        self._child = await Child.start(self.command(), limit=LINE_LIMIT, name="nethogs")
        self._last_read = time.monotonic()
        self._reader = asyncio.create_task(self._read_lines(self._child))

    async def _read_lines(self, child: Child) -> None:
        try:
            async for line in child.lines(QUIET_S):
                if line is None:
                    if self._parser.block:  # the block is complete: nethogs went quiet
                        await self._take(self._parser.flush())
                    continue
                await self._take(self._parser.feed(line))
            await self._take(self._parser.flush())
            self._error = f"nethogs exited: {await child.exit_reason()}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must surface through read(), not vanish
            self._error = f"nethogs output reader failed: {type(exc).__name__}: {exc}"

    async def _take(self, block: list[NethogsRow] | None) -> None:
        if block:  # never empty: nethogs lists its "unknown" rows even when idle
            procs, un_sent, un_recv = self._deltas.update(block)
            self._pending.extend(procs)
            self._unattributed[0] += un_sent
            self._unattributed[1] += un_recv
            # Looked for as soon as nethogs reports the bytes, while the connection that
            # moved them is most likely still open; a process once seen stays marked.
            moving = {t.pid for t in procs} - self._looped
            if moving:
                self._looped |= await asyncio.to_thread(procfs.loopback_socket_pids, moving)
            self._block.set()

    async def read(self, interval_s: float) -> TrafficSample:
        """The blocks completed since the last read, waiting for the next one if none
        has; the sample covers the time since the last read (not `interval_s`)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._block.wait(), self.refresh_s + 2 * QUIET_S + 0.5)
        self._block.clear()
        if self._error:
            raise BackendError(self._error)
        if self._child is not None:
            self._child.check_silence(
                STALL_REFRESHES * self.refresh_s,
                f" (it refreshes every {self.refresh_s} s): stopped, or too busy to keep up; "
                "what it did not count in that time is lost",
            )
        procs, self._pending = merge_by_process(self._pending), []
        (un_sent, un_recv), self._unattributed = self._unattributed, [0, 0]
        procs = [replace(t, note=LOOPBACK_NOTE) if t.pid in self._looped else t for t in procs]
        now = time.monotonic()
        covered, self._last_read = now - self._last_read, now
        return TrafficSample(
            time.time(),
            covered,
            procs,
            unattributed_sent=un_sent,
            unattributed_recv=un_recv,
        )

    async def close(self) -> None:
        reader, self._reader = self._reader, None  # the child stays: bad_lines counts on it
        await stop(self._child, reader)


def _has_capture_caps(path: str) -> bool:
    """Whether the binary carries cap_net_admin and cap_net_raw (via getcap)."""
    getcap = shutil.which("getcap") or "/usr/sbin/getcap"
    try:
        out = subprocess.run([getcap, path], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "cap_net_admin" in out and "cap_net_raw" in out
