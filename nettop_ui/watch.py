"""Monitoring one process tree: a command started held (`run`) or a running process (`attach`).

`Command` starts CMD through a small Python trampoline that waits for one line on a
pipe before it `exec`s CMD, so CMD's first instruction runs only after the backend is
counting: `watch` releases it (writes the line) from the first sample's callback, and
that first sample comes a few milliseconds after the backend has started. The
trampoline's pid is CMD's pid. When nettop-ui dies or gives up before releasing it,
the pipe closes and the trampoline exits (status NOT_STARTED) without running CMD:
nothing is ever left stopped, as a SIGSTOPped trampoline would be.

`watch` notices CMD's exit without reaping it (waitid WNOWAIT), takes a final sample
while it is a zombie (its /proc files then still hold its totals, reaped children's
disk I/O included), and only then reaps it.

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

from nettop_ui import profile
from nettop_ui.args import PROG
from nettop_ui.collector import Collector, ProcessState, Snapshot
from nettop_ui.core import (
    Backend,
    BackendFailure,
    IntervalSchedule,
    TrafficSample,
    sum_known,
)
from nettop_ui.jsonl import (
    cpu_seconds,
    failure_record,
    member_record,
    meta_record,
    remotes_fields,
    tree_record,
)
from nettop_ui.monitor import STOP_SIGNALS, collector_options, describe_failure, monitor
from nettop_ui.proc_events import TreeScope
from nettop_ui.profile import ProcessProfile
from nettop_ui.tree import TreeTracker

NOT_STARTED = 125  # `run`'s exit status when CMD never ran (nettop-ui failed first)
# python -I -S -c HELD FD EXE CMD ARGS...: wait for "go" on FD, then become CMD.
HELD = f"""\
import os, signal, sys
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an inherited SIG_IGN stays
    signal.signal(signal.SIGINT, signal.SIG_DFL)
fd, exe, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
go = os.read(fd, 3)
os.close(fd)
if go != b"go\\n":
    try:
        os.write(2, b"nettop-ui: its monitor is gone; not starting " + os.fsencode(exe) + b"\\n")
    finally:
        os._exit({NOT_STARTED})
for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; CMD gets the default
    signal.signal(sig, signal.SIG_DFL)
os.execv(exe, argv)
"""
_TRAMPOLINE = [sys.executable, "-I", "-S", "-c", HELD]
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
    before_resume: Callable[[], None] | None = None  # a held command: called just before

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

    def fate(self) -> str:
        """What became of the process when nettop-ui stops early, for the user."""
        return ""


class Command(Target):
    """A command nettop-ui starts held, then resumes once monitoring is attached.

    `resumed` says whether CMD was released (and so ever ran).
    """

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
        held, release = os.pipe()  # only the trampoline inherits `held`
        self._release: int | None = release
        try:
            self.proc = subprocess.Popen(
                [*_TRAMPOLINE, str(held), self.executable, *argv],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(held,),
            )
        except BaseException:
            self._let_go()
            raise
        finally:
            os.close(held)
        self.pid = self.proc.pid
        try:
            self.start_time: float | None = psutil.Process(self.pid).create_time()
        except psutil.Error:
            self.start_time = None

    def resume(self) -> None:
        if self._release is not None:
            if self.before_resume is not None:
                self.before_resume()
            with contextlib.suppress(BrokenPipeError):  # the trampoline was killed already
                os.write(self._release, b"go\n")
                self.resumed = True
            self._let_go()

    def _let_go(self) -> None:
        """Close our end of the pipe: a trampoline not yet released exits without CMD."""
        if self._release is not None:
            os.close(self._release)
            self._release = None

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

    def finish(self) -> int | None:
        """CMD's exit status; None when it never ran (it was never released)."""
        code = self.proc.wait()
        return exit_status(code) if self.resumed else None

    def abandon(self) -> None:
        if not self.resumed:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()  # before the pipe closes: no "monitor is gone" line
            self._let_go()
            self.proc.wait()

    def fate(self) -> str:
        if not self.resumed:
            return "CMD was not started"
        code = self.proc.poll()
        if code is None:
            return f"CMD keeps running as PID {self.pid}"
        return f"CMD exited with status {exit_status(code)}"


class Attached(Target):
    """A running process nettop-ui follows until it exits."""

    mode = "attach"

    def __init__(self, pid: int) -> None:
        try:
            if pid <= 0:
                raise psutil.NoSuchProcess(pid)
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
        """Exited, or exited and its PID given to a new process (is_running checks)."""
        try:
            return not self._proc.is_running() or self._proc.status() == psutil.STATUS_ZOMBIE
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
    members = tracker.update(snap)
    if isinstance(target, Command) and not target.resumed:
        tracker.not_running_yet(target.pid, os.path.basename(target.executable or "")[:15])
    profiling = snap.profiles is not None
    processes = [member_record(m, profiling) for m in members]
    remotes = tracker.remotes if snap.remotes is not None else None  # none after a fallback
    if isinstance(target, Command):  # the held trampoline, or a zombie's empty argv: say CMD
        for record in processes:
            trampoline = record["cmdline"][: len(_TRAMPOLINE)] in ([], _TRAMPOLINE)
            if record["pid"] == target.pid and trampoline:
                record["cmdline"] = target.cmdline
    tree = tree_record(tracker.aggregate(snap))
    if snap.profiles is not None:
        tree["ebpf"] = _tree_ebpf(snap.profiles, tracker, [m.state for m in members])
    return {
        "type": "sample",
        "ts": snap.ts,
        "interval_s": round(snap.interval_s, 4),
        "tree": tree,
        "processes": processes,
        **remotes_fields(
            remotes.hosts.values() if remotes else None, remotes.folded if remotes else None
        ),
        **tracker.interfaces(snap),
    }


