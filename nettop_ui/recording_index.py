"""Byte offsets of a large recording's sample lines, so `replay` opens it at once.

`index_recording` checks the first line the way `summary` does (a meta line, or a
sample) and then only finds where each sample line starts, with `bytes.find` over
chunks of the file: a gigabyte takes seconds (docs/benchmarks.md), nothing is parsed.
`IndexedSamples` is the list of samples it indexed: an item is read and checked
(`summary.parse_line`) when asked for. A damaged line found then ends the list there
(`problem` says where), as the full reader would have stopped at it; a last line cut
short (a writer killed mid-line, a full disk) is never indexed, and a second meta line
(files joined) ends the recording.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import BinaryIO, overload

from nettop_ui.summary import (
    MAX_LINE_BYTES,
    Record,
    RecordingError,
    damage_reason,
    parse_line,
)

INDEX_FROM_BYTES = 64 * 1024 * 1024  # replay reads smaller files whole, as before
CHUNK = 8 * 1024 * 1024  # read at a time while indexing
SAMPLE_STARTS = (b'{"type":"sample"', b'{"type": "sample"')  # our writer's, json.dumps's


class IndexedSamples(Sequence[Record]):
    """The sample lines of a recording, read when asked for."""

    def __init__(self, path: str, offsets: array[int]) -> None:
        self.path = path
        self.offsets = offsets
        self.problem: str | None = None
        self._file = open(path, "rb")  # noqa: SIM115 - open as long as the replay runs
        self._cache: dict[int, Record] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | Sequence[Record]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        record = self._cache.get(index)
        if record is None:
            record = self._read(index)
            if len(self._cache) > 4:  # the sample shown and its neighbours
                self._cache.clear()
            self._cache[index] = record
        return record

    def __iter__(self) -> Iterator[Record]:
        return (self[i] for i in range(len(self)))

    def _read(self, index: int) -> Record:
        start = self.offsets[index]
        self._file.seek(start)
        raw = self._file.readline(MAX_LINE_BYTES + 1)
        try:
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError(f"longer than {MAX_LINE_BYTES:,} bytes")
            record = parse_line(raw)
            if record["type"] != "sample":
                raise ValueError("not a sample line")
        except (ValueError, RecursionError) as exc:
            self.problem = f"stopped at byte {start}: {damage_reason(exc)}"
            del self.offsets[index:]
            raise DamagedSample(self.problem) from None
        return record


class DamagedSample(Exception):
    """A sample line turned out damaged when read; the samples now end before it."""


def index_recording(path: str) -> tuple[Record, IndexedSamples]:
    """The recording's meta line ({} without one) and its samples, indexed.

    Raises OSError when the file cannot be read, RecordingError when its first line is
    no recording's or it holds no sample.
    """
    with open(path, "rb") as f:
        first = f.readline(MAX_LINE_BYTES + 1)
        try:
            head = parse_line(first)
        except (ValueError, RecursionError) as exc:
            raise RecordingError(
                f"no samples of a recording in {path} (line 1: {damage_reason(exc)})"
            ) from None
        offsets = array("q", [0] if head["type"] == "sample" else [])
        for start in SAMPLE_STARTS:  # json.dumps's spacing: files not of our writer
            f.seek(len(first) - 1)  # from the newline ending line 1
            offsets.extend(_line_starts(f, b"\n" + start))
            if len(offsets) > 1:
                break
        f.seek(len(first) - 1)
        joined = next(_line_starts(f, b'\n{"type":"meta"'), None)
        problem = None
        if joined is not None:  # as the full reader, stop where a second recording starts
            del offsets[bisect_left(offsets, joined) :]
            problem = f"stopped at byte {joined}: a second recording starts here"
        elif offsets:
            f.seek(offsets[-1])
            if not f.readline(MAX_LINE_BYTES + 1).endswith(b"\n"):
                problem = f"stopped at byte {offsets.pop()}: the last line is cut short"
    if not offsets:
        raise RecordingError(f"no samples of a recording in {path}")
    samples = IndexedSamples(path, offsets)
    samples.problem = problem
    return (head if head["type"] == "meta" else {}), samples


def _line_starts(f: BinaryIO, pattern: bytes) -> Iterator[int]:
    """Where each line starting with `pattern` (its newline first) starts, from `f`'s
    position on, read a chunk at a time (a memory map would count the whole file in
    the replay's RSS)."""
    base = f.tell()
    tail = b""
    while chunk := f.read(CHUNK):
        data = tail + chunk
        pos = 0
        while (pos := data.find(pattern, pos)) != -1:
            pos += 1
            yield base - len(tail) + pos
        tail = data[-(len(pattern) - 1) :]
        base += len(chunk)
