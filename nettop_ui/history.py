"""Fixed-size numeric history, cheap enough to keep one per process.

A `Ring` stores floats in an `array('d')`, so 2,000 processes with a few series of
300 points each cost megabytes, not the hundreds a deque of tuples would.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator


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
        start = (self._head - self._count) % self.size
        for i in range(self._count):
            yield self._data[(start + i) % self.size]

    def values(self) -> list[float]:
        return list(self)

    def last(self, n: int) -> list[float]:
        """The newest `n` values (fewer if not that many yet), oldest first."""
        vals = self.values()
        return vals[-n:] if n < len(vals) else vals


class SeriesSet:
    """Named rings of equal size, appended to together, with their timestamps."""

    __slots__ = ("rings", "ts")

    def __init__(self, names: tuple[str, ...], size: int) -> None:
        self.ts = Ring(size)
        self.rings = {name: Ring(size) for name in names}

    def append(self, ts: float, **values: float | None) -> None:
        self.ts.append(ts)
        for name, ring in self.rings.items():
            value = values.get(name)
            ring.append(float("nan") if value is None else float(value))

    def __getitem__(self, name: str) -> Ring:
        return self.rings[name]

    def __len__(self) -> int:
        return len(self.ts)
