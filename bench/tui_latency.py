"""bench/tui_latency: how fast the TUI answers, with both cores saturated, and quits.

    sudo .venv/bin/python -m bench.tui_latency [--backend psutil --backend ebpf]
                                               [--rounds 5] [--quits 3] [--no-write]

Keys: eight full-speed loopback uploads keep both cores busy (tests/saturate.py); in a
160x48 tmux terminal `nettop-ui --backend B --interval 1`, started at the default
priority, gets `/`, `bravo` one key every 0.15 s, Enter and delete, `--rounds` times;
so does, a round each in turn, the same app run without CAP_SYS_NICE (setpriv), unable
to raise its priority as nettop-ui was before.
Each key is timed from sending it to the screen showing its effect (the box open, the
text so far, only bravo's rows, every row again), polling the screen every 10 ms; the
measuring side (this script, the tmux server) runs at nice -10 so the times are the
app's. The goal is a p95 under 200 ms.

Quit: on an idle machine, the time from `q` to the process's exit (a pidfd), `--quits`
times per backend. The goal is under 200 ms.

Results go to stdout and to docs/benchmarks.md between the tui-latency markers.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from bench.report import write_section
from tests.netenv import network_env
from tests.saturate import (
    AT_DEFAULT_PRIORITY,
    filter_round,
    measured_above,
    percentile,
    saturated,
    terminal_above,
)
from tests.tmuxterm import tui

SATURATING = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
AS_BEFORE = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "--"]
QUIT_BACKENDS = ["ebpf", "nethogs", "sockdiag", "psutil"]


def key_times(backend: str, rounds: int) -> tuple[list[float], list[float]]:
    """The keys' times in the TUI, and in one that cannot raise its priority, a round
    each in turn."""
    args = ("--backend", backend, "--interval", "1")
    at_default = [*AT_DEFAULT_PRIORITY]
    with (
        measured_above(),
        saturated(SATURATING),
        tui(160, 48, *args, wrap=lambda c: [*at_default, *c]) as (term, app),
        tui(160, 48, *args, wrap=lambda c: [*AS_BEFORE, *at_default, *c]) as (b_term, b_app),
    ):
        for t in (term, b_term):
            terminal_above(t)
        app.wait_table()
        b_app.wait_table()
        time.sleep(2)  # the start-up notice and first frames out of the way
        times: list[float] = []
        before: list[float] = []
        for _ in range(rounds):
            times += filter_round(term, "bravo")
            before += filter_round(b_term, "bravo")
        return times, before


def quit_times(backend: str, quits: int) -> list[float]:
    times = []
    for _ in range(quits):
        with tui(160, 48, "--backend", backend, "--interval", "1") as (term, app):
            app.wait_table()
            time.sleep(2.5)
            times.append(app.seconds_to_exit(lambda: term.keys("q")))
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def section(
    keys: dict[str, tuple[list[float], list[float]]], quits: dict[str, list[float]], rounds: int
) -> str:
    lines = [
        f"Machine: {platform.node()}, {os.cpu_count()} cores, kernel {platform.release()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Other work on the machine "
        "during the run is not controlled.",
        "",
        f"Key to redrawn screen, both cores saturated (8 full-speed loopback uploads), "
        f"`/bravo` Enter delete x{rounds} (goal: p95 under 200 ms):",
        "",
        "| backend | nettop-ui | keys | p50 | p95 | max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for backend, pair in keys.items():
        for label, times in zip(("raises its priority", "cannot (as before)"), pair, strict=True):
            lines.append(
                f"| {backend} | {label} | {len(times)} | {ms(percentile(times, 50))} "
                f"| {ms(percentile(times, 95))} | {ms(max(times))} |"
            )
    lines += ["", "`q` to the process's exit (goal: under 200 ms):", ""]
    lines += ["| backend | quits | median | max |", "| --- | --- | --- | --- |"]
    for backend, times in quits.items():
        lines.append(
            f"| {backend} | {len(times)} | {ms(percentile(times, 50))} | {ms(max(times))} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", action="append", help="for the keys (default: psutil, ebpf)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quits", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="don't touch docs/")
    args = parser.parse_args()
    with network_env():  # traffic for the backends' tables, as in the tests
        keys = {b: key_times(b, args.rounds) for b in args.backend or ["psutil", "ebpf"]}
        quits = {b: quit_times(b, args.quits) for b in QUIT_BACKENDS}
    body = section(keys, quits, args.rounds)
    print(body)
    if not args.no_write:
        write_section(
            "tui-latency", body, "TUI: key latency when saturated, and quitting (bench/tui_latency)"
        )


if __name__ == "__main__":
    main()
