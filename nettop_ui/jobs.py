"""The `run`, `attach` and `summary` subcommands.

    nettop-ui run [OPTIONS] -- CMD [ARGS...]   start CMD held, monitor its tree, exit as it did
    nettop-ui attach PID [--duration S]       monitor a running process and its children
    nettop-ui summary FILE [--json]           peaks, means and totals of a recording
    nettop-ui replay FILE                     a recording in the TUI, with a timeline

`cli.main` hands these over to `main` here. Every user error is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import IO, Any

from nettop_ui import registry
from nettop_ui.args import PROG, OneLineParser, closed_stream_problem, is_tty, positive_float
from nettop_ui.denet_format import DenetConverter
from nettop_ui.jsonl import JsonlWriter, open_output
from nettop_ui.summary import format_summary, read_recording_or_say, summarize
from nettop_ui.watch import Attached, Command, Target, TargetError, WatchOptions, watch

COMMANDS = ("run", "attach", "summary", "replay")


def _watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", help="ebpf, nethogs, sockdiag, psutil, ...")
    p.add_argument("--interval", type=positive_float, default=1.0, help="seconds between samples")
    p.add_argument(
        "--max-interval",
        type=positive_float,
        help="adaptive: sample every --interval for 1 s, then slow down to this by 10 s",
    )
    p.add_argument("--json", action="store_true", help="stream JSON Lines to stdout")
    p.add_argument("--output", metavar="FILE", help="write the recording to FILE")
    p.add_argument(
        "--format",
        choices=("nettop", "denet"),
        default="nettop",
        help="recording schema: nettop-ui's (default) or denet's JSON Lines",
    )
    p.add_argument(
        "--no-children", action="store_true", help="only the top process, not its descendants"
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
    attach.add_argument("pid", type=int, help="the process to follow")
    attach.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    summary = sub.add_parser("summary", help="summarise a run/attach recording")
    summary.add_argument("file")
    summary.add_argument("--json", action="store_true", help="the summary as one JSON object")
    replay = sub.add_parser("replay", help="replay a run/attach recording in the TUI")
    replay.add_argument("file")
    return parser


class _Sinks:
    """Where the records go: the file, stdout, and the summary kept for the end."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.files: list[IO[str]] = []
        self.writers: list[Callable[[dict[str, Any]], None]] = []
        self.records: list[dict[str, Any]] = []
        if args.output:
            try:
                self.files.append(open_output(args.output))
            except OSError as exc:
                raise TargetError(f"cannot write {args.output}: {exc.strerror or exc}") from None
            self.writers.append(self._writer(self.files[-1], args.format))
        if args.json:
            self.writers.append(self._writer(sys.stdout, args.format))

    @staticmethod
    def _writer(out: IO[str], fmt: str) -> Callable[[dict[str, Any]], None]:
        write = JsonlWriter(out).write
        return DenetConverter(write) if fmt == "denet" else write

    def __call__(self, record: dict[str, Any]) -> None:
        for write in self.writers:
            write(record)
        if record["type"] in ("meta", "end") or "tree" in record:
            self.records.append({**record, "processes": []} if "tree" in record else record)

    def close(self) -> None:
        for f in self.files:
            f.close()


def _watch(args: argparse.Namespace, make_target: Callable[[], Target]) -> int:
    try:
        cls, why = registry.choose(args.backend)
    except ValueError as exc:
        raise TargetError(str(exc), 2) from None
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
        return (
            run_tree_tui(
                tree_target,
                cls,
                why,
                args.interval,
                fallbacks=opts.fallbacks,
                include_children=opts.include_children,
                duration_s=opts.duration_s,
            )
            or 0
        )
    sinks = _Sinks(args)
    try:
        target = make_target()
        code, failure = asyncio.run(watch(target, opts, sinks))
    finally:
        sinks.close()
    if failure:
        print(f"{PROG}: error: {failure}", file=sys.stderr)
    if not sinks.writers:  # neither --json nor --output: say what happened
        sys.stderr.write(format_summary(summarize(sinks.records)))
    if failure and code is None:
        return 2
    return code or 0


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
    loaded = read_recording_or_say(args.file)
    if loaded is None:
        return 1
    records, problem = loaded
    if problem:
        print(f"{PROG}: warning: {args.file}: {problem}; summarised up to there", file=sys.stderr)
    result = summarize(records)
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=True) + "\n")
    else:
        sys.stdout.write(format_summary(result))
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "summary":
            return summary_command(args)
        if args.command == "replay":
            from nettop_ui.tui.replay import run_replay  # Textual loads only for the TUI

            return run_replay(args.file)
        if args.command == "attach":
            return _watch(args, lambda: Attached(args.pid))
        return run_command(args)
    except TargetError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        return 0
