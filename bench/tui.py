"""bench/tui: the CPU cost of one TUI refresh with 2,000 live processes, and the app's RSS.

    .venv/bin/python -m bench.tui [--procs 2000] [--movers 200] [--ticks 60] [--rounds 3]
                                  [--size 160x48 --size 80x24] [--view hosts] [--no-write]

`--view hosts` measures the remote-host view instead (`h`): every process also holds
`--conns-per-proc` connections (5: 10,000 for 2,000 processes) spread over `--hosts`
remote addresses (2,000), all open for the whole run; each tick the movers' connections
move the movers' bytes. Its section is `tui-hosts`.

Spawns `--procs` real `sleep` processes, then drives the real app headless
(`App.run_test`), in a fresh Python process per terminal size and round. Each tick is
what the live app does once a second: the real collector ingests a `TrafficSample` in
which `--movers` of those processes moved a random number of bytes (one
`ProcessTraffic` per pid, as a backend reports them) and scans /proc for every process,
the snapshot is frozen into a `Frame`, the app applies it (`on_frame`) and the screen
renders: layout, the lines of every dirty widget, and the escape sequences the update
would write to the terminal (headless mode skips that last step; `BenchApp._display`
does it). The socket count (every 5 s in the app) runs on every 5th tick.

CPU is process time (all threads) over the measured ticks divided by their number,
after a warm-up; RSS is VmRSS of the app's process after the run. Each size runs
`--rounds` times; the round with the median total is reported (the machine's noise
shows in the range). The table goes to stdout and, unless `--no-write`, to
docs/benchmarks.md between the tui markers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from textual._compositor import CompositorUpdate

from bench.report import write_section
from nettop_ui.collector import Collector
from nettop_ui.core import ConnectionTraffic, ProcessTraffic, TrafficSample
from nettop_ui.tui import FrameSource, NettopApp
from nettop_ui.tui.frame import Frame, FrameCollector
from tests.tmuxterm import Terminal, header_line

SIZES = ("160x48", "80x24")
PEER_WARMUP_S, PEER_SECONDS = 10.0, 20.0  # each program in tmux: settle, then measure
PEER_ROUNDS = 3  # of each program, in turns: the median one counts
GOAL_CPU_MS, GOAL_RSS_MB = 100.0, 150.0
MANY_PROCS, GOAL_MANY_CPU_MS, GOAL_MANY_RSS_MB = 10_000, 250.0, 250.0  # `--procs 10000`
SLEEP_S = 900  # the children outlive a crashed run by at most this long
COUNT_EVERY = 5  # ticks between socket counts (the app: every 5 s, one tick a second)
MOVERS_ENV = "BENCH_TUI_MOVERS"  # the movers' pids, for the measuring process
PIDS_ENV = "BENCH_TUI_PIDS"  # every sleeper's pid (the host view: they hold connections)


# -- the load ---------------------------------------------------------------------------


def spawn_sleepers(count: int) -> list[subprocess.Popen[bytes]]:
    """`count` idle processes that show up in /proc like any other."""
    null = subprocess.DEVNULL
    return [
        subprocess.Popen(["sleep", str(SLEEP_S)], stdin=null, stdout=null, stderr=null)
        for _ in range(count)
    ]


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


Conn = tuple[str, str]  # (local, remote) of one bench connection


def bench_connections(pids: list[int], per_proc: int, hosts: int) -> dict[int, list[Conn]]:
    """`per_proc` TCP connections for each pid, to `hosts` addresses in 198.18.0.0/15 (the
    benchmarking range), round robin: every host is talked to by `per_proc` processes."""
    out: dict[int, list[Conn]] = {}
    for i, pid in enumerate(pids):
        conns = []
        for j in range(per_proc):
            n = i * per_proc + j
            k = n % hosts
            conns.append((f"10.0.0.1:{20000 + n % 40000}", f"198.18.{k // 250}.{k % 250 + 1}:443"))
        out[pid] = conns
    return out


class BenchSource(FrameSource):
    """A live collector driven one tick at a time by the benchmark, not by a clock."""

    backend_name = "bench"
    layer = "socket payload"

    def __init__(
        self, movers: list[int], seed: int = 1, conns: dict[int, list[Conn]] | None = None
    ) -> None:
        super().__init__()
        self.movers = movers
        self.conns = conns  # None: no per-connection view (the process view's case)
        self.per_connection = conns is not None
        # Connections stay open for the whole run (idle ones would close after 30 s).
        self.collector = FrameCollector(per_process_bytes=True, connection_keep_s=1e9)
        self.rng = random.Random(seed)
        self.ticks = 0
        self._emit: Callable[[Frame], None] | None = None

    async def run(self, emit: Callable[[Frame], None]) -> None:
        self._emit = emit
        await self._stop.wait()

    @property
    def ready(self) -> bool:
        return self._emit is not None

    def sample(self) -> TrafficSample:
        """One second of traffic: every mover sent and received 100 B to 3 MB."""
        rng = self.rng
        if self.conns is None:
            traffic = [
                ProcessTraffic(pid, int(10 ** rng.uniform(2, 6.5)), int(10 ** rng.uniform(2, 6.5)))
                for pid in self.movers
            ]
            return TrafficSample(time.time(), 1.0, traffic)
        # The first tick opens every connection, idle (as if the app started after their
        # last bytes); then each mover's connections move 100 B to 1 MB each way.
        if self.ticks == 1:
            conns = [
                ConnectionTraffic(pid, "tcp", local, remote, 0, 0)
                for pid, held in self.conns.items()
                for local, remote in held
            ]
        else:
            conns = [
                ConnectionTraffic(
                    pid,
                    "tcp",
                    local,
                    remote,
                    int(10 ** rng.uniform(2, 6)),
                    int(10 ** rng.uniform(2, 6)),
                )
                for pid in self.movers
                for local, remote in self.conns[pid]
            ]
        sums: dict[int, list[int]] = {}
        for c in conns:
            acc = sums.setdefault(c.pid, [0, 0])
            acc[0] += c.sent_bytes
            acc[1] += c.recv_bytes
        traffic = [ProcessTraffic(pid, up, down) for pid, (up, down) in sums.items()]
        return TrafficSample(time.time(), 1.0, traffic, connections=conns)

    def tick(self) -> tuple[float, float, float]:
        """Collect, freeze and hand one frame to the app: CPU seconds of each step."""
        assert self._emit is not None
        due = self.ticks % COUNT_EVERY == 0
        self.collector._counts_at = 0.0 if due else time.time()  # as if a second apart
        self.ticks += 1
        sample = self.sample()
        self.collector.watch = self.watch_keys
        t0 = time.process_time()
        snap = Collector.ingest(self.collector, sample)  # FrameCollector.ingest,
        t1 = time.process_time()
        frame = self.collector.freeze(snap)  # in two timed steps
        t2 = time.process_time()
        self._emit(frame)
        t3 = time.process_time()
        return t1 - t0, t2 - t1, t3 - t2


class BenchApp(NettopApp):
    """The real app, also building the terminal output that headless mode skips."""

    def __init__(self, source: FrameSource) -> None:
        super().__init__(source, host="bench")
        self.updates = 0
        self.terminal_bytes = 0

    def _display(self, screen: Any, renderable: Any) -> None:
        super()._display(screen, renderable)
        if isinstance(renderable, CompositorUpdate) and not self._batch_count:
            self.updates += 1
            self.terminal_bytes += len(renderable.render_segments(self.console))


# -- measuring (in a process of its own) ----------------------------------------------


@dataclass
class Result:
    """Mean CPU milliseconds per refresh, by step, and the memory after the run."""

    size: str
    scan_ms: float
    frame_ms: float
    apply_ms: float
    render_ms: float
    idle_ms: float  # one pilot.pause() with nothing new: the harness's own share
    rss_mb: float
    peak_mb: float
    terminal_kb: float

    @property
    def total_ms(self) -> float:
        return self.scan_ms + self.frame_ms + self.apply_ms + self.render_ms


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process, in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


async def measure(
    size: str,
    movers: list[int],
    ticks: int,
    warmup: int,
    interval: float = 0.0,
    conns: dict[int, list[Conn]] | None = None,
) -> Result:
    width, height = map(int, size.split("x"))
    source = BenchSource(movers, conns=conns)
    app = BenchApp(source)
    async with app.run_test(size=(width, height)) as pilot:
        while not source.ready:
            await pilot.pause(0.01)
        if conns is not None:
            await pilot.press("h")  # the remote-host view
        for _ in range(warmup):
            source.tick()
            await pilot.pause()
        totals = [0.0, 0.0, 0.0, 0.0]
        updates, out_bytes = app.updates, app.terminal_bytes
        for _ in range(ticks):
            await asyncio.sleep(interval)  # the app's pace: idle between refreshes
            scan, freeze, apply = source.tick()
            t0 = time.process_time()
            await pilot.pause()  # messages, layout, render, terminal output
            render = time.process_time() - t0
            for i, v in enumerate((scan, freeze, apply, render)):
                totals[i] += v
        assert app.updates - updates >= ticks, "the screen did not render every tick"
        out_bytes = app.terminal_bytes - out_bytes
        t0 = time.process_time()
        for _ in range(ticks):
            await pilot.pause()
        idle = (time.process_time() - t0) / ticks
        rss, peak = memory_mb()
    ms = [1000 * t / ticks for t in totals]
    scan, frame, apply, render = ms
    return Result(
        size, scan, frame, apply, render, 1000 * idle, rss, peak, out_bytes / ticks / 1024
    )


def run_round(
    size: str, movers: list[int], all_pids: list[int], args: argparse.Namespace
) -> Result:
    """One measurement in a fresh interpreter, so that its RSS is the app's alone."""
    cmd = [sys.executable, "-m", "bench.tui", "--one", size, "--ticks", str(args.ticks)]
    cmd += ["--warmup", str(args.warmup), "--interval", str(args.interval)]
    cmd += ["--view", args.view, "--hosts", str(args.hosts)]
    cmd += ["--conns-per-proc", str(args.conns_per_proc)]
    env = {**os.environ, MOVERS_ENV: ",".join(map(str, movers))}
    if args.view == "hosts":
        env[PIDS_ENV] = ",".join(map(str, all_pids))
    env.setdefault("COLORTERM", "truecolor")  # render as for a modern terminal
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return Result(**json.loads(out.splitlines()[-1]))


