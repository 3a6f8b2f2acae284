"""Monitoring one process tree: a command started held (`run`) or a running process (`attach`).

`Command` starts CMD through a two-word shell trampoline that stops itself
(`kill -STOP $$`) before `exec`ing CMD, so CMD's first instruction runs only after the
backend is counting: `watch` resumes it (SIGCONT) from the first sample's callback,
and that first sample comes a few milliseconds after the backend has started. The
trampoline's pid is CMD's pid. `watch` notices CMD's exit without reaping it
(waitid WNOWAIT), takes a final sample while it is a zombie (its /proc files then
still hold its totals, reaped children's disk I/O included), and only then reaps it.

`Attached` follows a process nettop-ui did not start, until it exits (polled).

Every sample goes to a sink as a record of the recording schema (docs/json-schema.md):
a `meta` line, one `sample` per tick (the tree's aggregate and each member), `event`
lines for backend failures, and an `end` line with the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import psutil

from nettop_ui.collector import Snapshot
from nettop_ui.core import Backend, BackendFailure, IntervalSchedule, TrafficSample
from nettop_ui.jsonl import failure_record, meta_record
from nettop_ui.monitor import monitor
from nettop_ui.tree import TreeTracker

HELD = 'kill -STOP $$; exec "$@"'  # sh -c HELD sh CMD ARGS...: stop, then become CMD
_TRAMPOLINE = ["/bin/sh", "-c", HELD]
FIRST_TICK_S = 0.02  # the held command waits this long after the backend has started
ATTACH_POLL_S = 0.1

Record = dict[str, Any]


class TargetError(Exception):
    """The command cannot be started or the process does not exist; one line for the user.

    `status` is the exit status to end with: 127 for a command that is not found.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def exit_status(returncode: int) -> int:
    """A shell's convention: a command killed by signal N exits 128+N."""
    return 128 - returncode if returncode < 0 else returncode


class Target:
    """A process tree's root: its identity and how to wait for it."""

    pid: int
    cmdline: list[str]
    executable: str | None
    start_time: float | None
    mode: str

    def resume(self) -> None:
        """Let the process run (a held command); nothing for an attached process."""

    async def exited(self) -> None:
        """Return once the process has exited (without reaping it, where it is ours)."""
        raise NotImplementedError

    def finish(self) -> int | None:
        """Reap the process and return its exit status; None when it is not ours."""
        return None

    def abandon(self) -> None:
        """Monitoring could not start: release the process."""


class Command(Target):
    """A command nettop-ui starts held, then resumes once monitoring is attached."""

    mode = "run"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stdin: int | IO[Any] | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> None:
        if not argv:
            raise TargetError("no command given")
        exe = argv[0] if os.sep in argv[0] else shutil.which(argv[0])
        if exe is None or not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            raise TargetError(f"command not found or not executable: {argv[0]}", 127)
        self.cmdline = list(argv)
        self.executable = os.path.abspath(exe)
        self.resumed = False
        self.proc = subprocess.Popen(
            [*_TRAMPOLINE, "sh", *argv], stdin=stdin, stdout=stdout, stderr=stderr
        )
        self.pid = self.proc.pid
        _, status = os.waitpid(self.pid, os.WUNTRACED)  # until it has stopped itself
        if not os.WIFSTOPPED(status):  # the shell died first; Popen can no longer reap it
            self.proc.returncode = os.waitstatus_to_exitcode(status)
        try:
            self.start_time: float | None = psutil.Process(self.pid).create_time()
        except psutil.Error:
            self.start_time = None

    def resume(self) -> None:
        if not self.resumed and self.proc.returncode is None:
            self.resumed = True
            os.kill(self.pid, signal.SIGCONT)

    def forward(self, sig: int) -> None:
        """Pass a signal nettop-ui received on to CMD."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def exited(self) -> None:
        if self.proc.returncode is not None:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def wait() -> None:  # a daemon thread: it must never hold the interpreter up
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            with contextlib.suppress(RuntimeError):  # the loop may be gone already
                loop.call_soon_threadsafe(settle)

        threading.Thread(target=wait, name="nettop-ui-waitid", daemon=True).start()
        await done

    def finish(self) -> int:
        return exit_status(self.proc.wait())

    def abandon(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
                os.kill(self.pid, signal.SIGCONT)
            self.proc.wait()


class Attached(Target):
    """A running process nettop-ui follows until it exits."""

    mode = "attach"

    def __init__(self, pid: int) -> None:
        try:
            proc = psutil.Process(pid)
            self.start_time = proc.create_time()
            self.cmdline = proc.cmdline()
            try:
                self.executable: str | None = proc.exe() or None
            except psutil.AccessDenied:
                self.executable = None
        except psutil.NoSuchProcess:
            raise TargetError(f"no process with PID {pid}") from None
        except psutil.AccessDenied:
            raise TargetError(f"not permitted to read process {pid}") from None
        self.pid = pid
        self._proc = proc

    def _gone(self) -> bool:
        try:
            return self._proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    async def exited(self) -> None:
        while not await asyncio.to_thread(self._gone):
            await asyncio.sleep(ATTACH_POLL_S)


@dataclass
class WatchOptions:
    """How to sample: the backend, the interval (adaptive with max_interval_s), the tree."""

    backend: type[Backend]
    backend_reason: str = ""
    interval_s: float = 1.0
    max_interval_s: float | None = None
    include_children: bool = True
    duration_s: float | None = None
    fallbacks: Sequence[type[Backend]] = ()


class _SoonFirst(IntervalSchedule):
    """The schedule, except that the first sample comes FIRST_TICK_S after start."""

    def __init__(self, base_s: float, max_s: float | None) -> None:
        super().__init__(base_s, max_s)
        self._first = True

    def __call__(self, elapsed_s: float) -> float:
        if self._first:
            self._first = False
            return min(FIRST_TICK_S, self.base_s)
        return super().__call__(elapsed_s)


def watch_meta(target: Target, opts: WatchOptions, started: float) -> Record:
    record = meta_record(opts.backend, opts.interval_s, started, opts.backend_reason)
    record.update(
        mode=target.mode,
        pid=target.pid,
        cmdline=target.cmdline,
        executable=target.executable,
        process_start_time=target.start_time,
        max_interval_s=opts.max_interval_s,
        children=opts.include_children,
    )
    return record


def tree_sample(snap: Snapshot, tracker: TreeTracker, target: Target | None = None) -> Record:
    processes = tracker.update(snap)
    if isinstance(target, Command):  # the held trampoline, or a zombie's empty argv: say CMD
        for record in processes:
            if record["pid"] == target.pid and record["cmdline"][:3] in ([], _TRAMPOLINE):
                record["cmdline"] = target.cmdline
    return {
        "type": "sample",
        "ts": snap.ts,
        "interval_s": round(snap.interval_s, 4),
        "tree": tracker.aggregate(snap),
        "processes": processes,
        **tracker.interfaces(snap),
    }


def _terminal_sends_sigint() -> bool:
    """Ctrl-C on our terminal already reaches CMD (same foreground process group)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


