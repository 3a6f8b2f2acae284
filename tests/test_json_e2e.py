"""End to end: `nettop-ui --json` as a user runs it, against real traffic."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from tests.netenv import Network, require_root, within


class Stream:
    """A running `nettop-ui --json` whose lines are collected in the background; `wrap`
    makes the command line run another way (tests/dnsenv.py: with a given resolver)."""

    def __init__(self, *args: str, wrap: Callable[[list[str]], list[str]] | None = None) -> None:
        cmd = [sys.executable, "-m", "nettop_ui", "--json", *args]
        self.proc = subprocess.Popen(
            wrap(cmd) if wrap else cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.records: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.records.append(json.loads(line))
                self._cond.notify_all()

    def samples(self) -> list[dict[str, Any]]:
        with self._cond:
            return [r for r in self.records if r["type"] == "sample"]

    def wait_samples(self, n: int, timeout: float = 60) -> None:
        target = len(self.samples()) + n
        with self._cond:
            ok = self._cond.wait_for(
                lambda: (
                    sum(r["type"] == "sample" for r in self.records) >= target
                    or self.proc.poll() is not None
                ),
                timeout,
            )
        assert ok and self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        # The reader owns stdout until EOF; communicate() reading it too would split lines.
        self._reader.join(timeout=30)
        _, err = self.proc.communicate(timeout=30)
        return err

    def kill(self) -> None:
        """End it at once if it still runs (a failed test's cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_json_stream_ebpf_counts_real_traffic(net: Network) -> None:
    require_root()
    stream = Stream("--backend", "auto", "--interval", "0.5", "--connections")
    try:
        stream.wait_samples(1, timeout=90)  # the BPF program is compiled and attached
        short = net.client("ntu-e2e-short", "tcp", "v4", up=700_000, linger=False).wait_done()
        short.finish()
        stay = net.client("ntu-e2e-stay", "tcp", "v4", up=50_000, down=1_500_000).wait_done()
        stream.wait_samples(3)
        err = stream.stop()
        stay.finish()
    finally:
        if stream.proc.poll() is None:
            stream.proc.kill()
    assert stream.proc.returncode == 0, err
    assert "Traceback" not in err
    meta = stream.records[0]
    assert meta["type"] == "meta" and meta["backend"] == "ebpf"
    assert meta["layer"] == "socket payload"
    samples = stream.samples()

    def entries(pid: int) -> list[dict[str, Any]]:
        return [p for s in samples for p in s["processes"] if p["pid"] == pid]

    # The process that exited keeps its totals, named, in every sample after it showed up.
    seen = entries(short.pid)
    first = next(
        i for i, s in enumerate(samples) if any(p["pid"] == short.pid for p in s["processes"])
    )
    assert len(seen) == len(samples) - first
    last = seen[-1]
    assert last["name"] == "ntu-e2e-short" and last["exited"] is True
    assert within(last["sent_bytes"], short.sent, 0.01), (last["sent_bytes"], short.sent)

    final = entries(stay.pid)[-1]
    assert final["name"] == "ntu-e2e-stay" and final["exited"] is False
    assert within(final["sent_bytes"], stay.sent, 0.01)
    assert within(final["recv_bytes"], stay.recv, 0.01)
    assert final["cmdline"][-1] == "--linger"
    assert final["connections"], "per-connection detail was asked for"
    remote = {c["remote"] for c in final["connections"]}
    assert f"{net.ns_v4}:{net.ports['tcp4']}" in remote
