"""Reading the output of a helper process a backend runs (nethogs, nettop).

Two things go wrong with a child's pipes if read naively: asyncio's `readline` raises
on a line longer than the stream's limit and leaves the rest of that line to be read
as if it were the next one, and a stderr nobody reads fills its pipe (64 KiB) and
blocks the child on its next write, so it stops printing on stdout too.
"""

from __future__ import annotations

import asyncio
from collections import deque


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
