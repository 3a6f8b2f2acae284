"""The ebpf backend against real traffic: its per-PID bytes must match the generators'.

One backend run (module scope, 0.5 s interval) serves every traffic test; each test
starts its own client processes and compares the backend's totals for their pids
with the bytes the clients counted themselves, within 1%.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import bpfload, btf, ebpf
from backends.ebpf import EbpfBackend
from nettop_ui.core import BackendError
from tests.netenv import BackendRun, Client, Network, require, require_root, within

pytestmark = pytest.mark.root
TOLERANCE = 0.01

# A client for what trafficgen.py does not do: MSG_PEEK and splice() reads, ICMP, raw IP,
# AF_PACKET, a thread that sends first. Prints {"pid", "sent", "recv"} like trafficgen.py.
# argv: mode name target [port] [n] [seconds to hold the connection after a splice/mix read]
SOCKET_CLIENT = r"""
import ctypes, json, os, socket, struct, sys, time
mode, name, target = sys.argv[1:4]
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)
sent = recv = 0

def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

if mode == "peek":  # TCP download where every read is peeked first
    port, down = int(sys.argv[4]), int(sys.argv[5])
    with socket.create_connection((target, port), timeout=30) as s:
        sent += s.send(struct.pack("!QQ", 0, down))
        while s.recv(65536, socket.MSG_PEEK):
            recv += len(s.recv(65536))
elif mode in ("splice", "mix", "splice-half"):  # TCP download read with splice() through
    # a pipe; "mix" takes turns with recv/read/recvmsg; "splice-half" shuts its sending
    # side first, so the peer's FIN finds it in FIN_WAIT2
    port, down = int(sys.argv[4]), int(sys.argv[5])
    with socket.create_connection((target, port), timeout=30) as s:
        s.settimeout(None)  # blocking: os.splice does not retry on EAGAIN
        sent += s.send(struct.pack("!QQ", 0, down))
        if mode == "splice-half":
            s.shutdown(socket.SHUT_WR)
        r, w = os.pipe()
        def spliced():
            moved = os.splice(s.fileno(), w, 65536)
            left = moved
            while left:
                left -= len(os.read(r, left))
            return moved
        readers = [spliced]
        if mode == "mix":
            readers += [
                lambda: len(s.recv(65536)),
                lambda: len(os.read(s.fileno(), 65536)),
                lambda: len(s.recvmsg(65536)[0]),
            ]
        turn = 0
        while moved := readers[turn % len(readers)]():
            recv += moved
            turn += 1
        time.sleep(float(sys.argv[6]) if len(sys.argv) > 6 else 0)  # hold the connection
elif mode == "mptcp":  # TCP download through an MPTCP socket (its subflow is a TCP socket)
    port, down = int(sys.argv[4]), int(sys.argv[5])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as s:
        s.connect((target, port))
        sent += s.send(struct.pack("!QQ", 0, down))
        while data := s.recv(65536):
            recv += len(data)
elif mode == "icmp":  # echo requests over a raw ICMP socket, each awaiting its reply
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(5)
        for seq in range(int(sys.argv[4])):
            body = b"p" * 56
            head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            head = struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, seq)
            sent += s.sendto(head + body, (target, 0))
            while True:  # a raw socket sees all ICMP; every byte read counts
                data = s.recv(65536)
                recv += len(data)
                ihl = (data[0] & 0xF) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                if kind == 0 and (rid, rseq) == (ident, seq):
                    break
elif mode == "raw":  # IP protocol 253 (for experiments), send only
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, 253) as s:
        for _ in range(int(sys.argv[4])):
            try:  # a failed send (an ICMP error came back) moves nothing, counts nothing
                sent += s.sendto(b"r" * 300, (target, 0))
            except OSError:
                pass
elif mode == "packet":  # Ethernet frames of ethertype 0x88B5 (local experimental)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5)) as s:
        s.bind((target, 0))
        frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + b"n" * 200
        for _ in range(int(sys.argv[4])):
            sent += s.send(frame)
