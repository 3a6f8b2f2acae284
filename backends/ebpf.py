"""Exact per-process, per-connection socket payload bytes from the kernel, through bcc.

Hooks. On Linux 6.3+ two tracepoints, `sock:sock_send_length` and
`sock:sock_recv_length`, fire after every sendmsg/recvmsg on a socket (read, write,
send*, recv*, io_uring, and sendfile from 6.5) with the socket, its family and
protocol, and the byte count the call returned. We count that count when it is
positive, for every family except local IPC and kernel interfaces (AF_UNIX,
AF_NETLINK, AF_KEY, AF_ALG): TCP, UDP, ICMP, raw IP, SCTP, AF_PACKET, vsock, ...
MSG_PEEK reads (the data is read again later) and MSG_ERRQUEUE reads (error and
timestamp reports, not payload) are skipped. Older kernels fall back to kprobes and
kretprobes on tcp_sendmsg, tcp_recvmsg, udp_sendmsg, udp_recvmsg and their IPv6 UDP
twins, which see TCP and UDP only. `start` picks the tracepoints whenever they exist.

TCP reads without recvmsg: splice() from a socket (tcp_read_sock). With the
tracepoints, the kernel's BTF (/sys/kernel/btf/vmlinux) and three more tracepoints
(TCP_READ_TRACEPOINTS), the program counts them too, once: every TCP read advances
tcp_sock's copied_seq and then reaches tcp_rcv_space_adjust, so per socket it counts
the advance since what it counted last (the FIN's sequence number excluded), and
recvmsg's returned count only where that did not already (see ebpf_prog.c, tcp_rx;
the copied_seq and rcv_nxt offsets come from backends/btf.py). Limits: a connection
established before the backend started, or whose entry was evicted (more than
CONN_MAX TCP sockets), misses the bytes of its next such read (it has no starting
point yet); two threads reading one TCP socket at once may shift a few bytes between
them; an out-of-band (urgent) byte counts twice. Sockets with an upper-layer protocol
(kernel TLS, MPTCP subflows) move copied_seq for bytes their own recvmsg reports, so
they are counted at recvmsg alone, as before (splice from a kTLS socket is not seen).
From the kernel source, not tested here: TCP zero-copy receive and tcp_read_skb take
the same path and are counted; sockmap/strparser reads, which run in softirq, are
charged to whichever process was interrupted. Without BTF or those tracepoints, and
with kprobes, these reads are not seen. Never seen: AF_PACKET mmap rings.

Aggregation happens in the kernel, in two bounded LRU hashes (so memory cannot grow
without bound; PROC_MAX and CONN_MAX entries with traffic per interval, beyond which
the least recently used entries are evicted and their bytes lost). `procs`, keyed by
tgid, holds sent/recv bytes and the comm taken with bpf_get_current_comm when the
process first moves a byte in an interval, so a process that exits before the next
read is still named (the main thread's comm replaces another thread's once the main
thread shows up). `conns`, keyed by tgid, family, protocol and the local and remote
address and port read from the socket's struct sock_common (a closed TCP socket's local
port from inet_sport, where BTF gives its offset), holds sent/recv bytes per
connection. Nothing goes to user space per event. Every key also carries a
generation: `read` bumps the kernel's generation counter, then reads the entries of
earlier generations. A program that read the old generation just before the bump may
still add to its entry a little later (tracepoint programs run with migration, not
preemption, disabled, so on a busy preemptible kernel one can stall past SETTLE_S),
so the previous generation's entries are reported and kept, and deleted one read
later with whatever arrived since. So no byte is lost or counted
twice unless a program stalls for a whole interval.

Attribution. The hooks run in the task that called sendmsg/recvmsg; kernel users
(NFS, SMB) run in kernel threads with their own pid and are reported like any
process. Every byte therefore has a pid, and `has_unattributed` is False. Pids are
those of the initial pid namespace. Unconnected UDP sockets have no remote address
in the socket; their rows show the local endpoint and an empty remote. ICMP and raw
IP rows show addresses without ports.

Loading. bcc compiles the C half (ebpf_prog.c) against the kernel headers tree at
/lib/modules/$(uname -r)/build, in a short-lived helper process (backends/bpfload.py)
that hands the maps' and attached perf events' file descriptors back and exits, so
bcc and LLVM are never imported or mapped here (probe() only looks for them). The
maps are then read and cleared with the bpf() system call (backends/bpfmap.py), in
batches on Linux 5.6+. The compiled tracepoint program is cached for the next run
(backends/bpfcache.py, keyed on the exact kernel), which then needs no helper. A
failure to load becomes a one-line BackendError.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import ipaddress
import os
import platform
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from backends import bpfcache, bpfload, btf
from backends.bpfmap import BpfMap
from nettop_ui.core import (
    Backend,
    BackendError,
    ConnectionTraffic,
    Coverage,
    Probe,
    ProcessTraffic,
    TrafficSample,
)

PROG = Path(__file__).with_name("ebpf_prog.c")
PROC_MAX = 16384  # processes with traffic in one interval
CONN_MAX = 65536  # connections with traffic in one interval
TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
TRACEPOINTS = ("sock/sock_send_length", "sock/sock_recv_length")
# Where TCP reads that bypass recvmsg (splice) are seen; see ebpf_prog.c, tcp_rx.
TCP_READ_TRACEPOINTS = (
    "tcp/tcp_rcv_space_adjust",
    "sock/inet_sock_set_state",
    "tcp/tcp_destroy_sock",
)
KPROBE_FUNCS = (
    "tcp_sendmsg",
    "tcp_recvmsg",
    "udp_sendmsg",
    "udp_recvmsg",
    "udpv6_sendmsg",
    "udpv6_recvmsg",
)
SETTLE_S = 0.005  # a BPF program runs for microseconds (unless preempted: see _take)
KRETPROBE_MAXACTIVE = 1024  # returns of this many concurrently blocked calls are caught

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
AF_PACKET = 17
IP_PROTOCOLS = {
    1: "icmp",
    6: "tcp",
    17: "udp",
    58: "icmp",  # ICMPv6
    132: "sctp",
    136: "udplite",
    255: "raw",
    262: "mptcp",
}
FAMILIES = {AF_PACKET: "packet", 29: "can", 31: "bluetooth", 40: "vsock", 44: "xdp"}
PORTLESS = ("icmp", "raw")  # shown as bare addresses: their "port" is a protocol or echo id

# The C structs' layouts (ebpf_prog.c), native byte order, no padding.
PROC_KEY = struct.Struct("=II")  # tgid, gen
PROC_VAL = struct.Struct("=QQ16sII")  # sent, recv, comm, leader, pad
CONN_KEY = struct.Struct("=IIHHHH16s16s")  # tgid, gen, family, protocol, lport, rport, ...
CONN_VAL = struct.Struct("=QQ")  # sent, recv
MAPS = ("generation", "procs", "conns")

NO_HOOKS_FIX = "run Linux 6.3+ or a kernel built with CONFIG_KPROBES, or use --backend nethogs"


class EbpfBackend(Backend):
    name = "ebpf"
    platforms = ("linux",)
    layer = "socket payload"
    coverage = Coverage(
        protocols=("tcp", "udp", "icmp", "raw", "sctp", "packet"),
        per_connection=True,
        note=(
            "bytes each send/recv call returned, every socket family but AF_UNIX, AF_NETLINK, "
            "AF_KEY and AF_ALG, and TCP bytes read with splice() (needs kernel BTF); "
            "TCP and UDP only on kernels before 6.3 (kprobes)"
        ),
    )
    accuracy_rank = 10
    has_unattributed = False
    summary = "eBPF (bcc): exact socket payload bytes per process and connection, in the kernel"

    def __init__(self) -> None:
        self.hooks = ""  # "tracepoints" or "kprobes" once started
        self._prog: bpfload.Loaded | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._generation = 0  # the kernel's `generation` counter, which read() bumps
        # Previous generation's entries, reported but not deleted yet: key -> (sent, recv)
        self._reported: dict[bytes, tuple[int, int]] = {}

    @classmethod
    def probe(cls) -> Probe:
        if not sys.platform.startswith("linux"):
            return Probe(False, "eBPF needs Linux", "use --backend auto to pick another backend")
        missing = _bcc_missing()
        if missing:
            return Probe(
                False,
                missing,
                "apt install python3-bpfcc and use a venv made with --system-site-packages "
                "(the PyPI package 'bcc' is unrelated)",
            )
        if not _privileged():
            return Probe(
                False,
                "loading eBPF programs needs root or CAP_BPF+CAP_PERFMON",
                "run with sudo, or give a dedicated copy of the venv's python "
                "cap_bpf,cap_perfmon,cap_dac_read_search+ep (setcap; see docs/security.md)",
            )
        if not _headers_present():
            return Probe(
                False,
                f"no kernel headers at /lib/modules/{platform.release()}/build (bcc needs them)",
                "run ./install.sh, which links the nearest linux-headers tree",
            )
        tracefs = _tracefs()
        if _tracepoints_present(tracefs):
            return Probe(True, "tracepoints sock:sock_send_length and sock:sock_recv_length")
        if tracefs is None and _kernel_version() >= (6, 3):
            return Probe(True, "tracepoints sock:sock_send_length/sock_recv_length (Linux 6.3+)")
        if _kprobes_available(tracefs):
            return Probe(True, "kprobes on tcp/udp sendmsg/recvmsg (kernel before 6.3: TCP, UDP)")
        return Probe(False, _no_hooks_reason(), NO_HOOKS_FIX)

    async def start(self) -> None:
        if self._prog is None:
            await asyncio.to_thread(self._load)  # bcc's compile takes a while

    def _load(self) -> None:
        probe = self.probe()
        if not probe.available:
            raise BackendError(f"{probe.reason} (fix: {probe.fix})")
        hooks = _choose_hooks(_ensure_tracefs())
        prog = _compile(use_kprobes=hooks == "kprobes")
        with self._lock:
            if self._closed:  # close() ran while we compiled
                prog.close()
                return
            self._prog, self.hooks = prog, hooks

    async def read(self, interval_s: float) -> TrafficSample:
        try:
            processes, connections = await asyncio.to_thread(self._drain)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"reading the eBPF maps failed: {exc}") from exc
        return TrafficSample(
            ts=time.time(), interval_s=interval_s, processes=processes, connections=connections
        )

    def _drain(self) -> tuple[list[ProcessTraffic], list[ConnectionTraffic]]:
        with self._lock:  # close() waits for a drain in progress
            if self._prog is None:
                raise BackendError("the ebpf backend is not running")
            return self._drain_maps(self._prog.maps)

    def _drain_maps(
        self, maps: dict[str, BpfMap]
    ) -> tuple[list[ProcessTraffic], list[ConnectionTraffic]]:
        self._generation = (self._generation + 1) % 2**32
        maps["generation"].update(bytes(4), struct.pack("=I", self._generation))
        time.sleep(SETTLE_S)  # most programs that read the old generation are done
        reported: dict[bytes, tuple[int, int]] = {}
        processes = []
        for key, value, sent, recv in self._take(maps["procs"], PROC_VAL, reported):
            comm = PROC_VAL.unpack(value)[2].split(b"\0", 1)[0]
            processes.append(
                ProcessTraffic(
                    PROC_KEY.unpack(key)[0], sent, recv, comm.decode(errors="replace") or None
                )
            )
        merged: dict[tuple[int, str, str, str], list[int]] = {}
        for key, _value, sent, recv in self._take(maps["conns"], CONN_VAL, reported):
            tgid, _gen, family, protocol, lport, rport, laddr, raddr = CONN_KEY.unpack(key)
            proto = _protocol(family, protocol)
            local = _endpoint(family, laddr, lport, proto)
            remote = _endpoint(family, raddr, socket.ntohs(rport), proto)
            row = merged.setdefault((tgid, proto, local, remote), [0, 0])
            row[0] += sent
            row[1] += recv
        connections = [
            ConnectionTraffic(pid, proto, local, remote, sent, recv)
            for (pid, proto, local, remote), (sent, recv) in merged.items()
            if sent or recv
        ]
        self._reported = reported
        return [p for p in processes if p.sent_bytes or p.recv_bytes], connections

    def _take(
        self, table: BpfMap, value: struct.Struct, reported: dict[bytes, tuple[int, int]]
    ) -> list[tuple[bytes, bytes, int, int]]:
        """(key, value, new sent, new recv) for the entries of earlier generations.

        The previous generation's entries stay in the map (their values noted in
        `reported`) for late writers; older ones are deleted, reporting what came since.
        Both keys start with (tgid, gen) and both values with (sent, recv).
        """
        previous = (self._generation - 1) % 2**32
        out, stale = [], []
        for k, v in table.items():
            gen = PROC_KEY.unpack_from(k)[1]
            if gen == self._generation:
                continue
            sent, recv = value.unpack_from(v)[:2]
            sent0, recv0 = self._reported.get(k, (0, 0))
            out.append((k, v, max(sent - sent0, 0), max(recv - recv0, 0)))
            if gen == previous:
                reported[k] = (sent, recv)
            else:
                stale.append(k)
        table.delete_many(stale)  # those evicted meanwhile are skipped
        return out

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            prog, self._prog = self._prog, None
        if prog is not None:
            prog.close(wait=False)  # a quitting TUI exits without waiting for the kernel


# -- probing ----------------------------------------------------------------------------


def _kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a kernel release such as "6.18.44-fc-v657"."""
    match = re.match(r"(\d+)\.(\d+)", release or platform.release())
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _bcc_missing() -> str | None:
    """Why the loader helper could not use bcc, or None; found without importing it.

    Importing bcc would map libbcc and LLVM here for good: only the helper imports it.
    """
    spec = importlib.util.find_spec("bcc")  # the distribution's python3-bpfcc
    if spec is None or not spec.submodule_search_locations:
        return "bcc (python3-bpfcc) is not importable: No module named 'bcc'"
    if not any((Path(d) / "libbcc.py").is_file() for d in spec.submodule_search_locations):
        return "the 'bcc' module found is not BCC (the PyPI package 'bcc' is unrelated)"
    import ctypes.util  # here: on macOS its import needs ctypes.macholib, absent on Debian

    if ctypes.util.find_library("bcc") is None:
        return "bcc (python3-bpfcc) is not importable: libbcc.so.0 is missing"
    return None


