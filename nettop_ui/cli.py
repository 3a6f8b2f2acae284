"""Command line: `nettop-ui` (the TUI on a terminal, else a one-shot table), `--json`,
`--list-backends`.

Every user error ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn

from nettop_ui import profile, registry
from nettop_ui.args import (
    JOB_COMMANDS,
    PROFILE_HELP,
    PROG,
    OneLineParser,
    backend_and_interval,
    closed_stream_problem,
    filter_expression,
    is_tty,
    output_file,
    positive_float,
    positive_int,
    reader_gone,
    start_profiling,
)
from nettop_ui.collector import ProcessState, Snapshot
from nettop_ui.core import Backend, BackendFailure, TrafficSample
from nettop_ui.filter_expr import Filter, connections_missing
from nettop_ui.format import UNITS, Scale
from nettop_ui.jsonl import (
    JsonlWriter,
    failure_record,
    is_active,
    meta_record,
    open_output,
    sample_record,
    write_problem,
)
from nettop_ui.monitor import Sink, Tee, describe_failure, look_up_names, monitor


class UsageError(Exception):
    """A one-line problem with what the user asked for."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Per-process network traffic next to CPU, memory, disk I/O and GPU.",
        epilog="One command or process: nettop-ui run|attach|summary|replay --help; "
        "history: nettop-ui record|history --help",
    )
    parser.add_argument("--list-backends", action="store_true", help="show backends and exit")
    backend_and_interval(parser)
    parser.add_argument("--json", action="store_true", help="stream JSON Lines instead of the TUI")
    parser.add_argument("--profile", action="store_true", help=PROFILE_HELP)
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    stop.add_argument("--count", type=positive_int, help="stop after this many samples")
    parser.add_argument(
        "--output",
        type=output_file,
        metavar="FILE",
        help="write the JSON Lines to FILE (on a terminal: while the TUI runs, "
        "unless --json, --duration or --count)",
    )
    parser.add_argument(
        "--all", action="store_true", help="JSON: every process, not only those with traffic"
    )
    parser.add_argument(
        "--connections", action="store_true", help="JSON: per-connection detail when known"
    )
    parser.add_argument(
        "--filter",
        type=filter_expression,
        metavar="EXPR",
        help="only the processes EXPR matches, as in the TUI's / box: words, !regex, "
        "host:, port:, proto:, user:, service:, cgroup:, pid: (TUI, --json, the table)",
    )
    parser.add_argument(
        "--units",
        choices=UNITS,
        default="iec",
        help="iec: binary, KiB and MiB (default); si: decimal, kB, MB and Mbit/s",
    )
    parser.add_argument(
        "--no-resolve", action="store_true", help="show remote hosts as numbers: no name lookups"
    )
    prom = parser.add_argument_group("Prometheus exporter (docs/prometheus.md)")
    prom.add_argument(
        "--prometheus", metavar="[HOST:]PORT", help="serve /metrics (host default 127.0.0.1)"
    )
    prom.add_argument("--headless", action="store_true", help="no TUI: only the exporter")
    prom.add_argument(
        "--group-by",
        choices=("name", "user", "cgroup", "service", "exe"),
        default="name",
        help="what the groupname label is (default: program name)",
    )
    prom.add_argument(
        "--prometheus-top",
        type=positive_int,
        default=50,
        metavar="N",
        help='groups with their own series; the rest sum into groupname="other" (default 50)',
    )
    prom.add_argument("--prometheus-pids", action="store_true", help="also per-PID series")
    return parser