elif mode == "thread":  # a thread named "ebpf-worker" sends before the main thread does
    import threading
    port = int(sys.argv[4])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        def worker():
            global sent
            ctypes.CDLL(None).prctl(15, b"ebpf-worker", 0, 0, 0)
            sent += s.sendto(b"w" * 1000, (target, port))
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        sent += s.sendto(b"m" * 500, (target, port))
print(json.dumps({"pid": os.getpid(), "sent": sent, "recv": recv}), flush=True)
"""


def socket_client(mode: str, name: str, target: str, *args: int) -> Client:
    cmd = [sys.executable, "-c", SOCKET_CLIENT, mode, name, target, *map(str, args)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return Client(proc, name)


def require_ebpf() -> None:
    require_root()
    probe = EbpfBackend.probe()
    require(probe.available, f"ebpf backend cannot run: {probe.reason} (fix: {probe.fix})")


@pytest.fixture(scope="module")
def run(net: Network) -> Iterator[BackendRun]:
    require_ebpf()
    with BackendRun(EbpfBackend(), interval_s=0.5) as r:
        yield r


def settle(run: BackendRun, *clients: Client) -> None:
    """Let finished clients exit, then wait for two samples so their bytes are drained."""
    for c in clients:
        c.finish()
    run.wait_samples(2)


def check(run: BackendRun, c: Client) -> None:
    sent, recv = run.totals(c.pid)
    print(f"{c.name}: sent {sent}/{c.sent} recv {recv}/{c.recv}")
    assert c.sent or c.recv, "the client moved nothing"
    assert within(sent, c.sent, TOLERANCE), f"{c.name} sent: ebpf {sent}, truth {c.sent}"
    assert within(recv, c.recv, TOLERANCE), f"{c.name} recv: ebpf {recv}, truth {c.recv}"


def connections(run: BackendRun, pid: int) -> dict[tuple[str, str, str], list[int]]:
    """(protocol, local, remote) -> [sent, recv] summed over every sample so far."""
    rows: dict[tuple[str, str, str], list[int]] = {}
    for sample in list(run.samples):
        for c in sample.connections or []:
            if c.pid == pid:
                row = rows.setdefault((c.protocol, c.local, c.remote), [0, 0])
                row[0] += c.sent_bytes
                row[1] += c.recv_bytes
    return rows


# -- real traffic -----------------------------------------------------------------------


def test_tcp_upload(net: Network, run: BackendRun) -> None:
    c = net.client("ebpf-up", "tcp", "v4", up=3_000_000).wait_done()
    settle(run, c)
    check(run, c)


def test_tcp_download(net: Network, run: BackendRun) -> None:
    c = net.client("ebpf-down", "tcp", "v4", down=3_000_000).wait_done()
    settle(run, c)
    check(run, c)


@pytest.mark.parametrize("target", ["v4", "v6", "lo"])
def test_tcp_both_ways(net: Network, run: BackendRun, target: str) -> None:
    c = net.client(f"ebpf-tcp-{target}", "tcp", target, up=1_200_000, down=1_700_000)
    settle(run, c.wait_done())
    check(run, c)


@pytest.mark.parametrize("target", ["v4", "v6", "lo"])
def test_udp_both_ways(net: Network, run: BackendRun, target: str) -> None:
    c = net.client(f"ebpf-udp-{target}", "udp", target, datagrams=300, size=1200, reply=700)
    settle(run, c.wait_done())
    check(run, c)


def test_process_that_exits_keeps_its_bytes_and_name(net: Network, run: BackendRun) -> None:
    c = net.client("ebpf-exits", "tcp", "v4", up=900_000, down=400_000, linger=False).wait_done()
    c.finish()  # gone before the backend's next read
    settle(run)
    check(run, c)
    assert run.names.get(c.pid) == "ebpf-exits"  # the comm captured in the kernel


def test_name_is_the_main_threads(net: Network, run: BackendRun) -> None:
    c = socket_client("thread", "ebpf-main", "127.0.0.1", net.ports["udp-lo"])
    settle(run, c.wait_done())
    check(run, c)
    assert run.names.get(c.pid) == "ebpf-main"


def test_many_short_connections(net: Network, run: BackendRun) -> None:
    c = net.client("ebpf-short", "tcp", "v4", up=2_000, down=3_000, conns=200)
    settle(run, c.wait_done(timeout=120))
    check(run, c)


def test_two_processes_on_one_server_port(net: Network, run: BackendRun) -> None:
    a = net.client("ebpf-pair-a", "tcp", "v4", up=2_500_000, down=100_000)
    b = net.client("ebpf-pair-b", "tcp", "v4", up=50_000, down=2_000_000)
    a.wait_done()
    b.wait_done()
    settle(run, a, b)
    check(run, a)
    check(run, b)


@pytest.mark.parametrize("target", ["v4", "v6"])
def test_tcp_connection_detail(net: Network, run: BackendRun, target: str) -> None:
    c = net.client(f"ebpf-conn-{target}", "tcp", target, up=600_000, down=800_000)
    settle(run, c.wait_done())
    check(run, c)
    port = net.ports[f"tcp{net.address(target)[1]}"]
    local_ip, remote = (
        (net.host_v4, f"{net.ns_v4}:{port}")
        if target == "v4"
        else (f"[{net.host_v6}]", f"[{net.ns_v6}]:{port}")
    )
    rows = connections(run, c.pid)
    assert len(rows) == 1, rows
    (proto, local, remote_seen), (sent, recv) = next(iter(rows.items()))
    assert (proto, remote_seen) == ("tcp", remote)
    local_host, _, local_port = local.rpartition(":")
    assert local_host == local_ip and 1024 <= int(local_port) <= 65535, local
    assert within(sent, c.sent, TOLERANCE) and within(recv, c.recv, TOLERANCE), (sent, recv)


def test_unconnected_udp_socket_has_no_remote(net: Network, run: BackendRun) -> None:
    c = net.client("ebpf-udp-conn", "udp", "v4", datagrams=20, size=500, reply=100)
    settle(run, c.wait_done())
    rows = connections(run, c.pid)
    assert [(proto, remote) for proto, _, remote in rows] == [("udp", "")], rows
    assert next(iter(rows))[1].startswith("0.0.0.0:")


def test_msg_peek_is_not_counted_twice(net: Network, run: BackendRun) -> None:
    c = socket_client("peek", "ebpf-peek", net.ns_v4, net.ports["tcp4"], 2_000_000)
    settle(run, c.wait_done())
    check(run, c)
    assert run.totals(c.pid) == (c.sent, c.recv)  # recvmsg and tcp_rx agree to the byte


SPLICED = 32 * 1024 * 1024


@pytest.mark.parametrize(
    ("mode", "target"),
    [("splice", "v4"), ("splice", "v6"), ("splice", "lo"), ("mix", "v4"), ("splice-half", "v4")],
)
def test_tcp_reads_past_recvmsg_count_exactly_once(
    net: Network, run: BackendRun, mode: str, target: str
) -> None:
    """splice() from a TCP socket (no recvmsg), alone or taking turns with recv, read
    and recvmsg on one socket, read to the peer's FIN (arriving in ESTABLISHED or, after
    our own shutdown, in FIN_WAIT2): every byte once, per process and per connection."""
    address, family = net.address(target)
    c = socket_client(mode, f"ebpf-{mode}-{target}", address, net.ports[f"tcp{family}"], SPLICED)
    settle(run, c.wait_done())
    assert c.recv == SPLICED
    assert run.totals(c.pid) == (c.sent, c.recv)
    rows = connections(run, c.pid)
    assert [(proto, sent, recv) for (proto, _, _), (sent, recv) in rows.items()] == [
        ("tcp", c.sent, c.recv)
    ], rows


def test_mptcp_is_counted_once(net: Network, run: BackendRun) -> None:
    """MPTCP moves its subflow's copied_seq itself; only the MPTCP socket's reads count."""
    enabled = Path("/proc/sys/net/mptcp/enabled")
    require(enabled.exists() and enabled.read_text().strip() == "1", "MPTCP is off")
    c = socket_client("mptcp", "ebpf-mptcp", net.ns_v4, net.ports["tcp4"], 4_000_000)
    settle(run, c.wait_done())
    assert run.totals(c.pid) == (c.sent, c.recv)
    rows = connections(run, c.pid)
    assert [(proto, sent, recv) for (proto, _, _), (sent, recv) in rows.items()] == [
        ("mptcp", c.sent, c.recv)
    ], rows


@pytest.mark.parametrize(
    ("mode", "protocol"), [("icmp", "icmp"), ("raw", "raw"), ("packet", "packet")]
)
def test_other_socket_families(net: Network, run: BackendRun, mode: str, protocol: str) -> None:
    target = net.host_if if mode == "packet" else net.ns_v4
    c = socket_client(mode, f"ebpf-{mode}", target, 50)
    settle(run, c.wait_done())
    check(run, c)
    rows = connections(run, c.pid)
    assert {proto for proto, _, _ in rows} == {protocol}, rows
    if mode != "packet":
        assert {remote for _, _, remote in rows} <= {net.ns_v4, ""}, rows


def test_fast_reads_lose_nothing(net: Network) -> None:
    """Reads every 20 ms during ~50k sends a second: no byte lost or counted twice."""
    require_ebpf()
    with BackendRun(EbpfBackend(), interval_s=0.02) as fast:
        clients = [
            net.client(f"ebpf-fast-{i}", "udp", "lo", datagrams=25_000, size=100, reply=100)
            for i in range(2)
        ]
        for c in clients:
            c.wait_done()
        settle(fast, *clients)
        assert len(fast.samples) > 20
        for c in clients:
            assert fast.totals(c.pid) == (c.sent, c.recv)


# -- probing, loading, failure messages -------------------------------------------------


def test_probe_is_cheap() -> None:
    started = time.monotonic()
    EbpfBackend.probe()
    assert time.monotonic() - started < 2.0  # no compile


def test_probe_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ebpf, "_bcc_missing", lambda: "bcc (python3-bpfcc) is not importable")
    probe = EbpfBackend.probe()
    assert not probe.available and "apt install python3-bpfcc" in probe.fix
    assert "PyPI" in probe.fix

    monkeypatch.setattr(ebpf, "_bcc_missing", lambda: None)
    monkeypatch.setattr(ebpf, "_privileged", lambda: False)
    probe = EbpfBackend.probe()
    assert not probe.available and "cap_bpf,cap_perfmon" in probe.fix

    monkeypatch.setattr(ebpf, "_privileged", lambda: True)
    monkeypatch.setattr(ebpf, "_headers_present", lambda: False)
    probe = EbpfBackend.probe()
    assert not probe.available and "install.sh" in probe.fix

    monkeypatch.setattr(ebpf, "_headers_present", lambda: True)
    monkeypatch.setattr(ebpf, "_tracefs", lambda: None)
    monkeypatch.setattr(ebpf, "_kernel_version", lambda release=None: (5, 4))
    monkeypatch.setattr(ebpf, "_kprobes_available", lambda tracefs: False)
    probe = EbpfBackend.probe()
    assert not probe.available
    assert "neither" in probe.reason and "6.3" in probe.fix
    with pytest.raises(BackendError, match="neither"):
        ebpf._choose_hooks(Path("/nonexistent"))

    monkeypatch.setattr(ebpf, "_kprobes_available", lambda tracefs: True)
    assert EbpfBackend.probe().available
    assert ebpf._choose_hooks(Path("/nonexistent")) == "kprobes"


def test_kernel_version() -> None:
    assert ebpf._kernel_version("6.18.44-fc-v657") == (6, 18)
    assert ebpf._kernel_version("5.4.0-150-generic") == (5, 4)
    assert ebpf._kernel_version("6.3-rc1") == (6, 3)
    assert ebpf._kernel_version("weird") == (0, 0)


@pytest.mark.parametrize("version", [(5, 4), (5, 19)])
def test_kprobe_fallback_compiles_and_verifies(version: tuple[int, int]) -> None:
    """The fallback may not attach here (no kprobes) but must build and pass the verifier."""
    require_ebpf()
    from bcc import BPF

    bpf = BPF(text=ebpf.PROG.read_bytes(), cflags=ebpf._cflags(True, version))
    try:
        for fn in ebpf.KPROBE_FUNCS:
            bpf.load_func(f"enter_{fn}".encode(), BPF.KPROBE)
            bpf.load_func(f"leave_{fn}".encode(), BPF.KPROBE)
    finally:
        bpf.cleanup()


def test_kprobe_fallback_through_the_helper(capfd: pytest.CaptureFixture[str]) -> None:
    """Where kprobes exist the helper attaches the pairs; where not, one line, no output."""
    require_ebpf()
    if ebpf._kprobes_available(ebpf._tracefs()):
        prog = ebpf._compile(use_kprobes=True)
        assert prog.links and not prog.cached  # kprobe programs are never cached
        prog.close()
    else:
        with pytest.raises(BackendError) as info:
            ebpf._compile(use_kprobes=True)
        message = str(info.value)
        assert "\n" not in message, message
        assert message.startswith("bcc could not load the eBPF program: Failed to attach")
    assert capfd.readouterr().err == ""


def test_without_btf_the_program_counts_recvmsg_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kernel BTF: no offsets for tcp_sock, so no splice counting, and still a program
    that compiles and passes the verifier (bcc attaches its tracepoints as it loads)."""
    require_ebpf()
    from bcc import BPF

    assert "-DTCP_READS=1" in ebpf._cflags(False, ebpf._kernel_version())
    monkeypatch.setattr(btf, "VMLINUX", Path("/nonexistent/vmlinux"))
    monkeypatch.setenv("NETTOP_UI_BPF_CACHE", "")  # else the offsets kept for this kernel
    cflags = ebpf._cflags(False, ebpf._kernel_version())
    assert "-DTCP_READS=0" in cflags and not any("COPIED_SEQ" in f for f in cflags)
    bpf = BPF(text=ebpf.PROG.read_bytes(), cflags=cflags)
    try:
        with pytest.raises(KeyError):
            bpf.get_table(b"tcp_rx")
        assert bpf.num_open_tracepoints() == 2  # sock_send_length, sock_recv_length
    finally:
        bpf.cleanup()