def _privileged() -> bool:
    """CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON, in the effective set."""
    try:
        status = Path("/proc/self/status").read_text()
        caps = int(next(x for x in status.splitlines() if x.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        return os.geteuid() == 0
    both = (1 << CAP_BPF) | (1 << CAP_PERFMON)
    return bool(caps & (1 << CAP_SYS_ADMIN)) or caps & both == both


def _headers_present() -> bool:
    build = Path("/lib/modules") / platform.release() / "build"
    return build.is_dir() or Path("/sys/kernel/kheaders.tar.xz").exists()


def _tracefs() -> Path | None:
    return next((d for d in TRACEFS_DIRS if (d / "events").is_dir()), None)


def _tracepoints_present(tracefs: Path | None, names: tuple[str, ...] = TRACEPOINTS) -> bool:
    return tracefs is not None and all((tracefs / "events" / tp).is_dir() for tp in names)


def _kprobes_available(tracefs: Path | None) -> bool:
    if Path("/sys/bus/event_source/devices/kprobe").exists():
        return True
    return tracefs is not None and (tracefs / "kprobe_events").exists()


def _no_hooks_reason() -> str:
    return (
        f"kernel {platform.release()} has neither the sock:sock_send_length/sock_recv_length "
        "tracepoints (Linux 6.3+) nor kprobes"
    )


# -- loading ----------------------------------------------------------------------------


def _ensure_tracefs() -> Path:
    """The mounted tracefs, mounting it on /sys/kernel/tracing if needed.

    `ip netns exec` remounts /sys, which leaves tracefs unmounted inside it.
    """
    found = _tracefs()
    if found is not None:
        return found
    target = TRACEFS_DIRS[0]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"nodev", bytes(target), b"tracefs", 0, None) != 0 and _tracefs() is None:
        err = os.strerror(ctypes.get_errno())
        raise BackendError(
            f"tracefs is not mounted and mounting it failed ({err}) "
            f"(fix: mount -t tracefs nodev {target})"
        )
    return target


def _choose_hooks(tracefs: Path) -> str:
    if _tracepoints_present(tracefs):
        return "tracepoints"
    if _kprobes_available(tracefs):
        return "kprobes"
    raise BackendError(f"{_no_hooks_reason()} (fix: {NO_HOOKS_FIX})")


def _cflags(use_kprobes: bool, version: tuple[int, int]) -> list[str]:
    # recvmsg lost its `noblock` argument in 5.19, moving `flags` from 5th to 4th.
    flags_arg = "PT_REGS_PARM4(ctx)" if version >= (5, 19) else "PT_REGS_PARM5(ctx)"
    read = "bpf_probe_read_kernel" if version >= (5, 5) else "bpf_probe_read"
    offsets = None if use_kprobes else _tcp_offsets()
    return [
        "-w",  # kernel headers are noisy under bcc's clang; errors still show
        f"-DPROC_MAX={PROC_MAX}",
        f"-DCONN_MAX={CONN_MAX}",
        f"-DUSE_KPROBES={int(use_kprobes)}",
        f"-DRECV_FLAGS(ctx)={flags_arg}",
        f"-DREAD_KERNEL={read}",
        f"-DTCP_READS={int(offsets is not None)}",
        *(f"-DTCP_{name.upper()}={at}" for name, at in (offsets or {}).items()),
    ]


def _tcp_offsets() -> dict[str, int] | None:
    """Offsets in struct tcp_sock the program reads, when splice() reads can be counted.

    That needs the tracepoints in TCP_READ_TRACEPOINTS and the kernel's BTF; without
    them the program counts what recvmsg returns only (see ebpf_prog.c, tcp_rx).
    tcp_sock begins with its inet_connection_sock, which begins with its inet_sock, so
    their offsets are tcp_sock's. Parsing the BTF takes 0.2 s of CPU, so the offsets
    are kept in backends/bpfcache.py's cache, for this exact kernel.
    """
    if not _tracepoints_present(_tracefs(), TCP_READ_TRACEPOINTS):
        return None
    return bpfcache.kernel_facts("tcp offsets", _tcp_offsets_from_btf)


def _tcp_offsets_from_btf() -> dict[str, int] | None:
    try:
        kernel = btf.Btf.load()
        return {
            **kernel.offsets("tcp_sock", ("copied_seq", "rcv_nxt")),
            **kernel.offsets("inet_connection_sock", ("icsk_ulp_ops",)),
            **kernel.offsets("inet_sock", ("inet_sport",)),
        }
    except btf.BtfError:
        return None


def _compile(use_kprobes: bool) -> bpfload.Loaded:
    """Compile, load and attach the program; BackendError with one line when that fails."""
    kprobes = [
        bpfload.Kprobe(
            fn,
            f"{side}_{fn}",
            ret=ret,
            maxactive=KRETPROBE_MAXACTIVE * ret,
            optional=fn.startswith("udpv6"),
        )  # IPv6 may be a module not loaded
        for fn in (KPROBE_FUNCS if use_kprobes else ())
        for side, ret in (("leave", True), ("enter", False))
    ]
    return bpfload.load(PROG, _cflags(use_kprobes, _kernel_version()), MAPS, kprobes)


# -- formatting -------------------------------------------------------------------------


def _protocol(family: int, protocol: int) -> str:
    if family in (socket.AF_INET, socket.AF_INET6):
        return IP_PROTOCOLS.get(protocol, "raw")
    return FAMILIES.get(family, f"af{family}")


def _endpoint(family: int, addr: bytes, port: int, protocol: str) -> str:
    """ "1.2.3.4:80", "[fd00::1]:80", "fd00::1" for ICMP and raw IP; "" when unknown."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return ""
    ip = ipaddress.ip_address(addr[:4] if family == socket.AF_INET else addr[:16])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if protocol in PORTLESS:
        return str(ip) if any(ip.packed) else ""
    if port == 0 and not any(ip.packed):
        return ""
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