# -- the peers: each program in a tmux terminal, refreshing once a second ---------------


@dataclass
class Peer:
    """One program's CPU per refresh and RSS, measured from /proc while it ran in tmux."""

    program: str
    size: str
    cpu_ms: float | None  # None: it did not run (the reason in `note`)
    rss_mb: float | None
    note: str = ""
    rounds: tuple[float, ...] = ()  # every round's CPU per refresh (cpu_ms: their median)


def peer_commands(config: Path) -> dict[str, tuple[str, str]]:
    """Each program: its executable, and its command line as typed in the terminal,
    refreshing once a second (btop 1.2 has no flag for it: its config file says so)."""
    (config / "btop").mkdir(parents=True, exist_ok=True)
    (config / "btop" / "btop.conf").write_text("update_ms = 1000\n")
    nettop = Path(sys.executable).parent / "nettop-ui"
    return {
        "nettop-ui --backend ebpf": (str(nettop), f"{nettop} --backend ebpf --interval 1"),
        "nettop-ui --backend psutil": (str(nettop), f"{nettop} --backend psutil --interval 1"),
        "btop": ("btop", f"LANG=C.UTF-8 XDG_CONFIG_HOME={config} btop"),
        "top": ("top", "top -d 1"),
        "htop": ("htop", "htop -d 10"),
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, every thread, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_peer(name: str, exe: str, command: str, size: str, seconds: float) -> Peer:
    """Run `command` in a fresh `size` tmux terminal; its CPU over `seconds` after it
    settled, divided by the refreshes in that time (one a second)."""
    if shutil.which(exe) is None:
        return Peer(name, size, None, None, "not installed")
    term = Terminal(*map(int, size.split("x")))
    try:
        shell = term.shell_pid
        term.type(command)
        term.keys("Enter")
        if name.startswith("nettop-ui"):  # its first table: the backend has started
            term.wait_for(lambda s: header_line(s) is not None, 60, f"{name}'s table")
        time.sleep(PEER_WARMUP_S)
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        if not children:
            return Peer(name, size, None, None, "exited: " + term.screen().strip()[-200:])
        pid = int(children[0])
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(status.split("VmRSS:", 1)[1].split()[0]) / 1024
        term.keys("q")
        return Peer(name, size, 1000 * (cpu1 - cpu0) / (t1 - t0), rss)
    finally:
        term.close()


def measure_peers(sizes: list[str], seconds: float, rounds: int) -> list[Peer]:
    """Every program `rounds` times per size, in turn (a program, then the next, then
    the first again), so that the machine's slower and faster minutes fall on all of
    them alike; each program's figure is the median of its rounds."""
    with tempfile.TemporaryDirectory(prefix="bench-tui-") as config:
        commands = peer_commands(Path(config))
        peers = []
        for size in sizes:
            runs: dict[str, list[Peer]] = {name: [] for name in commands}
            for _ in range(rounds):
                for name, (exe, command) in commands.items():
                    runs[name].append(measure_peer(name, exe, command, size, seconds))
            for measured in runs.values():
                ran = sorted((p for p in measured if p.cpu_ms is not None), key=_cpu)
                if len(ran) < len(measured):  # a round that did not run says why
                    peers.append(next(p for p in measured if p.cpu_ms is None))
                    continue
                middle = ran[len(ran) // 2]
                peers.append(replace(middle, rounds=tuple(_cpu(p) for p in ran)))
        return peers


def _cpu(peer: Peer) -> float:
    return peer.cpu_ms if peer.cpu_ms is not None else 0.0


def peer_table(peers: list[Peer]) -> str:
    """CPU per refresh and RSS of each program, and its CPU as a multiple of btop's."""
    btop = {p.size: p.cpu_ms for p in peers if p.program == "btop"}
    lines = [
        "| terminal | program | CPU / refresh | vs btop | rounds | RSS |",
        "| --- | --- | --: | --: | --: | --: |",
    ]
    for p in peers:
        if p.cpu_ms is None or p.rss_mb is None:
            lines.append(f"| {p.size} | {p.program} | did not run: {p.note} | | | |")
            continue
        base = btop.get(p.size)
        ratio = f"{p.cpu_ms / base:.2f}x" if base else "unknown"
        spread = ", ".join(f"{r:.1f}" for r in p.rounds) if p.rounds else f"{p.cpu_ms:.1f}"
        lines.append(
            f"| {p.size} | {p.program} | {p.cpu_ms:.1f} ms | {ratio} | {spread} ms "
            f"| {p.rss_mb:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


# -- reporting ------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (
        f"{platform.node()} ({model}, {os.cpu_count()} cores, kernel {platform.release()}, "
        f"Python {platform.python_version()}, Textual 8.2.8)"
    )


def table(rows: list[tuple[Result, list[float]]]) -> str:
    lines = [
        "| terminal | collect | freeze frame | UI apply | render | **CPU / refresh** "
        "| range of rounds | RSS | peak RSS | harness idle | terminal output |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for r, totals in rows:
        lines.append(
            f"| {r.size} | {r.scan_ms:.1f} ms | {r.frame_ms:.1f} ms | {r.apply_ms:.1f} ms "
            f"| {r.render_ms:.1f} ms | **{r.total_ms:.1f} ms** "
            f"| {min(totals):.0f}–{max(totals):.0f} ms | {r.rss_mb:.0f} MB | {r.peak_mb:.0f} MB "
            f"| {r.idle_ms:.1f} ms | {r.terminal_kb:.1f} KiB |"
        )
    return "\n".join(lines) + "\n"


def goals(procs: int) -> tuple[float, float]:
    """(CPU ms per refresh, RSS MB) the run must stay under."""
    if procs >= MANY_PROCS:
        return GOAL_MANY_CPU_MS, GOAL_MANY_RSS_MB
    return GOAL_CPU_MS, GOAL_RSS_MB


def peers_section(peers: list[Peer], seconds: float, rounds: int) -> str:
    """The programs side by side in tmux, and whether nettop-ui stayed at btop's cost."""
    btop = {p.size: p.cpu_ms for p in peers if p.program == "btop"}
    ours = [p for p in peers if p.program.startswith("nettop-ui")]

    def at_most_btop(p: Peer) -> bool:
        base = btop.get(p.size)
        return p.cpu_ms is not None and base is not None and p.cpu_ms <= base

    met = all(at_most_btop(p) for p in ours)
    return f"""
### Side by side with btop, top and htop (same run, same terminal, 1 s refresh)

Each program ran alone in a fresh tmux terminal of the size given, with the same
processes alive, refreshing once a second; {PEER_WARMUP_S:.0f} s after it started (for
nettop-ui: after its first table), its CPU time (utime + stime of every thread, from
/proc/PID/stat) over {seconds:.0f} s divided by the refreshes in that time; RSS is its VmRSS
then. The programs took turns, {rounds} rounds of each per size; the figure is the median
round (*rounds*: every round, lowest first), and the ratio is of medians.
Goal: nettop-ui, whatever the backend, at or below btop's CPU per refresh:
**{"met" if met else "not met"}**.

{peer_table(peers)}"""


def section(
    rows: list[tuple[Result, list[float]]], args: argparse.Namespace, peers: list[Peer]
) -> str:
    worst_cpu = max(r.total_ms for r, _ in rows)
    worst_rss = max(max(r.rss_mb, r.peak_mb) for r, _ in rows)
    goal_cpu, goal_rss = goals(args.procs)
    met = worst_cpu < goal_cpu and worst_rss < goal_rss
    hosts = args.view == "hosts"
    command = "python -m bench.tui" + (" --view hosts" if hosts else "")
    command += f" --procs {args.procs}" if args.procs != 2000 else ""
    conns = args.procs * args.conns_per_proc
    what = (
        f", {conns:,} connections to {args.hosts:,} remote hosts, the remote-host view (`h`)"
        if hosts
        else ""
    )
    load = (
        f"""
The host view's case: each process also holds {args.conns_per_proc} TCP connections
({conns:,}) to {args.hosts:,} addresses, every host talked to by {args.conns_per_proc}
processes; all stay open for the run (opened idle), and each tick the {args.movers} movers'
connections ({args.movers * args.conns_per_proc:,}) move 100 B to 1 MB each way. The
collector folds them per host (`RemoteTable`), the frame carries the {args.hosts:,} hosts,
and the app shows the host table sorted by TOTAL. Same goal as the process view.
"""
        if hosts
        else ""
    )
    return f"""\
Run {datetime.date.today().isoformat()} on {machine()}, `{command}`
({args.procs:,} processes, {args.movers} moving traffic{what}, {args.ticks} ticks after
{args.warmup} of warm-up, median of {args.rounds} rounds).
{load}
Goal: under {goal_cpu:.0f} ms of CPU per refresh and under {goal_rss:.0f} MB RSS.
Here at worst {worst_cpu:.0f} ms and {worst_rss:.0f} MB: **{"met" if met else "not met"}**.

{table(rows)}
Method: {args.procs:,} real `sleep` processes run; the real app runs headless
(`App.run_test`) in a fresh Python process per terminal size and round. Each tick is
one refresh of the live app, back to back:

- **collect**: the real collector ingests a `TrafficSample` in which {args.movers} of the
  processes moved 100 B to 3 MB each (random, so the busiest rows reorder every tick)
  and reads /proc for every process; the socket count, every 5 s in the app, runs on
  every 5th tick;
- **freeze frame**: the snapshot becomes an immutable `Frame`;
- **UI apply**: the app builds, sorts and diffs the rows, updates the table, panels and
  header (`on_frame`);
- **render**: Textual handles the messages, lays out and renders every dirty widget,
  and the bench builds the escape sequences the update would write to a terminal
  (headless mode skips that); *harness idle*, the CPU of one `pilot.pause()` with
  nothing to do, is part of it. *Terminal output* is what one refresh would write.

Figures are process CPU time (every thread) over the ticks divided by their number,
sorted by TOTAL/s with the cursor on the top row. RSS is the app process's VmRSS after
the run, peak its VmHWM. The host is a shared VM: a round can run 20% slower than the
next, hence the median of several and the range.
{peers_section(peers, args.peer_seconds, args.peer_rounds) if peers else ""}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--movers", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="idle seconds between ticks (the app: 1)"
    )
    parser.add_argument("--size", action="append", help="WxH (default: 160x48 and 80x24)")
    parser.add_argument("--no-write", action="store_true", help="don't touch docs/")
    parser.add_argument(
        "--view", choices=("processes", "hosts"), default="processes", help="the table measured"
    )
    parser.add_argument("--hosts", type=int, default=2000, help="--view hosts: remote hosts")
    parser.add_argument(
        "--conns-per-proc", type=int, default=5, help="--view hosts: connections per process"
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="don't also measure btop, top and htop in tmux"
    )
    parser.add_argument(
        "--peer-seconds", type=float, default=PEER_SECONDS, help="each peer's measured time"
    )
    parser.add_argument(
        "--peer-rounds", type=int, default=PEER_ROUNDS, help="rounds of each peer, in turns"
    )
    parser.add_argument("--one", metavar="WxH", help=argparse.SUPPRESS)  # a single round
    args = parser.parse_args()
    if args.one:
        movers = [int(p) for p in os.environ[MOVERS_ENV].split(",")]
        conns = None
        if args.view == "hosts":
            pids = [int(p) for p in os.environ[PIDS_ENV].split(",")]
            conns = bench_connections(pids, args.conns_per_proc, args.hosts)
        result = asyncio.run(
            measure(args.one, movers, args.ticks, args.warmup, args.interval, conns)
        )
        print(json.dumps(asdict(result)))
        return
    children = spawn_sleepers(args.procs)
    rows: list[tuple[Result, list[float]]] = []
    peers: list[Peer] = []
    try:
        movers = [p.pid for p in children[: args.movers]]
        all_pids = [p.pid for p in children]
        for size in args.size or SIZES:
            rounds = sorted(
                (run_round(size, movers, all_pids, args) for _ in range(args.rounds)),
                key=lambda r: r.total_ms,
            )
            rows.append((rounds[len(rounds) // 2], [r.total_ms for r in rounds]))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
        if args.view == "processes" and not args.no_peers:
            peers = measure_peers(args.size or list(SIZES), args.peer_seconds, args.peer_rounds)
    finally:
        stop_all(children)
    print()
    print(table(rows))
    if peers:
        print(peer_table(peers))
    if not args.no_write:
        body = section(rows, args, peers)
        name, title = "tui", "TUI: CPU per refresh and memory (bench/tui"
        if args.view == "hosts":
            name, title = (
                "tui-hosts",
                "TUI, remote-host view: CPU per refresh and memory (bench/tui --view hosts",
            )
        if args.procs != 2000:
            name, title = f"{name}-{args.procs}", f"{title} --procs {args.procs}"
        write_section(name, body, title=title + ")")
        print("written to docs/benchmarks.md")


if __name__ == "__main__":
    main()
