"""How the app tunes Python's garbage collector for a heap of long-lived objects.

With thousands of processes the heap holds some 200,000 objects that live for the
whole run (table rows, histories, Textual's own), while each refresh allocates tens
of thousands that die within it. Left at its defaults, the collector walks the
long-lived ones again and again: automatic full collections took ~100 ms every few
refreshes, and young collections (every 700 allocations) a few ms more per refresh,
together about a tenth of the CPU of a refresh.

`HeapPolicy` therefore
  - freezes what has survived (`gc.freeze`: later collections skip it), after a full
    collection, a few frames in and then every SETTLE_EVERY frames; unfreezing before
    each of those collections lets any cycle that has died among the frozen objects be
    freed, so nothing leaks;
  - collects the young generation every YOUNG_THRESHOLD allocations rather than 700,
    so that fewer of a refresh's short-lived objects are still alive when it runs.
Both are undone when the app stops.
"""

from __future__ import annotations

import gc

SETTLE_FIRST, SETTLE_EVERY = 3, 60  # frames: the first settling, then one a minute or so
YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)


class HeapPolicy:
    """Garbage-collector settings for the app's lifetime; see the module docstring."""

    def __init__(self) -> None:
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(YOUNG_THRESHOLD, *self._saved[1:])

    def frame(self, count: int) -> None:
        """Frame number `count` has been drawn."""
        if count % SETTLE_EVERY == SETTLE_FIRST:
            self.settle()

    @staticmethod
    def settle() -> None:
        """Collect everything, then freeze what survived."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        gc.unfreeze()
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
