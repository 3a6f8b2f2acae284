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

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.nethogs import (
    LOOPBACK_NOTE,
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


def test_every_capture_is_copied_into_the_repo() -> None:
    names = sorted(p.name for p in FIXTURES.iterdir())
    assert len(names) == 5 and all(n.startswith("nethogs_t_") for n in names)


def test_startup_chatter_is_skipped() -> None:
    # shell prompts, " version 0.8.2-SNAPSHOT", "Ethernet link detected", "Adding local
    # address: ...", "Waiting for first packet ..." all come before the first Refreshing:
    parser = NethogsParser()
    text = (FIXTURES / "nethogs_t_0.8.2_startup_issue84_realtabs.txt").read_text()
    blocks = [b for line in text.splitlines() if (b := parser.feed(line)) is not None]
    assert blocks == [] and parser.bad_lines == 0
    assert parser.flush() == [NethogsRow("unknown TCP", 0, 0, 0.0, 0.0)]


def test_connection_named_rows_and_values() -> None:
    blocks = fixture("nethogs_t_d5_v0_issue194_realtabs.txt")
    assert [len(b) for b in blocks] == [7, 7, 9]
    first = blocks[0][0]
    assert (first.name, first.pid, first.uid) == ("192.168.50.21:58610-91.189.88.248:443", 0, 0)
    assert (first.sent, first.recv) == (0.0, 19.0559)
    assert not first.attributed
    assert blocks[0][5] == NethogsRow("3.9.186.108:443-192.168.50.22:58898", 0, 0, 0.0, 0.0128906)
    assert blocks[0][6] == NethogsRow("unknown TCP", 0, 0, 0.0, 0.0)
    assert blocks[2][-1] == NethogsRow("192.168.50.22:58898-3.9.186.108:443", 0, 0, 0.0, 0.0)
    # every row is pid 0: all of it is unattributed, none of it a process
    procs, un_sent, un_recv = NethogsDeltas().update(blocks[0])
    assert procs == [] and (un_sent, un_recv) == (0, 0 + 19 + 17 + 13 + 2 + 0 + 0)


def test_name_with_slash_colon_and_spaces_in_tab_expanded_copy() -> None:
    blocks = fixture("nethogs_t_issue190_sshd_tabexpanded_indented.txt")
    assert [len(b) for b in blocks] == [2, 2, 2]
    sshd = blocks[1][0]
    assert (sshd.name, sshd.pid, sshd.uid) == ("sshd: root@pts/0", 4002, 0)
    assert (sshd.sent, sshd.recv) == (0.220703, 0.0902344)
    assert blocks[2][0] == NethogsRow("sshd: root@pts/0", 4002, 0, 0.217578, 0.0902344)
    assert blocks[0][1] == NethogsRow("unknown TCP", 0, 0, 0.0, 0.0)
    # the real-TAB form of the same line
    assert parse_line("sshd: root@pts/0/4002/0\t0.185156\t0.0773437\n") == blocks[0][0]


@pytest.mark.parametrize(
    "name",
    [
        "nethogs_t_issue31_2016-03-04_tabexpanded.txt",
        "nethogs_t_issue31_2016-03-28_tabexpanded.txt",
    ],
)
def test_issue31_captures(name: str) -> None:
    (block,) = fixture(name)
    expected_first = {
        "nethogs_t_issue31_2016-03-04_tabexpanded.txt": (
            "10.171.75.107:61380-10.62.59.202:22",
            0.424609,
            4,
        ),
        "nethogs_t_issue31_2016-03-28_tabexpanded.txt": (
            "10.32.100.122:62426-10.62.59.194:22",
            0.160938,
            13,
        ),
    }[name]
    assert (block[0].name, block[0].recv, len(block)) == expected_first
    assert all(r.pid == 0 and r.uid == 0 and r.sent == 0 and "-" in r.name for r in block)
    if len(block) == 13:
        assert block[10] == NethogsRow("10.62.59.242:63294-216.58.197.46:443", 0, 0, 0.0, 0.0234375)


def test_e_notation_tabs_in_names_and_garbage() -> None:
    row = parse_line("/usr/bin/my\tprog arg/1234/1000\t2.51742e+07\t12.5\n")
    assert row == NethogsRow("/usr/bin/my\tprog arg", 1234, 1000, 25174200.0, 12.5)
    assert parse_line("sshd: root@pts/0/4002/0\t0\t1.25701e+07") == NethogsRow(
        "sshd: root@pts/0", 4002, 0, 0.0, 12570100.0
    )
    assert parse_line("a\tb\tc/9/0\t1\t2").name == "a\tb\tc"  # type: ignore[union-attr]
    assert parse_line("prog /1234/1000\t1\t2").name == "prog "  # type: ignore[union-attr]
    assert parse_line("/1234/0\t1\t2").name == ""  # type: ignore[union-attr]
    bad_lines = [
        "Ethernet link detected",
        "x/1/2\ta\tb",
        "name/notapid/0\t1\t2",
        "name/ 1/0\t1\t2",
        "name/1_0/0\t1\t2",
        "name/-1/0\t1\t2",
        "name/1/0\tnan\t2",
        "name/1/0\t1\tinf",
        "name/1/0\t-5\t2",
        "Unknown connection: 1.2.3.4:5-6.7.8.9:10",
        "\t\t",
        "",
    ]
    for bad in bad_lines:
        assert parse_line(bad) is None, bad
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
    for block in parse_output("Refreshing:\n" + raw.decode("utf-8", errors="backslashreplace")):
        for row in block:
            assert row.pid >= 0 and row.sent >= 0 and row.recv >= 0


LINES = ["Refreshing:", "", "a/1/0\t5\t6", "x\ty/2/0\t1e+07\t0", "a/1/0\t4\t7", "junk"]


@given(st.lists(st.sampled_from(LINES) | st.text(max_size=60), max_size=40))
def test_deltas_are_never_negative(lines: list[str]) -> None:
    deltas = NethogsDeltas()
    for block in parse_output("\n".join(["Refreshing:", *lines])):
        procs, un_sent, un_recv = deltas.update(block)
        assert un_sent >= 0 and un_recv >= 0
        assert all(p.sent_bytes >= 0 and p.recv_bytes >= 0 for p in procs)


@given(st.lists(st.text(max_size=80), max_size=30))
def test_deltas_never_raise(lines: list[str]) -> None:
    deltas = NethogsDeltas()
    for block in parse_output("\n".join(["Refreshing:", *lines])):
        deltas.update(block)


# -- the real nethogs ---------------------------------------------------------------
#
# One traffic run serves every case: nethogs is slow to start and each case needs a few
# refreshes. Three views of the same traffic are kept:
#   backend  - NethogsBackend's summed deltas per pid (what the UI shows);
#   tee      - the last totals printed by the backend's *own* nethogs (a tee of its stdout):
#              the backend must reproduce them, which is the claim "the wrapper adds no
#              error of its own", checked to the byte (plus 6-digit rounding);
#   raw      - a second, plain `nethogs -t -v 2 -C -a -d 1` started by the test.
# Two nethogs instances watching the same packets do not agree exactly: each ties a
# connection to its process at its own moment (packets before go to "unknown TCP") and
# libpcap drops packets when nethogs falls behind on the 2 cores. Measured on this VM
# (Debian 12, nethogs 0.8.7, 2 cores), five runs, ratio to the payload truth,
# backend vs raw (the tee check read 0 bytes apart in every run):
#   paced TCP uploads, clients in waves of three:
#     v4 "up" (beside an unpaced download) 0.911..1.004 vs 0.911..1.004
#     v4 duplex, v6, loopback, two clients on one port: 0.979..1.007 vs 0.985..1.007
#     (headers add ~0.4% on 16 KiB GSO segments; misses are packets before attribution
#     and libpcap drops); backend and raw at most 1.1% apart
#   unpaced 3 MB download: recv 0.525..0.591 vs 0.525..0.591; v6 3 MB down 0.834..1.008
#     vs 0.790..1.008; 5 MB duplex down 1.004 vs 0.978..1.004
#   loopback: sent 1.004..1.005, recv 0 in both (both ends local: one direction is lost)
#   UDP (unconnected sockets): 0 for the process in both; "unknown UDP" 1.00..1.04 of the
#     2.4 MB sent (IP+UDP headers add 2.3%..4%; other test runs may add more)
#   with all nine clients at once, uploads fell to 0.67 and UDP to 0.86 in both
#   instances alike: nethogs's own losses, which is why the clients run in waves.

NETHOGS = shutil.which("nethogs") or "/usr/sbin/nethogs"
ARGS = ["-t", "-v", "2", "-C", "-a", "-d", "1"]


def last_totals(text: str) -> dict[int, tuple[float, float]]:
    """pid -> (sent, recv) from the last block that has the pid (totals only grow)."""
    totals: dict[int, tuple[float, float]] = {}
    for block in parse_output(text):
        for row in block:
            if row.attributed:
                old = totals.get(row.pid, (0.0, 0.0))
                totals[row.pid] = (max(old[0], row.sent), max(old[1], row.recv))
    return totals


@dataclass
class Measured:
    run: BackendRun
    tee: dict[int, tuple[float, float]]
    raw: dict[int, tuple[float, float]]
    raw_unknown_udp: tuple[float, float]
    clients: dict[str, Client]

    def row(self, key: str) -> tuple[Client, tuple[int, int], tuple[float, float]]:
        c = self.clients[key]
        return c, self.run.totals(c.pid), self.raw.get(c.pid, (0.0, 0.0))


@pytest.fixture(scope="module")
def measured(net: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    require(shutil.which("tee") is not None, "needs tee (coreutils)")
    tmp = tmp_path_factory.mktemp("nethogs")
    log_path = tmp / "backend-nethogs.out"
    wrapper = tmp / "nethogs-tee"  # the backend's nethogs, its stdout copied to a file
    wrapper.write_text(f'#!/bin/bash\nexec {NETHOGS} "$@" > >(exec tee {log_path})\n')
    wrapper.chmod(0o755)
    raw = subprocess.Popen(
        [NETHOGS, *ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        errors="backslashreplace",
    )
    rate = 1_500_000.0  # paced uploads: nethogs ties each connection early in the transfer
    udp = {"datagrams": 1000, "size": 1200, "reply": 800, "pace": 0.002}
    clients: dict[str, Client] = {}
    try:
        with BackendRun(NethogsBackend(str(wrapper)), interval_s=1.0) as run:
            time.sleep(1.0)
            # three waves of three clients: fewer at once, fewer packets lost to libpcap
            waves: list[dict[str, Callable[[], Client]]] = [
                {
                    "up": lambda: net.client("nh-up", "tcp", "v4", up=3_000_000, rate=rate),
                    "down": lambda: net.client("nh-down", "tcp", "v4", down=3_000_000, hold=1),
                    "udp": lambda: net.client("nh-udp", "udp", "v4", **udp),  # type: ignore[arg-type]
                },
                {
                    "both": lambda: net.client(
                        "nh-both", "tcp", "v4", up=3_000_000, down=5_000_000, rate=rate
                    ),
                    "v6": lambda: net.client(
                        "nh-v6", "tcp", "v6", up=3_000_000, down=3_000_000, rate=rate
                    ),
                    "udp6": lambda: net.client("nh-udp6", "udp", "v6", **udp),  # type: ignore[arg-type]
                },
                {
                    "lo": lambda: net.client(
                        "nh-lo", "tcp", "lo", up=3_000_000, down=3_000_000, rate=rate
                    ),
                    "same1": lambda: net.client("nh-same1", "tcp", "v4", up=2_000_000, rate=rate),
                    "same2": lambda: net.client("nh-same2", "tcp", "v4", up=2_000_000, rate=rate),
                },
            ]
            for wave in waves:
                started = {key: make() for key, make in wave.items()}
                clients.update(started)
                for c in started.values():
                    c.wait_done()
            time.sleep(2.5)  # two more refreshes while the clients linger
            run.wait_samples(1)
            raw.terminate()
            raw_out, _ = raw.communicate(timeout=10)
        unknown_udp = (0.0, 0.0)
        for block in parse_output(raw_out):
            for r in block:
                if r.name == "unknown UDP" and r.pid == 0:
                    unknown_udp = (max(unknown_udp[0], r.sent), max(unknown_udp[1], r.recv))
        m = Measured(
            run,
            last_totals(log_path.read_text(errors="backslashreplace")),
            last_totals(raw_out),
            unknown_udp,
            clients,
        )
        print_table(m)
        yield m
    finally:
        if raw.poll() is None:
            raw.kill()
            raw.wait()
        for c in clients.values():
            c.finish()


def print_table(m: Measured) -> None:
    """The measured ratios to the truth, for `pytest -s` (what the comments above quote)."""
    for key, c in m.clients.items():
        (s, r), (rs, rr) = m.run.totals(c.pid), m.raw.get(c.pid, (0.0, 0.0))
        ts, tr = m.tee.get(c.pid, (0.0, 0.0))
        ratio = [f"{a / b:.3f}" if b else f"{a:.0f}B" for a, b in ((s, c.sent), (r, c.recv))]
        raw = [f"{a / b:.3f}" if b else f"{a:.0f}B" for a, b in ((rs, c.sent), (rr, c.recv))]
        print(f"nethogs {key:6} backend {ratio} raw {raw} tee-diff {s - ts:.0f},{r - tr:.0f}")
    print("nethogs unattributed", m.run.unattributed, "raw unknown UDP", m.raw_unknown_udp)


def assert_wrapper_exact(m: Measured, c: Client) -> None:
    """The backend's summed deltas are its own nethogs's final totals (6-digit rounding)."""
    sent, recv = m.run.totals(c.pid)
    tee_sent, tee_recv = m.tee.get(c.pid, (0.0, 0.0))
    assert abs(sent - tee_sent) <= max(1.0, tee_sent * 1e-5), (sent, tee_sent)
    assert abs(recv - tee_recv) <= max(1.0, tee_recv * 1e-5), (recv, tee_recv)


@pytest.mark.parametrize("key", ["up", "both", "v6", "lo", "same1", "same2"])
def test_tcp_upload_backend_vs_raw_nethogs_vs_truth(measured: Measured, key: str) -> None:
    c, (sent, _recv), (raw_sent, _raw_recv) = measured.row(key)
    assert_wrapper_exact(measured, c)
    # backend vs a second nethogs: measured at most 1.1% apart on paced uploads on a quiet
    # machine, 4.2% with other test runs beside it; 8% allowed.
    assert within(sent, raw_sent, 0.08), (sent, raw_sent)
    # each vs truth: measured 0.801..1.008 (the low end: "up", beside an unpaced download,
    # with other test runs on the machine); 0.75..1.03 allowed.
    assert 0.75 * c.sent <= sent <= 1.03 * c.sent, (sent, c.sent)
    assert 0.75 * c.sent <= raw_sent <= 1.03 * c.sent, (raw_sent, c.sent)


def test_two_processes_on_one_server_port_are_kept_apart(measured: Measured) -> None:
    (s1, _), (s2, _) = (measured.run.totals(measured.clients[k].pid) for k in ("same1", "same2"))
    assert measured.clients["same1"].pid != measured.clients["same2"].pid
    # neither got the other's 2 MB (that would read ~2.0 of its truth)
    assert s1 <= 1.06 * measured.clients["same1"].sent
    assert s2 <= 1.06 * measured.clients["same2"].sent


@pytest.mark.parametrize("key", ["down", "both", "v6"])
def test_tcp_download_is_counted_in_part(measured: Measured, key: str) -> None:
    c, (_sent, recv), (_raw_sent, raw_recv) = measured.row(key)
    assert_wrapper_exact(measured, c)
    # Unpaced downloads: nethogs itself loses a share (late attribution, libpcap drops
    # under load): measured 0.46..1.008 of the payload for either instance, down to 0.035
    # (backend's nethogs) and 0.365 (raw) with other test runs beside it; 0.43 in
    # bench/accuracy. No lower bound holds, so only: never above the truth plus headers,
    # and some of it seen by at least one of the two instances.
    assert recv <= 1.05 * c.recv and raw_recv <= 1.05 * c.recv, (recv, raw_recv, c.recv)
    assert max(recv, raw_recv) > 0, "neither nethogs saw any of the download"


def test_loopback_counts_one_direction(measured: Measured) -> None:
    c, (sent, recv), (raw_sent, raw_recv) = measured.row("lo")
    # both ends local: nethogs books the packets one way; measured recv 0 in both
    assert recv <= 0.05 * c.recv and raw_recv <= 0.05 * c.recv, (recv, raw_recv)
    assert within(sent, raw_sent, 0.04)


@pytest.mark.parametrize("key", ["udp", "udp6"])
def test_udp_is_unattributed_not_dropped(measured: Measured, key: str) -> None:
    c, (sent, recv), (raw_sent, raw_recv) = measured.row(key)
    assert_wrapper_exact(measured, c)
    # nethogs 0.8.7 does not tie unconnected UDP sockets to processes: measured 0 for the
    # process in both instances; the bytes land in "unknown UDP" (IP+UDP headers ~+2.3%
    # on 1200-byte datagrams). Other test runs may add UDP there too: lower bounds only.
    assert (sent, recv) == (0, 0) or within(sent, c.sent, 0.1), (sent, recv)
    assert (raw_sent, raw_recv) == (0, 0) or within(raw_sent, c.sent, 0.1)
    both_udp = sum(measured.clients[k].sent for k in ("udp", "udp6"))
    # measured 1.00..1.04 of the payload in waves, 0.86 with nine clients at once
    assert measured.run.unattributed[0] >= 0.85 * both_udp
    assert measured.run.unattributed[1] >= 0.85 * sum(
        measured.clients[k].recv for k in ("udp", "udp6")
    )
    assert measured.raw_unknown_udp[0] >= 0.85 * both_udp


def test_nethogs_killed_is_an_error_and_child_reaped() -> None:
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    backend = NethogsBackend()
    with BackendRun(backend, interval_s=1.0) as run:
        assert backend._child is not None
        pid = backend._child.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not run.failures and time.monotonic() < deadline:
            time.sleep(0.1)
    assert run.failures, "read() did not raise after nethogs died"
    assert run.failures[0].message.startswith("nethogs exited: killed by SIGKILL")
    assert not os.path.exists(f"/proc/{pid}")  # reaped, not a zombie


def test_missing_binary_is_a_clear_start_error() -> None:
    backend = NethogsBackend("/nonexistent/nethogs")
    run = BackendRun(backend)
    run._thread.start()
    run._thread.join(10)
    assert run.failures and "cannot run /nonexistent/nethogs" in run.failures[0].message


def test_loopback_figures_are_marked_veth_figures_are_not(net: Network) -> None:
    """What nethogs gets wrong, measured here (nethogs 0.8.7, a 3 MB upload paced at
    1 MB/s, one at a time): over veth it books the client's upload as sent (1.004 of the
    payload) and the ACKs coming back as received (12.6 kB); over loopback, where both
    ends are on this host, it books every packet as *sent* by the end that sent it and
    nothing as received: client sent 1.004, recv 0; server recv 0 of its 3 MB, and its
    ACKs (12.4 kB) as "upload". With a download on the same connection the server's
    data is its "upload" and the client's download reads 0. UDP on loopback lands in
    "unknown UDP", both directions as sent. So the JSON stream marks the figures of the
    processes the backend sees holding a loopback connection, and no others."""
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    cmd = [sys.executable, "-m", "nettop_ui", "--json", "--backend", "nethogs", "--all"]
    mon = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clients: list[Client] = []
    seen: dict[int, dict[str, Any]] = {}
    try:
        assert mon.stdout is not None
        assert json.loads(mon.stdout.readline())["backend"] == "nethogs"
        mon.stdout.readline()  # a first sample: nethogs is running
        for target in ("lo", "v4"):
            clients.append(net.client(f"nh-mark-{target}", "tcp", target, up=2_000_000,
                                      rate=1_000_000.0))  # fmt: skip
        lo, v4 = (c.wait_done() for c in clients)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            record = json.loads(mon.stdout.readline())
            seen.update({p["pid"]: p for p in record["processes"]})
            if all(seen.get(c.pid, {}).get("sent_bytes", 0) >= 0.7 * c.sent for c in clients):
                break
    finally:
        mon.terminate()
        mon.communicate(timeout=30)  # read on, so it is never blocked writing
        for c in clients:
            c.finish()
    lo_rec, v4_rec, server = seen[lo.pid], seen[v4.pid], seen[net.server_pid("tcp-lo")]
    # the premise, as measured: veth books what came back as received, loopback never
    assert v4_rec["sent_bytes"] >= 0.7 * v4.sent and v4_rec["recv_bytes"] > 0, v4_rec
    assert lo_rec["sent_bytes"] >= 0.7 * lo.sent and lo_rec["recv_bytes"] == 0, lo_rec
    assert server["recv_bytes"] == 0 and server["sent_bytes"] > 0, server
    assert (lo_rec["note"], server["note"]) == (LOOPBACK_NOTE, LOOPBACK_NOTE)
    assert v4_rec["note"] is None


def test_rates_are_over_the_time_nethogs_counted_them(net: Network) -> None:
    """nethogs reports once a second. Sampled every 0.2 s, the wrapper put a whole
    second's bytes in one 0.2 s sample and nothing in the next four: a 1 MiB/s upload
    read 5.0 MiB/s, then 0, in turns. A sample now holds whole nethogs refreshes and
    covers the time they counted."""
    require_root()
    require(shutil.which("nethogs") is not None, "needs nethogs (apt install nethogs)")
    pace = 1_048_576.0
    cmd = [sys.executable, "-m", "nettop_ui", "--json", "--backend", "nethogs"]
    mon = subprocess.Popen([*cmd, "--interval", "0.2"], stdout=subprocess.PIPE, text=True)
    client = None
    rates: list[float] = []
    try:
        assert mon.stdout is not None
        mon.stdout.readline()  # meta
        mon.stdout.readline()  # a first sample: nethogs is running
        client = net.client("nh-pace", "tcp", "v4", up=int(8 * pace), rate=pace)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(rates) < 7:  # within the 8 s upload
            record = json.loads(mon.stdout.readline())
            mine = [p for p in record["processes"] if p["pid"] == client.proc.pid]
            if mine and (rates or mine[0]["sent_bps"]):
                rates.append(mine[0]["sent_bps"])
    finally:
        mon.terminate()
        mon.communicate(timeout=30)
        if client is not None:
            client.proc.kill()
            client.proc.wait()
    steady = rates[1:-1]  # the first and last samples hold part of a second of traffic
    assert len(steady) >= 4, rates
    assert max(steady) <= 1.5 * pace, [round(r / pace, 2) for r in rates]
    assert 0.8 * pace <= sum(steady) / len(steady) <= 1.2 * pace, [r / pace for r in rates]
