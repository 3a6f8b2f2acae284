"""Keeps a long-running nettop-ui's heap from holding on to memory it has freed.

glibc's malloc gives each thread that allocates its own arena (up to eight per core) and
returns freed memory to the system only from the top of the main heap. nettop-ui
allocates on the event loop and in the collector's worker thread, and a tick that takes
longer on a busy machine briefly holds two ticks' worth of objects; the freed space then
stays in the process as RSS. Capping the arenas and trimming the heap now and then keeps
RSS near what is live. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
ARENAS = 2
TRIM_EVERY_S = 30.0


def _libc() -> ctypes.CDLL | None:
    """glibc, or None (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def keep_heap_small() -> threading.Event | None:
    """Cap malloc's arenas (call before other threads start) and trim the heap every
    TRIM_EVERY_S seconds from a daemon thread; set the returned event to stop trimming.
    None where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return None
    libc.mallopt(M_ARENA_MAX, ARENAS)
    stop = threading.Event()

    def trim() -> None:
        while not stop.wait(TRIM_EVERY_S):
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="nettop-ui-heap-trim", daemon=True).start()
    return stop


@contextmanager
def small_heap() -> Iterator[None]:
    """`keep_heap_small` for the duration of a block: the TUI's whole run."""
    trimming = keep_heap_small()
    try:
        yield
    finally:
        if trimming is not None:
            trimming.set()
