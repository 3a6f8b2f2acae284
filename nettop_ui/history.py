"""Fixed-size numeric history, cheap enough to keep one per process.

A `Ring` stores floats in an `array('d')`, so 2,000 processes with a few series of
300 points each cost megabytes, not the hundreds a deque of tuples would; a
`SeriesSet` allocates its rows as they fill, so a process seen for a tick costs one
small array.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from functools import lru_cache

NAN = float("nan")
FIRST_ROWS = 8  # a SeriesSet's rows at first; it doubles them as they fill


def _window(
    data: array[float], size: int, head: int, count: int, n: int, col: int = 0
) -> list[float]:
    """The newest `n` (at most `count`) entries of column `col` of a ring of `size` rows
    in `data`, `len(data) // size` floats a row, the next to write at row `head`."""
    n = min(max(n, 0), count)
    if n == 0:
        return []
    width = len(data) // size
    start = (head - n) % size
    end = start + n
    if end <= size:
        return data[start * width + col : end * width : width].tolist()
    older = data[start * width + col :: width].tolist()
    return older + data[col : (end - size) * width : width].tolist()


class Ring:
    """The last `size` values appended, oldest first when iterated."""

    __slots__ = ("_count", "_data", "_head", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._data = array("d", bytes(8 * size))
        self._head = 0  # index of the next write
        self._count = 0

    def append(self, value: float) -> None:
        self._data[self._head] = value
        self._head = (self._head + 1) % self.size
        if self._count < self.size:
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[float]:
        return iter(self.values())

    def values(self) -> list[float]:
        return self.last(self._count)

    def last(self, n: int) -> list[float]:
        """The newest `n` values (fewer if not that many yet), oldest first."""
        return _window(self._data, self.size, self._head, self._count, n)


@lru_cache(maxsize=64)
def _columns(names: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names, 1)}  # column 0: the timestamps


class SeriesSet:
    """Named series of equal length, appended to together, with their timestamps.

    One array holds them all, a row per point (timestamp first): one of these is kept
    for every process, so that is two objects rather than a dozen, and one call to
    append a point to all of them.
    """

    __slots__ = ("_columns", "_count", "_data", "_head", "_rows", "size")

    def __init__(self, names: tuple[str, ...], size: int) -> None:
        self.size = size
        self._columns = _columns(tuple(names))
        # Rows are allocated as they fill, up to `size`: most processes live, or are
        # read, for a few ticks only (a talker forked and gone, an idle process nobody
        # looks at), and 300 rows each would be most of the TUI's memory.
        self._rows = min(size, FIRST_ROWS)
        self._data = array("d", bytes(8 * self._rows * (len(names) + 1)))
        self._head = 0  # row of the next write
        self._count = 0

    def append(self, ts: float, **values: float | None) -> None:
        self.append_row(ts, [values.get(name) for name in self._columns])

    def append_row(self, ts: float, values: Iterable[float | None]) -> None:
        """Append one point: `values` in the order of the names (None: unknown, NaN)."""
        base = self._next_row()
        data = self._data
        data[base] = ts
        for i, value in enumerate(values, base + 1):
            data[i] = NAN if value is None else value

    def _next_row(self) -> int:
        """Where the next row starts in `_data`, its place taken (growing the array while
        it holds fewer than `size` rows; till then no row was overwritten, so the rows
        lie oldest first from row 0)."""
        if self._count == self._rows < self.size:
            self._rows = min(self._rows * 2, self.size)
            self._data.frombytes(bytes(8 * (self._rows - self._count) * (len(self._columns) + 1)))
            self._head = self._count
        base = self._head * (len(self._columns) + 1)
        self._head = (self._head + 1) % self._rows
        if self._count < self.size:
            self._count += 1
        return base

    def repeat_last(self, stamps: Iterable[float]) -> None:
        """Append the newest point's values again, at each of `stamps`."""
        if not self._count:
            raise ValueError("no point to repeat")
        width = len(self._columns) + 1
        last = ((self._head - 1) % self._rows) * width
        row = self._data[last : last + width]
        for ts in stamps:
            row[0] = ts
            base = self._next_row()
            self._data[base : base + width] = row

    def newest_is(self, values: Iterable[float | None]) -> bool:
        """Whether the newest point holds `values` (None: unknown, stored as NaN)."""
        if not self._count:
            return False
        width = len(self._columns) + 1
        base = ((self._head - 1) % self._rows) * width + 1
        return all(
            (have != have) if value is None else have == value
            for have, value in zip(self._data[base : base + width - 1], values, strict=True)
        )

    @property
    def ts(self) -> Column:
        return Column(self, 0)

    def __getitem__(self, name: str) -> Column:
        return Column(self, self._columns[name])

    def __len__(self) -> int:
        return self._count


class Column:
    """One series of a SeriesSet, read-only, oldest first."""

    __slots__ = ("_col", "_set")

    def __init__(self, series: SeriesSet, col: int) -> None:
        self._set, self._col = series, col

    def __len__(self) -> int:
        return self._set._count

    def __iter__(self) -> Iterator[float]:
        return iter(self.values())

    def values(self) -> list[float]:
        return self.last(len(self))

    def last(self, n: int) -> list[float]:
        """The newest `n` values (fewer if not that many yet), oldest first."""
        s = self._set
        return _window(s._data, s._rows, s._head, s._count, n, self._col)
