"""A helper process a backend runs (nethogs, nettop): start it, read its lines, end it.

Every backend that wraps a command uses `Child` for the part that is the same for all
of them, and keeps only its command line and its parser:

    child = await Child.start([exe, "-t"], limit=1 << 20)   # BackendError if it cannot run
    async for line in child.lines(quiet_s=0.3):  # None: it was quiet for quiet_s
        ...
    child.check_silence(8)            # ChildStalled if stdout was silent for over 8 s
    why = await child.exit_reason()   # after the last line: reaped; its last stderr line
    await child.terminate()           # to end it early; idempotent, always reaps

The child gets argv as a list (never a shell), stdin from /dev/null, and stays in the
caller's process group. Two things go wrong with a child's pipes if read naively, and
`Child` handles both: asyncio's `readline` raises on a line longer than the stream's
limit and leaves the rest of that line to be read as if it were the next one (here a
long line is skipped whole and counted in `overlong`), and a stderr nobody reads fills
its pipe (64 KiB) and blocks the child on its next write, so it stops printing on stdout
too (here stderr is read all along; its last lines are kept in `stderr`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence

from nettop_ui.core import BackendError

log = logging.getLogger(__name__)
STDERR_LINES = 20  # stderr lines kept for error messages
EXIT_WAIT_S = 2.0  # how long exit_reason waits for the rest of stderr after stdout ended
TERMINATE_GRACE_S = 3.0  # SIGTERM to SIGKILL
# A backend's close: what it reads (nethogs, nettop) keeps nothing worth a wait, and a quit
# in its first second found nethogs still setting up capture, deaf to SIGTERM for 3 s.
STOP_GRACE_S = 0.1


class ChildStalled(BackendError):
    """The child printed nothing on stdout for longer than the caller allows."""


class LineReader:
    """Whole lines from a stream; a line over the stream's limit is skipped whole.

    The skipping survives a cancelled `readline` (callers wrap it in `wait_for`), so
    the tail of a long line is never taken for a line of its own.
    """

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.overlong = 0  # lines skipped for being over the limit
        self._skipping = False

    async def readline(self) -> bytes | None:
        """The next line; b"" at the end of the stream; None for a skipped long line."""
        while True:
            try:
                line = await self.stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial  # the last line had no newline, or the stream ended
            except asyncio.LimitOverrunError as exc:
                # Drop what is buffered (up to the newline, if it is there) and go on
                # dropping until that line's newline. The data is already buffered, so
                # readexactly returns without waiting.
                await self.stream.readexactly(exc.consumed)
                self._skipping = True
                continue
            if self._skipping:
                self._skipping = False
                self.overlong += 1
                return None
            return line


async def drain(stream: asyncio.StreamReader, last: deque[str]) -> None:
    """Read `stream` to its end, keeping its last non-empty lines in `last`."""
    reader = LineReader(stream)
    while (raw := await reader.readline()) != b"":
        if raw is None:
            last.append("(a line too long to keep)")
            continue
        line = raw.decode("utf-8", errors="backslashreplace").strip()
        if line:
            last.append(line)


class Child:
    """One running helper process, its stdout read by line, its stderr's tail kept."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, limit: int) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.name = name  # for messages: "nethogs printed nothing for 9 s"
        self.limit = limit
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._proc = proc
        self._stdout = LineReader(proc.stdout)
        self._stderr_task = asyncio.create_task(drain(proc.stderr, self.stderr))
        self._last_output = time.monotonic()

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        limit: int,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> Child:
        """Start `argv`; BackendError (`cannot run ...`) if it cannot be executed.

        `limit`: the longest stdout line kept (longer ones are skipped whole); `env`: its
        whole environment (default: ours); `name`: for messages (default: argv[0]'s
        last component).
        """
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=limit,
            )
        except OSError as exc:
            raise BackendError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        return cls(proc, name or argv[0].rsplit("/", 1)[-1], limit)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status once reaped (minus the signal that killed it), else None."""
        return self._proc.returncode

    @property
    def overlong(self) -> int:
        """Stdout lines skipped for being longer than `limit`."""
        return self._stdout.overlong

    def check_silence(self, limit_s: float, why: str = "") -> None:
        """Raise ChildStalled if stdout has been silent for over `limit_s` (since the
        last line, or the start); `why` is added to its message."""
        silent = time.monotonic() - self._last_output
        if silent > limit_s:
            raise ChildStalled(f"{self.name} printed nothing for {silent:.0f} s{why}")

    async def lines(self, quiet_s: float) -> AsyncIterator[str | None]:
        """Each stdout line (decoded, newline kept) until stdout ends; None each time
        the child has printed nothing for `quiet_s` (a block of output is complete)."""
        # One read outlives the quiet gaps (asyncio.wait, not wait_for): Python 3.11's
        # wait_for could lose a cancel that landed as its timeout fired.
        reading: asyncio.Task[bytes | None] | None = None
        try:
            while True:
                if reading is None:
                    reading = asyncio.ensure_future(self._stdout.readline())
                done, _ = await asyncio.wait({reading}, timeout=quiet_s)
                if not done:
                    yield None
                    continue
                raw, reading = reading.result(), None
                self._last_output = time.monotonic()
                if raw is None:
                    log.debug("%s: skipped a line longer than %d bytes", self.name, self.limit)
                    continue
                if not raw:
                    return
                yield raw.decode("utf-8", errors="backslashreplace")
        finally:
            if reading is not None:
                reading.cancel()

    async def exit_reason(self) -> str:
        """Once stdout has ended: wait for the child to exit (reaping it) and say why,
        by its last stderr line, or else its exit status or the signal that killed it."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._stderr_task, EXIT_WAIT_S)
        code = await self._proc.wait()
        last = self.stderr[-1] if self.stderr else ""
        if code < 0:
            try:
                why = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                why = f"killed by signal {-code}"
            return f"{why} (last stderr line: {last})" if last else why
        return last or f"exit status {code}"

    async def terminate(self, grace_s: float = TERMINATE_GRACE_S) -> None:
        """End the child and reap it: SIGTERM, and SIGCONT so that a stopped child acts
        on it; SIGKILL if it is still there after `grace_s`. Stops reading stderr."""
        proc = self._proc
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
                proc.send_signal(signal.SIGCONT)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await proc.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self._stderr_task


async def stop(child: Child | None, reader: asyncio.Task[None] | None) -> None:
    """A backend's close: cancel its task reading `child`'s lines, end the child, and
    wait for the task (the child's end closes its stdout, so the task ends anyway)."""
    if reader is not None:
        reader.cancel()
    if child is not None:
        await child.terminate(STOP_GRACE_S)
    if reader is not None:
        with contextlib.suppress(BaseException):
            await reader
