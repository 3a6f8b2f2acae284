"""Process churn for the fault tests and the soak bench: many short-lived talkers.

    python -m tests.churn --rate 300 --seconds 60 --bytes 4096 [--name churn-kid]

One parent runs a loopback TCP server and forks `--rate` children per second; each
child names itself (`--name`, its kernel comm), connects to the server, sends
`--bytes` of payload and exits at once. When done the parent prints one JSON line:
{"pid", "children", "child_sent", "server_recv"}, counted from send/recv return values
(a child that failed to send everything exits non-zero and is not counted).
Only loopback is used.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import threading
import time

from tests.trafficgen import PR_SET_NAME

LIBC = ctypes.CDLL(None, use_errno=True)  # loaded once, before the forks


def serve(listener: socket.socket, received: list[int]) -> None:
    """Accept and drain connections until the listener closes; count the bytes."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            while chunk := conn.recv(65536):
                received[0] += len(chunk)


def child(port: int, name: str, payload: bytes) -> None:
    """The forked child: talk once, then leave without running any Python cleanup."""
    code = 1
    try:
        LIBC.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(payload)
        code = 0
    finally:
        os._exit(code)


class Reaper:
    """Collects finished children and counts the clean exits."""

    def __init__(self) -> None:
        self.ok = self.failed = 0

    def reap(self, block: bool) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return  # none left
            if pid == 0:
                return  # none finished yet
            if os.waitstatus_to_exitcode(status) == 0:
                self.ok += 1
            else:
                self.failed += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="children per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--bytes", type=int, default=4096)
    parser.add_argument("--name", default="churn-kid")
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = listener.getsockname()[1]
    received = [0]
    threading.Thread(target=serve, args=(listener, received), daemon=True).start()
    payload = b"c" * args.bytes
    reaper = Reaper()
    started = 0
    begin = time.monotonic()
    while (elapsed := time.monotonic() - begin) < args.seconds:
        while started < int(elapsed * args.rate) + 1:
            if os.fork() == 0:
                child(port, args.name, payload)
            started += 1
        reaper.reap(block=False)
        time.sleep(0.002)
    reaper.reap(block=True)
    time.sleep(0.5)  # the server drains the last connections
    listener.close()
    result = {
        "pid": os.getpid(),
        "children": reaper.ok,
        "failed": reaper.failed,
        "child_sent": reaper.ok * args.bytes,
        "server_recv": received[0],
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