async def watch(
    target: Target,
    opts: WatchOptions,
    sink: Callable[[Record], None],
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> tuple[int | None, str | None]:
    """Sample `target`'s tree into `sink` until it exits; return (exit status, failure).

    With `handle_signals` (main thread only), SIGINT and SIGTERM are forwarded to a
    command nettop-ui started (which then exits, ending the recording with a final
    sample), and end the monitoring of an attached process. `failure` is the message
    of a backend failure no fallback took over from.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    started = time.time()
    tracker = TreeTracker(target.pid, opts.include_children)
    failed: list[str] = []
    interrupted: list[int] = []
    sink(watch_meta(target, opts, started))

    def on_snapshot(snap: Snapshot, item: TrafficSample | BackendFailure) -> None:
        if isinstance(item, BackendFailure):
            sink(failure_record(item))
            if item.fallback is None:
                failed.append(f"backend {item.backend} failed: {item.message}")
            return
        sink(tree_sample(snap, tracker, target))
        target.resume()

    def on_signal(sig: int) -> None:
        interrupted.append(sig)
        if not isinstance(target, Command):
            stop.set()  # stop watching; the attached process is not ours to signal
        elif not (sig == signal.SIGINT and _terminal_sends_sigint()):
            target.forward(sig)  # CMD exits, and that ends the recording

    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
    waiter = asyncio.ensure_future(target.exited())
    waiter.add_done_callback(lambda _: stop.set())
    reason = "exited"
    try:
        await monitor(
            opts.backend(),
            opts.interval_s,
            on_snapshot,
            duration_s=opts.duration_s,
            stop=stop,
            schedule=_SoonFirst(opts.interval_s, opts.max_interval_s),
            handle_signals=False,
            fallbacks=opts.fallbacks,
        )
        if not waiter.done():
            reason = "interrupted" if interrupted else "stopped"
            if failed:
                reason = "backend_failed"
            elif opts.duration_s is not None and time.time() - started >= opts.duration_s:
                reason = "duration"
        if isinstance(target, Command) and not target.resumed:
            target.abandon()  # the backend never started: CMD never ran
            reason = "backend_failed"
        elif isinstance(target, Command):
            await waiter  # monitoring ended early: CMD still runs to its end
        code = target.finish()
    finally:
        waiter.cancel()
        if isinstance(target, Command) and not target.resumed:
            target.abandon()  # never leave a held command stopped behind (a crash, ^C)
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    end = time.time()
    sink(
        {
            "type": "end",
            "ts": end,
            "ended": end,
            "started": started,
            "duration_s": round(end - started, 3),
            "reason": reason,
            "exit_code": code,
        }
    )
    return code, failed[0] if failed else None
