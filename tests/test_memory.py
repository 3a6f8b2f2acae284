"""nettop_ui.memory: memory freed after a busy spell goes back to the system.

A worker thread (as the collector's is) allocates 200 MB in blocks big enough for
glibc's malloc, then frees all but every 50th. Without help the freed space stays in the
process as RSS; with `keep_heap_small` it is returned within a trim interval. This is
what kept the TUI's RSS climbing in steps after busy moments (bench/soak --tui).
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading, time, psutil
from nettop_ui import memory
if sys.argv[1] == "trim":
    memory.TRIM_EVERY_S = 0.2
    assert memory.keep_heap_small() is not None
kept = []
def burst():
    blocks = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]
    kept.extend(blocks[::50])  # survivors spread over the heap, as live objects are
    del blocks
t = threading.Thread(target=burst)
t.start()
t.join()
time.sleep(1.0)
print(psutil.Process().memory_info().rss)
"""


def rss_after_burst(mode: str) -> int:
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


def test_freed_memory_goes_back_after_a_busy_spell() -> None:
    held, trimmed = rss_after_burst("none"), rss_after_burst("trim")
    assert held > 150 * 2**20, held  # the burst's 200 MB stayed without help
    assert trimmed < held / 3, (held, trimmed)
