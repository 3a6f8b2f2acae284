"""The `run`, `attach` and `summary` subcommands.

    nettop-ui run [OPTIONS] -- CMD [ARGS...]   start CMD held, monitor its tree, exit as it did
    nettop-ui attach PID [--duration S]       monitor a running process and its children
    nettop-ui summary FILE [--json]           peaks, means and totals of a recording
    nettop-ui replay FILE                     a recording in the TUI, with a timeline
    nettop-ui replay --db [PATH] [--since ..] `record`'s history in the TUI, minute by minute

`cli.main` hands these over to `main` here. Every user error is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from nettop_ui import profile, registry
from nettop_ui.args import (
    PROFILE_HELP,
    PROG,
    OneLineParser,
    backend_and_interval,
    closed_stream_problem,
    interval,
    is_tty,
    output_file,
    positive_float,
    positive_int,
    start_profiling,
)
from nettop_ui.denet_format import DenetConverter
from nettop_ui.jsonl import JsonlWriter, open_output, write_problem
from nettop_ui.monitor import look_up_names
from nettop_ui.summary import Summary, format_summary, say_if_unreadable, summarize_file
from nettop_ui.watch import (
    NOT_STARTED,
    Attached,
    Command,
    Target,
    TargetError,
    WatchOptions,
    watch,
)


def _watch_options(p: argparse.ArgumentParser) -> None:
    backend_and_interval(p)
    p.add_argument(
        "--max-interval",
        type=interval,
        help="adaptive: sample every --interval for 1 s, then slow down to this by 10 s",
    )
    p.add_argument("--json", action="store_true", help="stream JSON Lines to stdout")
    p.add_argument("--output", type=output_file, metavar="FILE", help="write the recording to FILE")
    p.add_argument(
        "--format",
        choices=("nettop", "denet"),
        default="nettop",
        help="recording schema: nettop-ui's (default) or denet's JSON Lines",
    )
    p.add_argument(
        "--no-children", action="store_true", help="only the top process, not its descendants"
    )
    p.add_argument("--profile", action="store_true", help=PROFILE_HELP)
    p.add_argument(
        "--no-resolve", action="store_true", help="show remote hosts as numbers: no name lookups"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="run a command and monitor its process tree")
    _watch_options(run)
    run.add_argument("--quiet", action="store_true", help="discard CMD's stdout and stderr")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    attach = sub.add_parser("attach", help="monitor a running process and its children")
    _watch_options(attach)
    attach.add_argument("pid", type=positive_int, help="the process to follow")
    attach.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    summary = sub.add_parser("summary", help="summarise a recording (run/attach or whole-machine)")
    summary.add_argument("file")
    summary.add_argument("--json", action="store_true", help="the summary as one JSON object")
    replay = sub.add_parser(
        "replay", help="replay a recording (run/attach or whole-machine) in the TUI"
    )
    replay.add_argument("file", nargs="?")
    replay.add_argument(
        "--db", nargs="?", const="", metavar="PATH", help="replay `record`'s history instead"
    )
    when = replay.add_mutually_exclusive_group()  # as for `history`
    when.add_argument("--since", metavar="WHEN", help="--db: 24h (default), yesterday, a time")
    when.add_argument("--between", nargs=2, metavar=("T1", "T2"), help="--db: from T1 to T2")
    return parser


class _WriteFailed(Exception):
    """A record could not be written; the message says where and why."""


class _Sinks:
    """Where the records go: the file, stdout, and the summary kept for the end (a few
    running figures, not every sample: a long run does not grow in memory)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.files: list[IO[str]] = []
        self.writers: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
        self._summary = Summary()
        if args.output:
            try:
                self.files.append(open_output(args.output))
            except OSError as exc:
                raise TargetError(f"cannot write {args.output}: {exc.strerror or exc}") from None
            self.writers.append((args.output, self._writer(self.files[-1], args.format)))
        if args.json:
            self.writers.append(("to stdout", self._writer(sys.stdout, args.format)))

    @staticmethod
    def _writer(out: IO[str], fmt: str) -> Callable[[dict[str, Any]], None]:
        write = JsonlWriter(out).write
        return DenetConverter(write) if fmt == "denet" else write

    def __call__(self, record: dict[str, Any]) -> None:
        for where, write in self.writers:
            try:
                write(record)  # a whole line or nothing (JsonlWriter)
            except OSError as exc:
                raise _WriteFailed(f"cannot write {where}: {write_problem(exc)}") from None
        self._summary.add(record)

    def summary(self) -> dict[str, Any]:
        return self._summary.result()

    def close(self) -> None:
        for f in self.files:
            f.close()