def list_backends(out: IO[str]) -> int:
    statuses = registry.probe_all()
    try:
        chosen, _ = registry.choose("auto")
        chosen_name = chosen.name
    except ValueError:
        chosen_name = None
    for st in statuses:
        cls, probe = st.cls, st.probe
        status = "available" if probe.available else "unavailable"
        mark = "  <- auto" if cls.name == chosen_name else ""
        out.write(f"{cls.name:<10} {status:<12} {probe.reason}{mark}\n")
        if not probe.available and probe.fix:
            out.write(f"{'':<10} {'fix:':<12} {probe.fix}\n")
        cov = cls.coverage
        kinds = ", ".join(cov.protocols) + (", per connection" if cov.per_connection else "")
        out.write(f"{'':<10} {'measures:':<12} {cls.layer}\n")
        out.write(f"{'':<10} {'covers:':<12} {kinds}\n")
    if chosen_name:
        out.write(f"auto picks: {chosen_name} (the most accurate that can run here)\n")
    return 0


def resolve_backend(name: str) -> tuple[type[Backend], str]:
    try:
        return registry.choose(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class _Notice:
    """Says on stderr when a fallback takes over; keeps the failure that ended monitoring."""

    def __init__(self) -> None:
        self.fatal: BackendFailure | None = None

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        pass

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        if fallback is not None:
            print(f"{PROG}: {describe_failure(failure)}", file=sys.stderr)

    def end(self, failure: BackendFailure | None) -> None:
        self.fatal = failure


def run_monitor(
    backend: type[Backend],
    interval_s: float,
    sink: Sink,
    *,
    fallbacks: Sequence[type[Backend]] = (),
    duration_s: float | None = None,
    count: int | None = None,
) -> None:
    """Monitor into `sink` in the foreground until a stop, saying on stderr when a fallback
    takes over; a backend failure nothing took over from is a UsageError."""
    notice = _Notice()
    asyncio.run(
        monitor(
            backend(),
            interval_s,
            Tee(sink, notice),
            duration_s=duration_s,
            count=count,
            fallbacks=fallbacks,
        )
    )
    if notice.fatal is not None:
        raise UsageError(describe_failure(notice.fatal))


class _JsonSink:
    """`--json`: a `sample` line per tick and an `event` line per backend failure."""

    def __init__(self, writer: JsonlWriter, args: argparse.Namespace, backend: type[Backend]):
        self.writer = writer
        self.all = args.all
        self.connections = args.connections
        self.filter: Filter | None = args.filter
        self.backend = backend  # the one producing now: the fallback once one took over

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        with_connections = self.connections and self.backend.coverage.per_connection
        self.writer.write(
            sample_record(
                snap,
                all_processes=self.all,
                with_connections=with_connections,
                keep=None if self.filter is None else _keeper(self.filter),
            )
        )

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        self.writer.write(failure_record(failure))
        self.backend = fallback or self.backend

    def end(self, failure: BackendFailure | None) -> None:
        pass


def _keeper(f: Filter) -> Callable[[ProcessState], bool]:
    """`--filter` on the collector's processes, with their connections."""
    return lambda p: f.matches(p, p.connections.values())


def warn_filter(f: Filter | None, backend: type[Backend]) -> None:
    """Say once on stderr when `--filter` has terms `backend` cannot match."""
    if f is not None and f.needs_connections and not backend.coverage.per_connection:
        problem = connections_missing(f, backend.name, registry.with_connections())
        print(f"{PROG}: warning: {problem}", file=sys.stderr)


def _open_stream(args: argparse.Namespace, cls: type[Backend], why: str) -> JsonlWriter:
    """The JSON Lines stream to `--output` (else stdout), its meta line written."""
    try:
        out = open_output(args.output) if args.output else sys.stdout
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    writer = JsonlWriter(out)
    try:
        writer.write(meta_record(cls, args.interval, time.time(), why))
    except OSError as exc:
        out.close()
        raise UsageError(f"cannot write {args.output or 'stdout'}: {write_problem(exc)}") from None
    return writer


def run_json(args: argparse.Namespace) -> int:
    cls, why = resolve_backend(args.backend)
    warn_filter(args.filter, cls)
    writer = _open_stream(args, cls, why)
    out = writer.out
    try:
        run_monitor(
            cls,
            args.interval,
            _JsonSink(writer, args, cls),
            fallbacks=registry.fallbacks_for(args.backend, cls),
            duration_s=args.duration,
            count=args.count,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


class _TableSink:
    """Writes the one-shot table's rows from the first full interval.

    The monitor's final sample covers only the moment between the first and the stop,
    and the collector updates its processes in place, so the rows are taken right away.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.keep = None if args.filter is None else _keeper(args.filter)
        self.scale = Scale(units=args.units)
        self.rows: list[str] | None = None

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        if self.rows is None:
            self.rows = self._rows(snap)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        if self.rows is None:
            self.rows = self._rows(snap)

    def end(self, failure: BackendFailure | None) -> None:
        pass

    def _rows(self, snap: Snapshot) -> list[str]:
        procs = [p for p in snap.processes if is_active(p)]
        if self.keep is not None:
            procs = list(filter(self.keep, procs))
        procs.sort(key=lambda p: -((p.sent_bps or 0) + (p.recv_bps or 0)))
        scale, rows = self.scale, []
        for p in procs:
            total = None if p.sent_bytes is None else p.sent_bytes + (p.recv_bytes or 0)
            user = (p.user or "?")[:10]
            name = p.name.encode("unicode_escape").decode("ascii")
            rows.append(
                f"{p.pid:>7} {user:<10} {scale.traffic_rate(p.sent_bps):>10} "
                f"{scale.traffic_rate(p.recv_bps):>10} {scale.traffic(total):>10}  {name}"
            )
        return rows


def print_table(args: argparse.Namespace) -> int:
    """One-shot table of the processes that moved traffic during one interval."""
    cls, why = resolve_backend(args.backend)
    warn_filter(args.filter, cls)
    table = _TableSink(args)
    run_monitor(cls, args.interval, table, count=1)
    assert table.rows is not None  # monitor ends after one sample, or a failure (raised above)
    print(f"backend: {cls.name} ({cls.layer}); {why}")
    print(f"{'PID':>7} {'USER':<10} {'UP/s':>10} {'DOWN/s':>10} {'TOTAL':>10}  PROGRAM")
    for row in table.rows:
        print(row)
    return 0


class _Recording:
    """`--output FILE` next to the TUI: the stream `--json --output FILE` writes, until a
    write fails (a full disk). Then `tell` (the TUI's notice) says so once, the file
    keeps its whole lines and the TUI runs on."""

    def __init__(self, args: argparse.Namespace, cls: type[Backend], why: str) -> None:
        self.path = args.output
        self.writer = _open_stream(args, cls, why)
        self.stream = _JsonSink(self.writer, args, cls)
        self.problem: str | None = None
        self.tell: Callable[[str], None] = lambda text: None
        # The TUI may quit while a tick is being written (on the collector's thread):
        # the file is closed only between two lines.
        self._lock = threading.Lock()

    def sample(self, snap: Snapshot, sample: TrafficSample) -> None:
        self._guard(self.stream.sample, snap, sample)

    def failure(
        self, snap: Snapshot, failure: BackendFailure, fallback: type[Backend] | None
    ) -> None:
        self._guard(self.stream.failure, snap, failure, fallback)

    def end(self, failure: BackendFailure | None) -> None:
        pass

    def _guard(self, write: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self.problem is not None or self.writer.out.closed:
                return
            try:
                write(*args)
            except OSError as exc:
                self.problem = f"recording to {self.path} stopped: {write_problem(exc)}"
                self.tell(f"{self.problem}; what was written is kept")

    def close(self) -> None:
        with self._lock:
            self.writer.out.close()


def run_tui(args: argparse.Namespace) -> int:
    cls, why = resolve_backend(args.backend)
    if args.profile_problem:  # on stderr too, but the TUI's screen covers it
        why = f"{why}; {args.profile_problem}"
    from nettop_ui.tui import run_tui as tui  # Textual loads only for the TUI

    fallbacks = registry.fallbacks_for(args.backend, cls)
    if not args.output:
        return tui(cls, why, args.interval, fallbacks=fallbacks, **_tui_options(args))
    warn_filter(args.filter, cls)
    recording = _Recording(args, cls, why)
    try:
        code = tui(
            cls,
            why,
            args.interval,
            fallbacks=fallbacks,
            sink=recording,
            notices=recording,
            **_tui_options(args),
        )
    finally:
        recording.close()
    if recording.problem:
        print(f"{PROG}: error: {recording.problem}", file=sys.stderr)
        return code or 1
    return code


def _tui_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the TUI starts with from the command line: the filter box's text, the units."""
    return {"filter_text": args.filter.text if args.filter else "", "units": args.units}


def run_prometheus(args: argparse.Namespace) -> int:
    """`--prometheus`: serve /metrics next to the TUI, or alone with `--headless`."""
    if not args.prometheus:
        raise UsageError("--headless needs --prometheus [HOST:]PORT")
    if args.json or args.output:
        raise UsageError("--prometheus runs with the TUI or --headless, not with --json")
    if args.headless and args.filter is not None:
        raise UsageError("--filter applies to the TUI, --json and the table, not to --headless")
    if not args.headless and not (is_tty(sys.stdout) and is_tty(sys.stdin)):
        raise UsageError("--prometheus without a terminal needs --headless")
    from nettop_ui import prometheus  # prometheus_client loads only for the exporter

    cls, why = resolve_backend(args.backend)
    exporter = prometheus.Exporter(
        cls, group_by=args.group_by, top=args.prometheus_top, pids=args.prometheus_pids
    )
    try:
        server = prometheus.serve(exporter, args.prometheus)
    except prometheus.ListenError as exc:
        raise UsageError(str(exc)) from None
    print(f"{PROG}: serving Prometheus metrics at {server.url}", file=sys.stderr, flush=True)
    fallbacks = registry.fallbacks_for(args.backend, cls)
    try:
        if not args.headless:
            from nettop_ui.tui import run_tui as tui

            return tui(
                cls, why, args.interval, fallbacks=fallbacks, sink=exporter, **_tui_options(args)
            )
        run_monitor(
            cls,
            args.interval,
            exporter,
            fallbacks=fallbacks,
            duration_s=args.duration,
            count=args.count,
        )
    finally:
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in JOB_COMMANDS:  # loaded only for them: the TUI starts sooner
        from nettop_ui import jobs

        return jobs.main(argv)
    if argv[:1] == ["record"]:  # the history store: record.py, history_cli.py
        from nettop_ui import record

        return record.main(argv[1:])
    if argv[:1] == ["history"]:
        from nettop_ui import history_cli

        return history_cli.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    look_up_names(not args.no_resolve)
    try:
        if args.list_backends:
            return list_backends(sys.stdout)
        args.profile_problem = start_profiling(
            args.profile, watched_tree=False, detail_all=bool(args.json or args.output)
        )
        if args.prometheus or args.headless:
            return run_prometheus(args)
        if args.json or (args.output and (args.duration or args.count)):
            return run_json(args)
        if is_tty(sys.stdout) and is_tty(sys.stdin):
            return run_tui(args)  # with --output, recording the stream as well
        if args.output:
            return run_json(args)
        problem = closed_stream_problem("use --json or --output FILE")
        if problem:
            raise UsageError(problem)
        return print_table(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # an OSError too: caught first, `--json | head` is no error
        return reader_gone()
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        profile.disable()


def entry() -> NoReturn:
    """The `nettop-ui` command: `main`, then the process ends at once.

    Whatever `main` wrote to is closed by then (a recording, `--output`) but stdout and
    stderr, flushed here. Python's own shutdown, skipped, took up to 0.4 s after the TUI
    quit (a collection of the whole heap, module teardown, waiting for the terminal's
    input thread), all of it for nothing the user keeps.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BrokenPipeError:  # the reader left (`| head`): no error, as in `main`
            pass
        except (OSError, ValueError) as exc:  # ValueError: closed
            with contextlib.suppress(OSError, ValueError):
                print(f"{PROG}: error: cannot write the output: {exc}", file=sys.stderr)
                sys.stderr.flush()
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    entry()
