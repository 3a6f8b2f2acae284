"""bench/soak: nettop-ui's memory over a long run at 0.2 s intervals, with traffic and churn.

    sudo .venv/bin/python -m bench.soak [--tui] [--minutes 30] [--warmup 3] [--churn-rate 50]
                                         [--procs 0] [--interval 0.2] [--no-write]

Runs `nettop-ui --json --backend ebpf --interval 0.2 --output /dev/null` for `--minutes`
while the test network carries a steady paced TCP upload and download and a UDP
exchange (tests/netenv.py), and tests/churn.py forks `--churn-rate` short-lived
talkers a second for the whole run. The RSS of nettop-ui is read every 10 s. After
`--warmup` minutes the first reading is the baseline; the goal is every later reading
within 10% of it (bounded history, bounded BPF maps, exited processes folded past a
cap). Results go to stdout and to docs/benchmarks.md between the soak markers.

With `--tui` the same run drives the full-screen app instead: `nettop-ui --backend ebpf
--interval 0.2` in a 160x48 tmux terminal (tests/tmuxterm.py), so every frame is drawn
(rows added and removed as the talkers come and go); it is quit with `q` at the end.
Its results go between the soak-tui markers.

`--procs N` keeps N more idle processes alive for the whole run, and `--interval` sets
nettop-ui's refresh: `--tui --procs 2000 --interval 1` is the TUI as left open on a
machine of 2,000 processes, whose RSS must also stay under 100 MiB (issue #15). Such a
run goes between the soak-tui-N markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.report import write_section
from tests.netenv import Client, Network, network_env
from tests.tmuxterm import App, Terminal

NETTOP_UI = str(Path(sys.executable).parent / "nettop-ui")
ROOT = Path(__file__).resolve().parent.parent
READ_EVERY_S = 10
TUI_RSS_GOAL_MIB = 100.0  # the TUI at 2,000 processes (--procs)
TUI_SIZE = (160, 48)
CHURN = [sys.executable, "-m", "tests.churn", "--bytes", "4096", "--name", "soak-churn"]


def start_traffic(net: Network, seconds: float) -> list[Client]:
    """Paced TCP uploads (IPv4 and IPv6) and UDP datagrams with replies, lasting `seconds`."""
    rate = 500_000.0
    size = int(rate * seconds)
    return [
        net.client("soak-up", "tcp", "v4", up=size, rate=rate),
        net.client("soak-up6", "tcp", "v6", up=size, rate=rate),
        net.client(
            "soak-udp", "udp", "v4", datagrams=int(seconds * 50), size=1000, reply=500, pace=0.02
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="minutes before the baseline")
    parser.add_argument("--churn-rate", type=float, default=50.0, help="processes per second")
    parser.add_argument("--tui", action="store_true", help="the TUI in tmux, not --json")
    parser.add_argument("--procs", type=int, default=0, help="idle processes kept alive")
    parser.add_argument("--interval", type=float, default=0.2, help="nettop-ui's refresh")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    seconds = args.minutes * 60
    readings: list[tuple[float, int]] = []
    null = subprocess.DEVNULL
    idle = [
        subprocess.Popen(["sleep", str(int(seconds) + 900)], stdin=null, stdout=null, stderr=null)
        for _ in range(args.procs)
    ]
    try:
        with network_env() as net:
            run(args, net, seconds, readings)
    finally:
        for p in idle:
            p.kill()
            p.wait()


def nettop_args(args: argparse.Namespace) -> list[str]:
    return ["--backend", "ebpf", "--interval", f"{args.interval:g}"]


def run(
    args: argparse.Namespace,
    net: Network,
    seconds: float,
    readings: list[tuple[float, int]],
) -> None:
    """The soak itself, in the test network."""
    monitor = TuiRun(nettop_args(args)) if args.tui else JsonRun(nettop_args(args))
    time.sleep(15)  # the BPF program compiles and attaches
    clients = start_traffic(net, seconds)
    churn = subprocess.Popen(
        [*CHURN, "--rate", str(args.churn_rate), "--seconds", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    start = time.monotonic()
    try:
        while churn.poll() is None and monitor.running():
            time.sleep(READ_EVERY_S)
            rss = psutil.Process(monitor.pid).memory_info().rss
            readings.append((time.monotonic() - start, rss))
            print(f"{readings[-1][0]:7.0f} s  RSS {rss / 2**20:6.1f} MiB", flush=True)
        churned = json.loads(churn.communicate(timeout=120)[0] or "{}")
    finally:
        if churn.poll() is None:
            churn.send_signal(signal.SIGINT)
        ended = monitor.stop()
        for c in clients:  # a paced client may still be sending: stop it
            c.proc.kill()
            c.proc.wait()
    report(args, readings, churned, ended)


class JsonRun:
    """`nettop-ui --json ... --output /dev/null`, ended with SIGINT."""

    def __init__(self, nettop_args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [NETTOP_UI, "--json", *nettop_args, "--output", "/dev/null"],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """How it ended, for the report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        traceback = " and a traceback" if "Traceback" in err else ", no traceback"
        return f"nettop-ui exited with {self.proc.returncode}{traceback}"


