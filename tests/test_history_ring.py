"""SeriesSet against a plain list of rows: the same points, oldest first, whatever the
order of appends and repeats, across the growth of its array and the wrap of its ring;
and its array holds only the rows it was given, up to its size."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nettop_ui.history import FIRST_ROWS, SeriesSet

NAMES = ("a", "b")
WIDTH = len(NAMES) + 1  # the timestamp first

# An append (a row of two values, None for unknown) or a repeat of the newest row `n` times.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.none() | st.floats(0, 1e9), st.floats(0, 1e9)),
        st.tuples(st.just("repeat"), st.integers(0, 40)),
    ),
    max_size=120,
)


def same(got: list[float], want: list[float | None]) -> bool:
    return len(got) == len(want) and all(
        math.isnan(g) if w is None else g == w for g, w in zip(got, want, strict=True)
    )


@given(st.integers(1, 70), steps)
def test_series_set_keeps_the_newest_size_points_oldest_first(
    size: int, ops: list[tuple[Any, ...]]
) -> None:
    series = SeriesSet(NAMES, size)
    rows: list[tuple[float, float | None, float]] = []  # every point, oldest first
    ts = 0.0
    for op in ops:
        if op[0] == "append":
            ts += 1
            series.append_row(ts, op[1:])
            rows.append((ts, op[1], op[2]))
        elif rows:
            stamps = [ts + i + 1 for i in range(op[1])]
            ts += op[1]
            series.repeat_last(stamps)
            rows += [(t, *rows[-1][1:]) for t in stamps]
        kept = rows[-size:]
        assert len(series) == len(kept)
        assert series.ts.values() == [r[0] for r in kept]
        assert same(series["a"].values(), [r[1] for r in kept])
        assert same(series["b"].values(), [r[2] for r in kept])
        for n in (0, 1, 3, size):
            assert series["b"].last(n) == series["b"].values()[len(kept) - min(n, len(kept)) :]
        # Rows are allocated as they fill: never more than twice those given, nor the size.
        allocated = len(series._data) // WIDTH
        assert min(size, len(rows)) <= allocated <= min(size, max(FIRST_ROWS, 2 * len(rows)))


def test_a_process_seen_once_costs_a_few_rows_not_its_whole_history() -> None:
    series = SeriesSet(NAMES, 300)
    series.append_row(1.0, (1.0, 2.0))
    assert len(series._data) == FIRST_ROWS * WIDTH
    for ts in range(2, 1000):
        series.append_row(float(ts), (float(ts), 0.0))
    assert len(series._data) == 300 * WIDTH
    assert series["a"].values() == [float(ts) for ts in range(700, 1000)]
