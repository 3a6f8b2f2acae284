"""Traffic generator for the tests: moves a known number of payload bytes and says so.

Run as its own process so each client has its own PID and kernel comm (set with
--name), the way a backend sees a real program. Clients count every byte by the
return values of send/recv and print one JSON line {"pid", "sent", "recv"} when
done; with --linger they then wait for stdin to close before exiting, so the test
decides whether the process is still alive at the backend's next interval.

Protocol (TCP): the client sends an 16-byte header (upload size, download size),
then the upload; the server reads the upload, sends the download, and closes.
Protocol (UDP): each datagram starts with 4 bytes giving the reply size wanted.

Only loopback and addresses inside the test's own network namespaces are used.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import socket
import struct
import sys
import threading
import time

CHUNK = 65536
PR_SET_NAME = 15


def set_comm(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def family_of(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def send_n(sock: socket.socket, n: int, rate: float = 0.0) -> int:
    """Send n bytes; with a rate (bytes/s), paced in 16 KiB writes."""
    sent = 0
    block = b"x" * CHUNK
    step = min(16384, max(1, int(rate / 10))) if rate else CHUNK  # ~10 writes/s at least
    start = time.monotonic()
    while sent < n:
        sent += sock.send(block[: min(step, n - sent)])
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    return sent


def recv_n(sock: socket.socket, n: int | None) -> int:
    """Receive n bytes, or until EOF when n is None."""
    got = 0
    while n is None or got < n:
        data = sock.recv(CHUNK if n is None else min(CHUNK, n - got))
        if not data:
            break
        got += len(data)
    return got


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise ConnectionError("short header")
        buf += data
    return buf


# -- servers --------------------------------------------------------------------------


def tcp_server(bind: str, port: int) -> None:
    srv = socket.socket(family_of(bind), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(512)
    print("ready", srv.getsockname()[1], flush=True)

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                up, down = struct.unpack("!QQ", recv_exact(conn, 16))
                recv_n(conn, up)
                send_n(conn, down)
                conn.shutdown(socket.SHUT_WR)
                recv_n(conn, None)  # wait for the client to close first
            except OSError:
                pass

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def udp_server(bind: str, port: int) -> None:
    srv = socket.socket(family_of(bind), socket.SOCK_DGRAM)
    srv.bind((bind, port))
    print("ready", srv.getsockname()[1], flush=True)
    while True:
        data, peer = srv.recvfrom(CHUNK)
        if len(data) >= 4:
            (want,) = struct.unpack("!I", data[:4])
            if want:
                srv.sendto(b"y" * min(want, 65000), peer)


# -- clients --------------------------------------------------------------------------


def tcp_client(
    to: str, port: int, up: int, down: int, conns: int, rate: float = 0.0, hold: float = 0.0
) -> tuple[int, int]:
    sent = recv = 0
    for _ in range(conns):
        with socket.create_connection((to, port), timeout=30) as s:
            sent += s.send(struct.pack("!QQ", up, down))
            sent += send_n(s, up, rate)
            s.shutdown(socket.SHUT_WR) if down == 0 else None
            recv += recv_n(s, down)
            time.sleep(hold)  # keep the connection open, e.g. for a poller to see it
    return sent, recv


def udp_client(
    to: str, port: int, datagrams: int, size: int, reply: int, pace_s: float
) -> tuple[int, int]:
    sent = recv = 0
    with socket.socket(family_of(to), socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        for _ in range(datagrams):
            payload = struct.pack("!I", reply) + b"u" * max(size - 4, 0)
            sent += s.sendto(payload, (to, port))
            if reply:
                with contextlib.suppress(TimeoutError):
                    recv += len(s.recv(CHUNK))
            if pace_s:
                time.sleep(pace_s)
    return sent, recv


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["tcp-server", "udp-server", "tcp", "udp"])
    p.add_argument("--name", default="trafficgen")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--to", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 lets a server pick a free port")
    p.add_argument("--up", type=int, default=0, help="TCP bytes to send per connection")
    p.add_argument("--down", type=int, default=0, help="TCP bytes to receive per connection")
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--datagrams", type=int, default=0)
    p.add_argument("--size", type=int, default=1000, help="UDP datagram size")
    p.add_argument("--reply", type=int, default=0, help="UDP reply size per datagram")
    p.add_argument("--pace", type=float, default=0.0, help="seconds between datagrams")
    p.add_argument("--hold", type=float, default=0.0, help="seconds to keep each TCP conn open")
    p.add_argument("--rate", type=float, default=0.0, help="TCP upload pace, bytes/s")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before moving data")
    p.add_argument("--linger", action="store_true", help="stay alive until stdin closes")
    a = p.parse_args()
    set_comm(a.name)
    if a.mode == "tcp-server":
        tcp_server(a.bind, a.port)
        return
    if a.mode == "udp-server":
        udp_server(a.bind, a.port)
        return
    if a.delay:
        time.sleep(a.delay)
    if a.mode == "tcp":
        sent, recv = tcp_client(a.to, a.port, a.up, a.down, a.conns, a.rate, a.hold)
    else:
        sent, recv = udp_client(a.to, a.port, a.datagrams, a.size, a.reply, a.pace)
    print(json.dumps({"pid": os.getpid(), "sent": sent, "recv": recv}), flush=True)
    if a.linger:
        sys.stdin.read()


if __name__ == "__main__":
    main()
