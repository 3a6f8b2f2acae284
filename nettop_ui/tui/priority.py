"""Keeps the TUI answering keys when the machine is saturated.

A top is needed most when every core is busy. Two things kept keys waiting there:
the scheduler gave nettop-ui no more than any of the busy programs, and the GIL,
while the collector's thread ran Python loops, went to the thread that had a key to
handle only every 5 ms, once per hand-over (a key takes several). So for the TUI's run:
  - the process runs at nice PRIORITY_NICE where that is allowed (root, or
    CAP_SYS_NICE); elsewhere its priority stays as it was, silently. Where the kernel
    groups processes by session for scheduling (autogroup, on by default on most
    distributions), a process's nice only ranks it within its session, so the
    session's group (/proc/self/autogroup: the terminal nettop-ui runs in) gets the
    same nice while the TUI runs;
  - the GIL is handed over every SWITCH_INTERVAL_S instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

PRIORITY_NICE = -10
SWITCH_INTERVAL_S = 0.001
AUTOGROUP = Path("/proc/self/autogroup")  # "/autogroup-1017 nice 0"


def _autogroup_nice() -> int | None:
    """The nice of this session's scheduling group; None without autogroup."""
    try:
        return int(AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _set_autogroup_nice(nice: int) -> bool:
    try:
        AUTOGROUP.write_text(str(nice))
    except OSError:  # not allowed, or no autogroup
        return False
    return True


def _set_nice(nice: int) -> bool:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:  # not allowed
        return False
    return True


@contextlib.contextmanager
def responsive() -> Iterator[None]:
    """Both settings for the duration of a block, put back after it. Call it before the
    app starts any thread: on Linux a thread's nice is its own; new threads inherit it."""
    saved_switch = sys.getswitchinterval()
    saved_nice = os.getpriority(os.PRIO_PROCESS, 0)
    saved_group = _autogroup_nice()
    nice_raised = saved_nice > PRIORITY_NICE and _set_nice(PRIORITY_NICE)
    group_raised = (
        saved_group is not None
        and saved_group > PRIORITY_NICE
        and _set_autogroup_nice(PRIORITY_NICE)
    )
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(saved_switch)
        if group_raised and saved_group is not None:
            _set_autogroup_nice(saved_group)
        if nice_raised:
            _set_nice(saved_nice)
