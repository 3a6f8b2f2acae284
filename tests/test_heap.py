"""nettop_ui/tui/heap.py: automatic collection off while the app runs, dead cycles
collected a few frames in and then at most SETTLE_S seconds apart, settings restored."""

from __future__ import annotations

import gc
import weakref

from nettop_ui.tui.heap import FULL_EVERY, SETTLE_FIRST, SETTLE_S, HeapPolicy


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cycle collector frees it


def dead_cycle() -> weakref.ref[Node]:
    return weakref.ref(Node())


def test_cycles_wait_for_the_settling_and_settings_come_back() -> None:
    now = [1000.0]
    heap = HeapPolicy(clock=lambda: now[0])
    assert gc.isenabled()
    heap.start()
    try:
        assert not gc.isenabled()
        cycle = dead_cycle()
        junk = [[i] for i in range(200_000)]  # far past any automatic threshold
        del junk
        for count in range(1, SETTLE_FIRST):
            heap.frame(count)
        assert cycle() is not None  # nothing collected it yet
        heap.frame(SETTLE_FIRST)
        assert cycle() is None
        cycle = dead_cycle()
        now[0] += SETTLE_S - 1
        heap.frame(SETTLE_FIRST + 1)
        assert cycle() is not None  # not yet SETTLE_S since the last collection
        now[0] += 1
        heap.frame(SETTLE_FIRST + 2)
        assert cycle() is None
    finally:
        heap.stop()
    assert gc.isenabled()


def test_a_cycle_that_outlived_a_settling_waits_for_the_next_full_one() -> None:
    """The settlings after the first are young collections, which leave what lived
    through one to every FULL_EVERY-th, a full one."""
    now = [1000.0]
    heap = HeapPolicy(clock=lambda: now[0])
    heap.start()
    try:
        for count in range(1, SETTLE_FIRST + 1):
            heap.frame(count)
        old = Node()  # alive at a settling: an old object from then on
        count = SETTLE_FIRST + 1
        now[0] += SETTLE_S
        heap.frame(count)
        cycle = weakref.ref(old)
        del old
        young = dead_cycle()
        for settling in range(2, FULL_EVERY):
            count += 1
            now[0] += SETTLE_S
            heap.frame(count)
            assert young() is None  # a young collection frees what was made since
            assert cycle() is not None, f"settling {settling} was full"
        count += 1
        now[0] += SETTLE_S
        heap.frame(count)
        assert cycle() is None  # the FULL_EVERY-th after the first: full
    finally:
        heap.stop()


def test_stop_leaves_collection_off_where_it_was_off() -> None:
    gc.disable()
    try:
        heap = HeapPolicy()
        heap.start()
        heap.stop()
        assert not gc.isenabled()
    finally:
        gc.enable()
