"""Signalling a process safely: never PID 1 or ourselves, never a reused PID.

The (pid, create_time) identity shown in the table is checked against the live process
right before signalling. On Linux a pidfd is opened first and the check made after, so
the signal cannot reach a process that took the PID in between.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil

SIGNALS: tuple[tuple[signal.Signals, str], ...] = (
    (signal.SIGTERM, "ask it to terminate (default)"),
    (signal.SIGINT, "interrupt, like ctrl+c"),
    (signal.SIGHUP, "hang up; many daemons reload"),
    (signal.SIGKILL, "kill at once; cannot be caught"),
)
CREATE_TIME_TOLERANCE_S = 0.005  # half a clock tick at CLK_TCK=100


class KillRefused(Exception):
    """A one-line reason the signal was not sent."""


def refusal(pid: int, create_time: float | None, own_pid: int | None = None) -> str | None:
    """Why this process may not be signalled from here at all, or None."""
    if pid <= 1:
        return f"PID {pid} is never signalled from nettop-ui"
    if pid == (own_pid if own_pid is not None else os.getpid()):
        return "that is nettop-ui itself (use q to quit)"
    if create_time is None:
        return f"PID {pid}: its start time is unknown, so it cannot be told from a reused PID"
    return None


def _check_identity(pid: int, create_time: float) -> None:
    try:
        now = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        raise KillRefused(f"PID {pid} has already exited") from None
    except psutil.AccessDenied:
        raise KillRefused(f"PID {pid}: permission denied") from None
    if abs(now - create_time) > CREATE_TIME_TOLERANCE_S:
        raise KillRefused(f"PID {pid} now belongs to another process: not signalled")


def send_signal(
    pid: int, create_time: float | None, sig: signal.Signals, own_pid: int | None = None
) -> None:
    """Send `sig` to the process (pid, create_time); KillRefused with the reason if not."""
    reason = refusal(pid, create_time, own_pid)
    if reason is not None:
        raise KillRefused(reason)
    assert create_time is not None
    pidfd = None
    if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(pid)
    try:
        _check_identity(pid, create_time)
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        raise KillRefused(f"PID {pid} has already exited") from None
    except PermissionError:
        raise KillRefused(f"no permission to signal PID {pid} (run nettop-ui as root)") from None
    finally:
        if pidfd is not None:
            os.close(pidfd)
