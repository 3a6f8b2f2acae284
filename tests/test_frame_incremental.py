"""The frame a `FrameCollector` freezes tick after tick, handing on what did not change
(process views, their connections by `ProcessState.conns_stamp`, host views and what
is open on them), says exactly what a frame frozen afresh from the same snapshot says.

Real loopback TCP connections held by this process move known bytes through the real
sockdiag backend; between ticks some move, some come to rest, one closes and is swept
out, new ones open, and the hosts' names arrive from the resolver.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from backends.sockdiag import SockdiagBackend
from nettop_ui import collector as collector_module
from nettop_ui.tui.frame import Frame, FrameCollector, ProcessView, build_frame

ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")  # three hosts (scope local)


class Pairs:
    """TCP connections over loopback, both ends held here, by the address dialled."""

    def __init__(self) -> None:
        self.servers = {a: socket.create_server((a, 0)) for a in ADDRESSES}
        self.open: list[tuple[socket.socket, socket.socket]] = []

    def connect(self, address: str) -> int:
        client = socket.create_connection(self.servers[address].getsockname()[:2])
        server, _ = self.servers[address].accept()
        self.open.append((client, server))
        return len(self.open) - 1

    def move(self, i: int, n: int) -> None:
        client, server = self.open[i]
        client.sendall(b"x" * n)
        got = 0
        while got < n:
            got += len(server.recv(65536))

    def close(self, i: int) -> None:
        for s in self.open[i]:
            s.close()

    def close_all(self) -> None:
        for pair in self.open:
            for s in pair:
                s.close()
        for s in self.servers.values():
            s.close()


@pytest.fixture
def pairs() -> Iterator[Pairs]:
    p = Pairs()
    try:
        yield p
    finally:
        p.close_all()


def assert_same_as_afresh(fc: FrameCollector) -> Frame:
    frame = fc.frame
    assert frame is not None
    snap = fc.snapshot(frame.ts, frame.interval_s, frame.system)
    afresh = build_frame(snap, traffic_known=True)
    assert frame.processes == afresh.processes
    assert frame.remotes == afresh.remotes
    return frame


async def test_an_incremental_frame_says_what_one_frozen_afresh_says(
    pairs: Pairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection is this process's, so each kind of change gets a tick where it
    is the only one: a connection coming to rest, a host's name arriving, a sweep."""
    monkeypatch.setattr(collector_module, "SWEEP_CONNECTIONS_S", 0.0)  # sweep every tick
    backend = SockdiagBackend()
    await backend.start()
    fc = FrameCollector(per_process_bytes=True, system=False, gpu=False, resolve=False)
    frames: list[Frame] = []

    async def tick(seconds: float = 0.4) -> None:
        time.sleep(seconds)
        fc.ingest(await backend.read(seconds))
        frames.append(assert_same_as_afresh(fc))

    def ours() -> list[ProcessView]:  # others' tests may hold connections too
        return [p for p in frames[-1].processes if p.pid == os.getpid() and p.connections]

    try:
        conns = [pairs.connect(a) for a in ADDRESSES for _ in range(2)]
        for i in conns:  # all move
            pairs.move(i, 1000 + i)
        await tick()
        pairs.move(0, 5000)  # one moves, the rest come to rest
        await tick()
        await tick()  # that one comes to rest, alone
        pairs.close(4)
        pairs.connect("127.0.0.2")  # a new connection to a known host
        await tick()
        pairs.move(len(conns), 900)  # which moves
        await tick()
        await tick()  # and comes to rest
        kept = {id(h) for h in frames[-2].remotes or ()} & {id(h) for h in frames[-1].remotes or ()}
        assert kept, "no host view was handed on: nothing incremental was tested"
        fc.resolve = True  # the hosts' names arrive, the connections at rest
        deadline = time.monotonic() + 10
        while not any(c.remote_name for p in ours() for c in p.connections):
            assert time.monotonic() < deadline, "no host name arrived from the resolver"
            await tick(0.2)
        fc.connection_keep_s = 0.0  # every idle connection is swept out
        await tick()
        assert not ours()
    finally:
        await backend.close()
        fc.close()