class TuiRun:
    """The TUI in a tmux terminal, ended with `q`."""

    def __init__(self, nettop_args: list[str]) -> None:
        self.term = Terminal(*TUI_SIZE)
        self.app = App(self.term, *nettop_args)
        self.pid = self.app.proc.pid

    def running(self) -> bool:
        return bool(self.app.proc.is_running() and self.app.proc.status() != psutil.STATUS_ZOMBIE)

    def stop(self) -> str:
        try:
            screen = self.term.screen()
            self.term.keys("q")
            try:
                self.app.wait_exit(60)
                ended = "the TUI quit on q"
            except AssertionError:
                ended = "the TUI did NOT quit on q within 60 s"
                self.app.kill()
            traceback = " and a traceback" if "Traceback" in screen else ", no traceback"
            return ended + traceback
        finally:
            self.term.close()


def report(
    args: argparse.Namespace,
    readings: list[tuple[float, int]],
    churned: dict[str, int],
    ended: str,
) -> None:
    after = [rss for t, rss in readings if t >= args.warmup * 60]
    if not after:
        sys.exit(f"soak: no reading after the warm-up (did nettop-ui exit early?): {ended}")
    base = after[0]
    worst = max(abs(rss - base) / base for rss in after)
    verdict = "met" if worst <= 0.10 else "NOT met"
    mib = [f"{rss / 2**20:.0f}" for t, rss in readings if int(t) % 300 < READ_EVERY_S]
    tui = " --tui" if args.tui else ""
    more = f" --procs {args.procs}" if args.procs else ""
    more += f" --interval {args.interval:g}" if args.interval != 0.2 else ""
    shown = " ".join(nettop_args(args))
    what = f"`nettop-ui {shown}` in a {TUI_SIZE[0]}x{TUI_SIZE[1]} tmux terminal"
    if not args.tui:
        what = f"`nettop-ui --json {shown}`"
    if args.procs:
        what += f", with {args.procs:,} more idle processes alive throughout,"
    rows = [
        f"| RSS at the end of the {args.warmup:g} min warm-up | {base / 2**20:.1f} MiB |",
        f"| RSS at the end | {after[-1] / 2**20:.1f} MiB |",
        f"| largest deviation after warm-up | {worst:.1%} (goal: within 10%, {verdict}) |",
        f"| RSS every 5 min, MiB | {', '.join(mib)} |",
    ]
    if args.tui and args.procs >= 2000:
        top = max(rss for _, rss in readings) / 2**20
        under = "met" if top < TUI_RSS_GOAL_MIB else "NOT met"
        rows.append(
            f"| highest RSS | {top:.1f} MiB (goal: under {TUI_RSS_GOAL_MIB:.0f}, {under}) |"
        )
    text = "\n".join(
        [
            f"Run {datetime.date.today()} on {platform.node()} (kernel {platform.release()}), "
            f"`python -m bench.soak{tui}{more} --minutes {args.minutes:g} "
            f"--churn-rate {args.churn_rate:g}`: {what} under paced TCP uploads (500 kB/s "
            "over IPv4 and IPv6), UDP (50 datagrams/s) and "
            f"{churned.get('children', 0):,} short-lived talkers ({args.churn_rate:g}/s); "
            f"{ended}.",
            "",
            "| measure | value |",
            "| --- | --- |",
            *rows,
        ]
    )
    print(text)
    if args.no_write:
        return
    if args.tui and args.procs:
        title = f"Soak, TUI at {args.procs:,} more processes (bench/soak --tui --procs)"
        write_section(f"soak-tui-{args.procs}", text, title)
    elif args.tui:
        write_section("soak-tui", text, "Soak, TUI (bench/soak --tui)")
    else:
        write_section("soak", text, "Soak (bench/soak)")


if __name__ == "__main__":
    main()
