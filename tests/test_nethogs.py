"""The nethogs backend: its parser on real captured `nethogs -t` output, fuzzed, and the
real nethogs against real traffic, next to a raw nethogs run measuring the same bytes.

nethogs counts captured packet lengths (headers included) and can only attribute a
packet once it has tied the connection to a process through /proc, so it does not
match socket payload. The claim tested here is the one that matters for a wrapper:
the backend reports what nethogs itself reports (compared with a second, raw nethogs
in the same run), and both are compared with the truth with tolerances measured on
this machine (stated at each assertion).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.nethogs import (
    NethogsBackend,
    NethogsDeltas,
    NethogsParser,
    NethogsRow,
    parse_line,
    parse_output,
)
from tests.netenv import BackendRun, Client, Network, require, require_root, within

FIXTURES = Path(__file__).parent / "fixtures" / "nethogs"


def fixture(name: str) -> list[list[NethogsRow]]:
    return parse_output((FIXTURES / name).read_text())


def test_startup_chatter_is_skipped() -> None:
    (block,) = fixture("nethogs_t_0.8.2_startup_issue84_realtabs.txt")
    assert block == [NethogsRow("unknown TCP", 0, 0, 0.0, 0.0)]


def test_connection_named_rows_and_values() -> None:
    blocks = fixture("nethogs_t_d5_v0_issue194_realtabs.txt")
    assert [len(b) for b in blocks] == [7, 7, 9]
    first = blocks[0][0]
    assert (first.name, first.pid, first.uid) == ("192.168.50.21:58610-91.189.88.248:443", 0, 0)
    assert (first.sent, first.recv) == (0.0, 19.0559)
    assert not first.attributed


def test_name_with_slash_colon_and_spaces_in_tab_expanded_copy() -> None:
    blocks = fixture("nethogs_t_issue190_sshd_tabexpanded_indented.txt")
    sshd = blocks[1][0]
    assert (sshd.name, sshd.pid, sshd.uid) == ("sshd: root@pts/0", 4002, 0)
    assert (sshd.sent, sshd.recv) == (0.220703, 0.0902344)


@pytest.mark.parametrize(
    "name",
    [
        "nethogs_t_issue31_2016-03-04_tabexpanded.txt",
        "nethogs_t_issue31_2016-03-28_tabexpanded.txt",
    ],
)
def test_issue31_captures(name: str) -> None:
    (block,) = fixture(name)
    assert len(block) in (4, 13)
    assert all(r.pid == 0 and "-" in r.name for r in block)


def test_e_notation_tabs_in_names_and_garbage() -> None:
    row = parse_line("/usr/bin/my\tprog arg/1234/1000\t2.51742e+07\t12.5\n")
    assert row == NethogsRow("/usr/bin/my\tprog arg", 1234, 1000, 25174200.0, 12.5)
    for bad in ["Ethernet link detected", "x/1/2\ta\tb", "name/notapid/0\t1\t2", "\t\t", ""]:
        assert parse_line(bad) is None
    parser = NethogsParser()
    for line in ["Refreshing:", "garbage line", "ok/5/0\t1\t2", "Refreshing:"]:
        parser.feed(line)
    assert parser.bad_lines == 1


def test_deltas_clamp_and_route_unattributed() -> None:
    deltas = NethogsDeltas()
    deltas.update([NethogsRow("/usr/bin/curl", 7, 0, 1000.0, 50.0)])
    procs, un_sent, un_recv = deltas.update(
        [
            NethogsRow("/usr/bin/curl", 7, 0, 2.51742e07, 40.0),  # recv went down: rounding
            NethogsRow("unknown TCP", 0, 0, 300.0, 400.0),
        ]
    )
    assert [(p.pid, p.name, p.sent_bytes, p.recv_bytes) for p in procs] == [
        (7, "curl", 25174200 - 1000, 0)
    ]
    assert (un_sent, un_recv) == (300, 400)


@given(st.binary(max_size=3000))
def test_parser_never_raises_on_bytes(raw: bytes) -> None:
    parse_output("Refreshing:\n" + raw.decode("utf-8", errors="backslashreplace"))


@given(st.lists(st.text(max_size=80), max_size=30))
def test_deltas_never_raise(lines: list[str]) -> None:
    deltas = NethogsDeltas()
    for block in parse_output("\n".join(["Refreshing:", *lines])):
        deltas.update(block)


# -- the real nethogs ---------------------------------------------------------------


class RawNethogs:
    """nethogs itself, run beside the backend, its last block kept per pid."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["nethogs", "-t", "-v", "2", "-C", "-a", "-d", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            errors="backslashreplace",
        )

    def stop(self) -> dict[int, tuple[float, float]]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        totals: dict[int, tuple[float, float]] = {}
        for block in parse_output(out):
            for row in block:
                if row.attributed:
                    totals[row.pid] = (row.sent, row.recv)
        return totals