def _watch(args: argparse.Namespace, make_target: Callable[[], Target]) -> int:
    try:
        cls, why = registry.choose(args.backend)
    except ValueError as exc:
        raise TargetError(str(exc), 2) from None
    look_up_names(not args.no_resolve)
    start_profiling(args.profile, watched_tree=True, detail_all=True)
    opts = WatchOptions(
        backend=cls,
        backend_reason=why,
        interval_s=args.interval,
        max_interval_s=args.max_interval,
        include_children=not args.no_children,
        duration_s=getattr(args, "duration", None),
        fallbacks=registry.fallbacks_for(args.backend, cls),
    )
    if _tui(args):
        from nettop_ui.tui.tree_run import run_tree_tui  # Textual loads only for the TUI

        tree_target = make_target()
        code = run_tree_tui(
            tree_target,
            cls,
            why,
            args.interval,
            fallbacks=opts.fallbacks,
            include_children=opts.include_children,
            duration_s=opts.duration_s,
        )
        return _never_ran(tree_target) or code or 0
    sinks = _Sinks(args)
    target: Target | None = None
    try:
        target = make_target()
        code, failure = asyncio.run(watch(target, opts, sinks))
    except _WriteFailed as exc:
        assert target is not None
        fate = target.fate()
        raise TargetError(f"{exc}; {fate}" if fate else str(exc), _never_ran(target) or 1) from None
    finally:
        sinks.close()
    never_ran = _never_ran(target)
    if failure:
        fate = f"; {target.fate()}" if never_ran else ""
        print(f"{PROG}: error: {failure}{fate}", file=sys.stderr)
    if not sinks.writers:  # neither --json nor --output: say what happened
        sys.stderr.write(format_summary(sinks.summary()))
    if failure and code is None:
        return never_ran or 2
    return never_ran or code or 0


def _never_ran(target: Target) -> int:
    """NOT_STARTED for a command that never ran (nettop-ui failed first), else 0."""
    return NOT_STARTED if isinstance(target, Command) and not target.resumed else 0


def _tui(args: argparse.Namespace) -> bool:
    """Neither --json nor --output, on a terminal: the TUI, cut to the tree."""
    if args.json or args.output:
        return False
    problem = closed_stream_problem("use --json or --output FILE")
    if problem:
        raise TargetError(problem, 2)
    return is_tty(sys.stdout) and is_tty(sys.stdin)


def run_command(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise TargetError("no command given: nettop-ui run [OPTIONS] -- CMD [ARGS...]", 2)
    stdin: Any = None
    if args.quiet:
        out: Any = subprocess.DEVNULL
        err: Any = subprocess.DEVNULL
    elif _tui(args):  # CMD must not draw over the screen nor read the keys
        stdin = out = err = subprocess.DEVNULL
    else:  # CMD's output must not mix into a JSON stream on stdout
        out, err = (sys.stderr.fileno() if args.json else None), None
    return _watch(args, lambda: Command(cmd, stdin=stdin, stdout=out, stderr=err))


def summary_command(args: argparse.Namespace) -> int:
    loaded = say_if_unreadable(summarize_file, args.file)
    if loaded is None:
        return 1
    result, problem = loaded
    if problem:
        print(f"{PROG}: warning: {args.file}: {problem}; summarised up to there", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=True) + "\n")
    else:
        sys.stdout.write(format_summary(result))
    return 0


def replay_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`replay FILE`, or `replay --db [PATH]` (the history: nettop_ui/tui/history_source.py)."""
    if (args.file is None) == (args.db is None):
        parser.error("replay takes a recording FILE or --db [PATH], one of them")
    if args.db is None:
        if args.since or args.between:
            parser.error("--since and --between go with --db")
        from nettop_ui.tui.replay import run_replay  # Textual loads only for the TUI

        return run_replay(args.file)
    from nettop_ui.history_cli import time_range
    from nettop_ui.store import default_path
    from nettop_ui.tui.history_source import run_history

    try:
        start, end = time_range(args, time.time())
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    return run_history(args.db or default_path(), start, end)


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "summary":
            return summary_command(args)
        if args.command == "replay":
            return replay_command(args, parser)
        if args.command == "attach":
            return _watch(args, lambda: Attached(args.pid))
        return run_command(args)
    except TargetError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        return 0
    finally:
        profile.disable()
