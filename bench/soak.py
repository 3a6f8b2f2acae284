"""bench/soak: nettop-ui's memory over a long run at 0.2 s intervals, with traffic and churn.

    sudo .venv/bin/python -m bench.soak [--minutes 30] [--warmup 3] [--churn-rate 50] [--no-write]

Runs `nettop-ui --json --backend ebpf --interval 0.2 --output /dev/null` for `--minutes`
while the test network carries a steady paced TCP upload and download and a UDP
exchange (tests/netenv.py), and tests/churn.py forks `--churn-rate` short-lived
talkers a second for the whole run. The RSS of nettop-ui is read every 10 s. After
`--warmup` minutes the first reading is the baseline; the goal is every later reading
within 10% of it (bounded history, bounded BPF maps, exited processes folded past a
cap). Results go to stdout and to docs/benchmarks.md between the soak markers.
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

NETTOP_UI = str(Path(sys.executable).parent / "nettop-ui")
ROOT = Path(__file__).resolve().parent.parent
READ_EVERY_S = 10
MONITOR = [NETTOP_UI, "--json", "--backend", "ebpf", "--interval", "0.2"]
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
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    seconds = args.minutes * 60
    readings: list[tuple[float, int]] = []
    with network_env() as net:
        monitor = subprocess.Popen(
            [*MONITOR, "--output", "/dev/null"],
            stderr=subprocess.PIPE,
            text=True,
        )
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
            while churn.poll() is None and monitor.poll() is None:
                time.sleep(READ_EVERY_S)
                rss = psutil.Process(monitor.pid).memory_info().rss
                readings.append((time.monotonic() - start, rss))
                print(f"{readings[-1][0]:7.0f} s  RSS {rss / 2**20:6.1f} MiB", flush=True)
            churned = json.loads(churn.communicate(timeout=120)[0] or "{}")
        finally:
            for proc in (churn, monitor):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            _, err = monitor.communicate(timeout=60)
            for c in clients:  # a paced client may still be sending: stop it
                c.proc.kill()
                c.proc.wait()
    report(args, readings, churned, monitor.returncode, err)


def report(
    args: argparse.Namespace,
    readings: list[tuple[float, int]],
    churned: dict[str, int],
    exit_code: int | None,
    err: str,
) -> None:
    after = [rss for t, rss in readings if t >= args.warmup * 60]
    if not after:
        sys.exit("soak: no reading after the warm-up (did nettop-ui exit early?)\n" + err)
    base = after[0]
    worst = max(abs(rss - base) / base for rss in after)
    verdict = "met" if worst <= 0.10 else "NOT met"
    mib = [f"{rss / 2**20:.0f}" for t, rss in readings if int(t) % 300 < READ_EVERY_S]
    text = "\n".join(
        [
            f"Run {datetime.date.today()} on {platform.node()} (kernel {platform.release()}), "
            f"`python -m bench.soak --minutes {args.minutes:g} --churn-rate {args.churn_rate:g}`: "
            "`nettop-ui --json --backend ebpf --interval 0.2` under paced TCP uploads (500 kB/s "
            "over IPv4 and IPv6), UDP (50 datagrams/s) and "
            f"{churned.get('children', 0):,} short-lived talkers ({args.churn_rate:g}/s); "
            f"nettop-ui exited with {exit_code}"
            f"{' and a traceback' if 'Traceback' in err else ', no traceback'}.",
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| RSS at the end of the {args.warmup:g} min warm-up | {base / 2**20:.1f} MiB |",
            f"| RSS at the end | {after[-1] / 2**20:.1f} MiB |",
            f"| largest deviation after warm-up | {worst:.1%} (goal: within 10%, {verdict}) |",
            f"| RSS every 5 min, MiB | {', '.join(mib)} |",
        ]
    )
    print(text)
    if not args.no_write:
        write_section("soak", text, "Soak (bench/soak)")


if __name__ == "__main__":
    main()
