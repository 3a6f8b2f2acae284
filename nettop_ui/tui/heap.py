"""How the app tunes Python's garbage collector for a heap of long-lived objects.

With thousands of processes the heap holds some 200,000 objects that live for the
whole run (table rows, histories, Textual's own), while each refresh allocates tens
of thousands that live for a frame. Reference counting frees those as the next frame
replaces them; the cycle collector only matters for the few cycles among them. Left at
its defaults, it walked the long-lived objects again and again: full collections took
~100 ms every few refreshes, and young collections (every 700 allocations) a few ms
more per refresh. With young collections every 10,000 allocations, they still fired
during the freeze of each frame, whose new views are all alive then, and took a third
of it (18 of 31 ms in the host view at 2,000 hosts).

`HeapPolicy` therefore, for the app's lifetime, turns automatic collection off and
collects everything a few frames in, then at the first frame SETTLE_S seconds after the
last collection: a dead cycle lives at most that long, whatever the interval. Those
later collections are young ones (generation 1: what was made since the last one),
and every FULL_EVERY-th is full: a full one walks every long-lived object, ~150 ms at
2,000 processes, which once a minute was a tenth of the UI thread's CPU. So a dead
cycle among objects that had lived through a collection waits for the next full one,
FULL_EVERY * SETTLE_S seconds at most. `stop` turns automatic collection back on.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

SETTLE_FIRST = 3  # frames: the first settling, once start-up's objects are in place
SETTLE_S = 60.0  # then at the first frame this long after the last settling
FULL_EVERY = 10  # settlings: every tenth is full, the others young


class HeapPolicy:
    """Garbage-collector settings for the app's lifetime; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._was_enabled: bool | None = None  # None: not started
        self._settled_at: float | None = None
        self._settlings = 0

    def start(self) -> None:
        if self._was_enabled is None:
            self._was_enabled = gc.isenabled()
            gc.disable()

    def frame(self, count: int) -> None:
        """Frame number `count` has been drawn."""
        now = self._clock()
        due = self._settled_at is not None and now - self._settled_at >= SETTLE_S
        if count == SETTLE_FIRST or due:
            gc.collect(2 if self._settlings % FULL_EVERY == 0 else 1)
            self._settlings += 1
            self._settled_at = now

    def stop(self) -> None:
        if self._was_enabled:
            gc.enable()
        self._was_enabled = None