def test_compile_error_is_one_line_and_off_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    require_root()
    broken = tmp_path / "broken.c"
    broken.write_bytes(b"int oops(void *ctx) { return undeclared_thing; }\n")
    monkeypatch.setattr(ebpf, "PROG", broken)
    with pytest.raises(BackendError) as info:
        ebpf._compile(use_kprobes=False)
    message = str(info.value)
    assert "\n" not in message
    assert "error:" in message and "undeclared_thing" in message, message
    assert capfd.readouterr().err == ""


async def test_start_read_close() -> None:
    require_ebpf()
    backend = EbpfBackend()
    await backend.start()
    assert backend.hooks in ("tracepoints", "kprobes")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x" * 123, ("127.0.0.1", 9))
    sample = await backend.read(0.1)
    mine = [p for p in sample.processes or [] if p.pid == os.getpid()]
    assert [(p.sent_bytes, p.recv_bytes) for p in mine] == [(123, 0)]
    await backend.close()
    await backend.close()  # twice is fine
    with pytest.raises(BackendError):
        await backend.read(0.1)


def test_endpoint_formatting() -> None:
    v4 = socket.inet_aton("10.1.2.3") + bytes(12)
    v6 = socket.inet_pton(socket.AF_INET6, "fd00::1")
    mapped = socket.inet_pton(socket.AF_INET6, "::ffff:10.1.2.3")
    zero = bytes(16)
    af4, af6 = socket.AF_INET, socket.AF_INET6
    assert ebpf._endpoint(af4, v4, 80, "tcp") == "10.1.2.3:80"
    assert ebpf._endpoint(af6, v6, 443, "tcp") == "[fd00::1]:443"
    assert ebpf._endpoint(af6, mapped, 53, "udp") == "10.1.2.3:53"
    assert ebpf._endpoint(af4, zero, 5353, "udp") == "0.0.0.0:5353"
    assert ebpf._endpoint(af4, zero, 0, "udp") == ""
    assert ebpf._endpoint(af4, v4, 1, "icmp") == "10.1.2.3"
    assert ebpf._endpoint(af6, zero, 58, "icmp") == ""
    assert ebpf._endpoint(17, zero, 0, "packet") == ""
    assert ebpf._protocol(af4, 6) == "tcp"
    assert ebpf._protocol(af6, 58) == "icmp"
    assert ebpf._protocol(af4, 47) == "raw"
    assert ebpf._protocol(17, 0x0300) == "packet"
    assert ebpf._protocol(40, 0) == "vsock"


def test_failure_line() -> None:
    log = (
        "In file included from <built-in>:2:\n"
        "/virtual/main.c:3:9: error: use of undeclared identifier 'x'\n"
        "1 error generated.\n"
    )
    line = bpfload.failure_line(log, Exception("Failed to compile BPF module <text>"))
    assert line == "bcc could not compile the eBPF program: error: use of undeclared identifier 'x'"
    line = bpfload.failure_line("", Exception("Failed to attach BPF program\nmore"))
    assert line == "bcc could not load the eBPF program: Failed to attach BPF program"