def _tree_ebpf(
    profiles: dict[int, ProcessProfile], tracker: TreeTracker, members: list[ProcessState]
) -> Record | None:
    """The tree's `ebpf` object. A profiler started for run/attach counts only the
    watched tree, following every fork, so with children the tree is all it counted
    (children that came and went between two scans included); without, the root alone.
    One that counts every process (`--profile` started otherwise, in the same program
    through the API) gives the members' sum."""
    profiler = profile.active()
    if not tracker.include_children:
        pids = {tracker.root_pid}
    elif profiler is not None and profiler.filtered:
        pids = set(profiles)
    else:
        pids = {m.pid for m in members}
    merged = profile.merge(p for pid, p in profiles.items() if pid in pids)
    cpu = sum_known(cpu_seconds(m) for m in members)
    return None if merged is None else merged.as_dict(cpu)


class _TreeRecorder:
    """The monitor's sink for `watch`: a `sample` record of the tree per tick (a held
    command is released first), an `event` record per backend failure, and `fatal`, the
    failure no fallback took over from, in words. `note`, a line for stderr, is said with
    the first sample (not when monitoring never started)."""

    def __init__(
        self,
        target: Target,
        tracker: TreeTracker,
        sink: Callable[[Record], None],
        note: str | None = None,
    ):
        self.target = target
        self.tracker = tracker
        self.sink = sink
        self.fatal: str | None = None
        self.note = note

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        if self.note:
            print(f"{PROG}: {self.note}", file=sys.stderr)
            self.note = None
        record = tree_sample(snap, self.tracker, self.target)
        self.target.resume()  # before the sink: whoever sees a sample sees CMD released
        self.sink(record)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        self.sink(failure_record(failure))

    def end(self, failure: BackendFailure | None) -> None:
        self.fatal = None if failure is None else describe_failure(failure)


def watch_in_kernel(target: Target, children: bool) -> None:
    """`--profile` in run/attach: have the kernel count this tree: the pid and, with
    `children`, its descendants now (the kernel adds those forked later). A held
    command is counted from its release, so that the hold is not its off-CPU time."""
    profiler = profile.active()
    if profiler is None or not profiler.filtered:
        return

    def start() -> None:
        assert profiler is not None
        pids = [target.pid]
        if children:
            with contextlib.suppress(psutil.Error):
                pids += [c.pid for c in psutil.Process(target.pid).children(recursive=True)]
        profiler.watch(pids)

    if isinstance(target, Command):
        target.before_resume = start
    else:
        start()


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

    With `handle_signals` (main thread only), SIGINT, SIGTERM and SIGHUP are forwarded
    to a command nettop-ui started (which then exits, ending the recording with a final
    sample), and end the monitoring of an attached process. `failure` is the message
    of a backend failure no fallback took over from. The exit status is None for a
    command that never ran. An exception from `sink` ends monitoring at once (no
    `end` line); a command not yet released is then killed, one running keeps running.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    started = time.time()
    # Only the tree's /proc files are read; its new processes come from the kernel's
    # process events (proc_events.py), else from reading every process's parent.
    scope = None
    if sys.platform == "linux":  # a held command has no children yet: nothing to scan for
        scope = TreeScope(target.pid, opts.include_children, isinstance(target, Command))
    fallback = scope.fallback if scope is not None else None
    note = f"{fallback}: finding new processes by reading all" if fallback else None
    recorder = _TreeRecorder(target, TreeTracker(target.pid, opts.include_children), sink, note)
    collector = Collector(
        **collector_options(opts.backend), scope=scope, system=False, history_size=0
    )
    backend = opts.backend()
    # A backend that counts the machine's sockets (psutil) leaves that to the collector,
    # which counts the tree's own, every tick as the backend did.
    if fallback is None and scope is not None and backend.leave_socket_counts():
        collector.connection_count_every_s = 0.0
    interrupted = False

    def on_signal(sig: int) -> None:
        nonlocal interrupted
        interrupted = True
        if not isinstance(target, Command):
            stop.set()  # stop watching; the attached process is not ours to signal
        elif not (sig == signal.SIGINT and _terminal_sends_sigint()):
            target.forward(sig)  # CMD exits, and that ends the recording

    if handle_signals:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
    watch_in_kernel(target, opts.include_children)
    waiter = asyncio.ensure_future(target.exited())
    waiter.add_done_callback(lambda _: stop.set())
    reason = "exited"
    try:
        sink(watch_meta(target, opts, started))
        await monitor(
            backend,
            opts.interval_s,
            recorder,
            duration_s=opts.duration_s,
            stop=stop,
            schedule=_SoonFirst(opts.interval_s, opts.max_interval_s),
            handle_signals=False,
            fallbacks=opts.fallbacks,
            collector=collector,
        )
        if not waiter.done():
            reason = "interrupted" if interrupted else "stopped"
            if recorder.fatal:
                reason = "backend_failed"
            elif opts.duration_s is not None and time.time() - started >= opts.duration_s:
                reason = "duration"
        if isinstance(target, Command) and not target.resumed:
            target.abandon()  # the backend never started, or a signal came first: CMD never ran
            if recorder.fatal:
                reason = "backend_failed"
            elif interrupted:
                reason = "interrupted"
        elif isinstance(target, Command):
            await waiter  # monitoring ended early: CMD still runs to its end
        code = target.finish()
    finally:
        collector.close()
        if scope is not None:
            scope.close()
        waiter.cancel()
        if isinstance(target, Command) and not target.resumed:
            target.abandon()  # never leave a held command stopped behind (a crash, ^C)
        if handle_signals:
            for sig in STOP_SIGNALS:
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
    return code, recorder.fatal
