"""The Python API: monitor a process tree from a program (docs/python-api.md).

    from nettop_ui.api import ProcessMonitor, execute_with_monitoring, summarize

    code, samples = execute_with_monitoring(["make", "-j4"], interval_s=0.5)
    print(code, summarize(samples)["cpu_percent_peak"])

    with ProcessMonitor(pid=1234, interval_s=0.5) as mon:
        for sample in mon:            # live, until the process exits or mon.stop()
            print(sample["tree"]["rss_bytes"])

Samples are the `sample` records of the recording schema (docs/json-schema.md), as
dicts, held in memory. Monitoring runs in a background thread with its own event
loop; signals are left to the calling program.

denet's analysis utilities (`aggregate_metrics`, `find_peaks`, `resource_utilization`,
`process_tree_analysis`, `convert_format`, `save_metrics`, `load_metrics`) come from
nettop_ui.analysis: they take these samples, recordings and denet-format files alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from nettop_ui import profile as _profiling
from nettop_ui import registry
from nettop_ui.analysis import (
    MetricsError,
    aggregate_metrics,
    convert_format,
    find_peaks,
    load_metrics,
    process_tree_analysis,
    resource_utilization,
    save_metrics,
)
from nettop_ui.jsonl import JsonlWriter, open_output
from nettop_ui.summary import summarize as _summarize
from nettop_ui.summary import summarize_file
from nettop_ui.watch import Attached, Command, Target, WatchOptions, watch

__all__ = [
    "MetricsError",
    "ProcessMonitor",
    "aggregate_metrics",
    "convert_format",
    "execute_with_monitoring",
    "find_peaks",
    "load_metrics",
    "process_tree_analysis",
    "resource_utilization",
    "save_metrics",
    "summarize",
]

Record = dict[str, Any]
_DONE = object()


class ProcessMonitor:
    """Samples one process tree: a running `pid`, or a `cmd` started held and then resumed.

    `start()` begins (on return the command has not necessarily been resumed yet);
    iterating yields each sample as it is taken, until the process exits; `stop()`
    ends it early (a command started here gets SIGTERM and is waited for); `wait()`
    returns the command's exit status (None for an attached process). `records` holds
    every line (meta, samples, events, end); `samples` only the samples.
    """

    def __init__(
        self,
        *,
        pid: int | None = None,
        cmd: Sequence[str] | None = None,
        backend: str = "auto",
        interval_s: float = 1.0,
        max_interval_s: float | None = None,
        include_children: bool = True,
        duration_s: float | None = None,
        output: str | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        profile: bool = False,
    ) -> None:
        if (pid is None) == (cmd is None):
            raise ValueError("give either pid or cmd")
        cls, why = registry.choose(backend)  # ValueError for an unknown backend
        self.options = WatchOptions(
            backend=cls,
            backend_reason=why,
            interval_s=interval_s,
            max_interval_s=max_interval_s,
            include_children=include_children,
            duration_s=duration_s,
            fallbacks=registry.fallbacks_for(backend, cls),
        )
        self._pid, self._cmd = pid, list(cmd) if cmd is not None else None
        self._output, self._streams = output, (stdout, stderr)
        self.records: list[Record] = []
        self.exit_code: int | None = None
        self.failure: str | None = None
        self.target: Target | None = None
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._profile = profile
        self._own_profiler = False
        # `profile=True` that could not start: the one line saying what is missing.
        self.profile_error: str | None = None

    @property
    def samples(self) -> list[Record]:
        return [r for r in self.records if r["type"] == "sample"]

    def start(self) -> ProcessMonitor:
        """Start monitoring. Raises TargetError for a missing pid or command, OSError
        when `output` cannot be opened (then no command was started)."""
        out = open_output(self._output) if self._output else None
        if self._profile and _profiling.active() is None:
            self.profile_error = _profiling.enable(watched_tree=True, detail_all=True)
            self._own_profiler = self.profile_error is None
        try:
            if self._pid is not None:
                self.target = Attached(self._pid)
            else:
                assert self._cmd is not None
                self.target = Command(self._cmd, stdout=self._streams[0], stderr=self._streams[1])
        except BaseException:
            if out:
                out.close()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(self.target, out), name="nettop-ui-monitor", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        return self

    def _run(self, target: Target, out: IO[str] | None) -> None:
        writer = JsonlWriter(out) if out else None

        def sink(record: Record) -> None:
            self.records.append(record)
            if writer:
                writer.write(record)
            if record["type"] == "sample":
                self._queue.put(record)

        async def go() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            try:
                code, failure = await watch(
                    target, self.options, sink, stop=self._stop, handle_signals=False
                )
            except OSError as exc:  # the output file (a full disk): monitoring ends there
                code, failure = None, f"cannot write {self._output}: {exc.strerror or exc}"
            self.exit_code, self.failure = code, failure

        try:
            asyncio.run(go())
        finally:
            self._ready.set()
            if out:
                out.close()
            if self._own_profiler:
                _profiling.disable()
            self._queue.put(_DONE)

    def __iter__(self) -> Iterator[Record]:
        """Each sample as it is taken, until monitoring ends."""
        while True:
            item = self._queue.get()
            if item is _DONE:
                self._queue.put(_DONE)  # later iterations end at once too
                return
            assert isinstance(item, dict)
            yield item

    def stop(self) -> int | None:
        """End monitoring now (with a final sample); a command started here gets SIGTERM."""
        if isinstance(self.target, Command):
            self.target.forward(signal.SIGTERM)
        elif self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # already finished
                self._loop.call_soon_threadsafe(self._stop.set)
        return self.wait()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until monitoring has ended; the command's exit status (None when attached)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.exit_code

    def __enter__(self) -> ProcessMonitor:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.stop()


def execute_with_monitoring(
    cmd: Sequence[str],
    *,
    backend: str = "auto",
    interval_s: float = 1.0,
    max_interval_s: float | None = None,
    include_children: bool = True,
    output: str | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    profile: bool = False,
) -> tuple[int, list[Record]]:
    """Run `cmd` to its end under monitoring; return (exit status, samples). With
    `profile`, each sample has `ebpf` objects (or, without the privileges, a warning
    line on stderr and none)."""
    mon = ProcessMonitor(
        cmd=cmd,
        backend=backend,
        interval_s=interval_s,
        max_interval_s=max_interval_s,
        include_children=include_children,
        output=output,
        stdout=stdout,
        stderr=stderr,
        profile=profile,
    ).start()
    if mon.profile_error:
        print(f"nettop-ui: warning: {mon.profile_error}", file=sys.stderr)
    code = mon.wait()
    if mon.failure and code is None:
        raise RuntimeError(mon.failure)
    return code if code is not None else -1, mon.samples


def summarize(samples_or_path: Iterable[Record] | str) -> Record:
    """The summary (docs/json-schema.md) of samples in memory, or of a recording file.

    A damaged file is summarised up to the damage; the summary's `stopped` says where.
    """
    if isinstance(samples_or_path, str):
        summary, problem = summarize_file(samples_or_path)
        return {**summary, "stopped": problem}
    return _summarize(samples_or_path)