@pytest.fixture(scope="module")
def measured(net: Network) -> Iterator[dict[str, object]]:
    """One traffic run seen by the backend and by a raw nethogs, shared by the checks."""
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    raw = RawNethogs()
    rate = 1_500_000.0  # paced, so nethogs has tied each connection to its process
    with BackendRun(NethogsBackend(), interval_s=1.0) as run:
        time.sleep(1.0)
        clients = {
            "up": net.client("nh-up", "tcp", "v4", up=3_000_000, rate=rate),
            "v6": net.client("nh-v6", "tcp", "v6", up=3_000_000, rate=rate),
            "lo": net.client("nh-lo", "tcp", "lo", up=3_000_000, rate=rate),
            "both": net.client("nh-both", "tcp", "v4", up=3_000_000, down=20_000_000, rate=rate),
            "same1": net.client("nh-same1", "tcp", "v4", up=2_000_000, rate=rate),
            "same2": net.client("nh-same2", "tcp", "v4", up=2_000_000, rate=rate),
            "udp": net.client(
                "nh-udp", "udp", "v4", datagrams=1000, size=1200, reply=800, pace=0.002
            ),
        }
        for c in clients.values():
            c.wait_done()
        run.wait_samples(3)
        raw_totals = raw.stop()
        yield {"run": run, "raw": raw_totals, "clients": clients}
    for c in clients.values():
        c.finish()


def _check(measured: dict[str, object], key: str, sent_tol: float) -> tuple[Client, int, int]:
    run: BackendRun = measured["run"]  # type: ignore[assignment]
    raw: dict[int, tuple[float, float]] = measured["raw"]  # type: ignore[assignment]
    c: Client = measured["clients"][key]  # type: ignore[index]
    sent, recv = run.totals(c.pid)
    raw_sent, _raw_recv = raw[c.pid]
    # The wrapper adds no error of its own: same numbers as nethogs (6-digit rounding).
    assert within(sent, raw_sent, 0.01), (sent, raw_sent)
    # Measured here: paced TCP uploads read 0.4%..1% above payload (IP+TCP headers).
    assert within(sent, c.sent, sent_tol), (sent, c.sent)
    assert sent >= c.sent  # packets are never smaller than their payload
    return c, sent, recv


@pytest.mark.parametrize("key", ["up", "v6", "lo", "same1", "same2"])
def test_tcp_uploads_match_nethogs_and_truth(measured: dict[str, object], key: str) -> None:
    _check(measured, key, 0.03)


def test_duplex_download_is_partly_unattributed(measured: dict[str, object]) -> None:
    c, _sent, recv = _check(measured, "both", 0.03)
    # An unpaced 20 MB download: the packets before nethogs ties the connection to the
    # process count as "unknown TCP". Measured 0.79 of the payload here; nethogs's own
    # error, stated, not hidden.
    assert 0.5 * c.recv <= recv <= 1.05 * c.recv


def test_udp_is_reported_unattributed_not_dropped(measured: dict[str, object]) -> None:
    run: BackendRun = measured["run"]  # type: ignore[assignment]
    c: Client = measured["clients"]["udp"]  # type: ignore[index]
    # nethogs 0.8.7 does not tie unconnected UDP sockets to processes: the bytes land in
    # "unknown UDP", which the backend reports as unattributed (nethogs's own error).
    sent, _ = run.totals(c.pid)
    assert sent == 0 or within(sent, c.sent, 0.1)
    assert run.unattributed[0] >= 0.9 * c.sent


def test_nethogs_killed_is_an_error_and_child_reaped() -> None:
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    backend = NethogsBackend()
    with BackendRun(backend, interval_s=1.0) as run:
        assert backend._proc is not None
        pid = backend._proc.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not run.failures and time.monotonic() < deadline:
            time.sleep(0.1)
    assert run.failures and run.failures[0].message.startswith("nethogs exited")
    assert not os.path.exists(f"/proc/{pid}")
