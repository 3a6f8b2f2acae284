"""A process tree with known resource use, for the `run`/`attach` tests.

The parent starts one child (this script again, with --child) and both burn a CPU
core for --cpu seconds at the same time. Then the child allocates and touches --mem
MB and holds it for a moment, and writes --disk bytes to --path with fsync; the
parent sends --send bytes over TCP to a tests/trafficgen.py server (--to, --port)
and prints one JSON line with what it counted. With --flash N the child first forks
N grandchildren one after the other, each burning --flash-cpu seconds, sending
--flash-send bytes and exiting at once: most live and die between two ticks of a
monitor sampling every second. The parent exits with --exit, or
kills itself with --signal. The JSON line includes the CPU seconds the tree got
(getrusage), so a test on a busy machine knows how much CPU there was to see.

Only loopback and addresses inside the tests' own network namespaces are sent to.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time


def burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


def flash(args: argparse.Namespace) -> None:
    for _ in range(args.flash):
        pid = os.fork()
        if pid == 0:
            burn(args.flash_cpu)
            if args.flash_send:
                send(args.to, args.port, args.flash_send)
            os._exit(0)
        os.waitpid(pid, 0)


def child(args: argparse.Namespace) -> None:
    flash(args)
    burn(args.cpu)
    if args.mem:
        block = bytearray(args.mem * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(args.hold)
        del block
    if args.disk:
        with open(args.path, "wb") as f:
            f.write(os.urandom(args.disk))
            f.flush()
            os.fsync(f.fileno())


def send(to: str, port: int, n: int) -> int:
    with socket.create_connection((to, port), timeout=30) as s:
        sent = s.send(struct.pack("!QQ", n, 0))
        block = b"x" * 65536
        while sent - 16 < n:
            sent += s.send(block[: n - (sent - 16)])
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
    return sent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true")
    p.add_argument("--cpu", type=float, default=0.0)
    p.add_argument("--mem", type=int, default=0, help="MB")
    p.add_argument("--hold", type=float, default=1.0)
    p.add_argument("--disk", type=int, default=0)
    p.add_argument("--path", default="")
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--to", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--signal", type=int, default=0)
    p.add_argument("--flash", type=int, default=0, help="short-lived grandchildren")
    p.add_argument("--flash-cpu", type=float, default=0.0)
    p.add_argument("--flash-send", type=int, default=0)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    kid = subprocess.Popen([sys.executable, __file__, "--child", *sys.argv[1:]])
    burn(args.cpu)
    sent = send(args.to, args.port, args.send) if args.send else 0
    kid.wait()
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu_s = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime  # what the tree got
    if args.flash_send:  # each grandchild's bytes, its 16-byte header included
        sent += args.flash * (16 + args.flash_send)
    report = {"pid": os.getpid(), "child": kid.pid, "sent": sent, "cpu_s": cpu_s}
    print(json.dumps(report), flush=True)
    if args.signal:
        os.kill(os.getpid(), args.signal)
    sys.exit(args.exit)


if __name__ == "__main__":
    main()
