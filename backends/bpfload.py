"""Compile and load an eBPF program in a short-lived helper, so bcc and LLVM never stay mapped.

`load(source, cflags, maps, kprobes)` starts this module as a helper process with the
same interpreter (which sees the distribution's bcc), isolated (`-I`: no current
directory, PYTHON* variables or user site on its path). The helper compiles `source`
with bcc and `cflags`, which attaches every `TRACEPOINT_PROBE` (and `kprobe__` /
`kretprobe__` function) on its own, attaches the requested `Kprobe`s, and sends back
over a Unix socket pair, with SCM_RIGHTS, the file descriptors of the named maps and of
every attached perf event, with each map's key size, value size and entries. Then it
exits without bcc's cleanup (which would disable the perf events we now hold). The
caller keeps the program running as long as it holds those descriptors; `Loaded.close`
detaches it. bcc's compiler output goes to a temporary file; a failure comes back as
one line (`BackendError`). A program attached to tracepoints only is cached
(backends/bpfcache.py): later runs load it from there without the helper.

Kprobes that bcc had to create through tracefs (kretprobes with maxactive, kernels
without the kprobe PMU) outlive the helper as kprobe_events entries; the helper names
them and `Loaded.close` removes them.
"""

from __future__ import annotations

import array
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from backends import bpfcache
from backends.bpfmap import BpfMap
from nettop_ui.core import BackendError

ROOT = Path(__file__).resolve().parents[1]  # holds the `backends` package
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from backends.bpfload import main; main()"
TIMEOUT_S = 120.0  # compiling takes about a second; a helper silent this long is stuck
MAX_FDS = 253  # SCM_RIGHTS' limit per message
TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


@dataclass(frozen=True)
class Kprobe:
    """A kprobe (or kretprobe) to attach `fn` to the kernel function `event`."""

    event: str
    fn: str
    ret: bool = False
    maxactive: int = 0  # kretprobe: concurrently blocked calls caught (kernels 4.12+)
    optional: bool = False  # a function the kernel may lack (a module not loaded)


@dataclass
class Loaded:
    """A loaded, attached program, held by its maps' and perf events' descriptors."""

    maps: dict[str, BpfMap]
    links: list[int]  # attached perf event (or link) fds: closing them detaches
    tracefs_events: list[str] = field(default_factory=list)  # "kprobes/<name>" to remove
    cached: bool = False  # loaded from backends/bpfcache.py's cache, not compiled

    def close(self, wait: bool = True) -> None:
        """Detach and free the program (idempotent). Without `wait` the detaching, which
        costs the kernel ~75 ms per attached event, finishes in the background."""
        links, self.links = self.links, []
        release = _detach_in_background(links) if links and not wait else None
        for fd in links:
            os.close(fd)
        if release is not None:
            os.close(release)  # our copies are closed: the grandchild's are the last
        for m in self.maps.values():
            m.close()
        events, self.tracefs_events = self.tracefs_events, []
        for event in events:
            _remove_tracefs_event(event)


def _detach_in_background(links: list[int]) -> int | None:
    """Let an orphaned grandchild hold the last references to `links`, so that our own
    close (or our exit) is quick and the kernel detaches when it closes them: each
    detach waits for an RCU grace period (5 tracepoints: ~0.4 s), which a quitting
    top should not make the user wait for. The grandchild keeps no other descriptor
    (a pipe's reader waiting for EOF, a port, the terminal are not held up) and closes
    its copies only once ours are closed: close the returned descriptor after them.
    None when no process could be made (then our close detaches, slowly)."""
    try:
        ours_closed, closing = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(ours_closed)
        os.close(closing)
        return None
    if pid == 0:
        try:
            if os.fork() == 0:
                keep = sorted([*links, ours_closed])
                for low, high in itertools.pairwise([-1, *keep, os.sysconf("SC_OPEN_MAX")]):
                    os.closerange(low + 1, high)  # all but `keep`
                os.read(ours_closed, 1)  # end of file: the caller closed `closing`
                for fd in links:
                    os.close(fd)
        finally:
            os._exit(0)
    os.close(ours_closed)
    os.waitpid(pid, 0)
    return closing


def load(
    source: Path, cflags: Sequence[str], maps: Sequence[str], kprobes: Sequence[Kprobe] = ()
) -> Loaded:
    """Compile, load and attach `source` in a helper, or load it from the cache;
    BackendError with one line on failure."""
    name = None if kprobes else bpfcache.key(source.read_bytes(), cflags)
    entry = bpfcache.lookup(name) if name else None
    if entry is not None:
        with contextlib.suppress(OSError):  # compiled afresh below
            found, links = bpfcache.load(entry, maps)
            return Loaded(found, links, cached=True)
    request = {
        "source": str(source),
        "cflags": list(cflags),
        "maps": list(maps),
        "kprobes": [asdict(k) for k in kprobes],
        "cache": name is not None,
    }
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, tempfile.TemporaryFile() as errors:
        with theirs:
            child = subprocess.Popen(
                [sys.executable, "-I", "-c", BOOT, str(ROOT), str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(theirs.fileno(),),
            )
        try:
            ours.sendall(json.dumps(request).encode())
            ours.settimeout(TIMEOUT_S)
            data, fds = _recv_fds(ours)
        except OSError as exc:  # it died (reset), or is stuck (timeout)
            child.kill()
            data, fds, problem = b"", [], str(exc)
        else:
            problem = "no reply"
        finally:
            child.wait()
        if not data:
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
            raise BackendError(f"the eBPF loader helper failed: {lines[-1] if lines else problem}")
    reply = json.loads(data)
    if "error" in reply:
        for fd in fds:
            os.close(fd)
        raise BackendError(reply["error"])
    if name and reply.get("cache_entry"):
        bpfcache.store(name, reply["cache_entry"])
    it = iter(fds)
    loaded = Loaded(
        maps={
            m["name"]: BpfMap(next(it), m["key_size"], m["value_size"], m["max_entries"])
            for m in reply["maps"]
        },
        links=list(it),
        tracefs_events=reply["tracefs_events"],
    )
    return loaded


def _recv_fds(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carries, close-on-exec from the start, so a
    child nettop-ui starts (`run CMD`) never inherits them. (socket.recv_fds ignores
    its flags argument in Python 3.11.)"""
    fds = array.array("i")
    space = socket.CMSG_LEN(MAX_FDS * fds.itemsize)
    data, ancillary, _flags, _addr = sock.recvmsg(1 << 20, space, socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancillary:
        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def _remove_tracefs_event(event: str) -> None:
    for d in TRACEFS_DIRS:
        with contextlib.suppress(OSError):
            (d / "kprobe_events").write_text(f"-:{event}\n")
            return


# -- the helper -------------------------------------------------------------------------


def main() -> None:
    """The helper: one request in, one reply (with descriptors) out, then exit at once."""
    sock = socket.socket(fileno=int(sys.argv[2]))
    request = json.loads(sock.recv(1 << 20))
    try:
        reply, fds = _compile_and_attach(request)
    except _Failure as exc:
        reply, fds = {"error": str(exc)}, []
    except Exception as exc:  # bcc's exceptions are plain Exception
        reply, fds = {"error": failure_line("", exc)}, []
    message = json.dumps(reply).encode()
    if fds:
        socket.send_fds(sock, [message], fds)
    else:
        sock.sendall(message)
    os._exit(0)  # no atexit: bcc's cleanup would disable the perf events handed over


class _Failure(Exception):
    """A failure already put in one line."""


def _compile_and_attach(request: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    import ctypes

    from bcc import BPF

    with tempfile.TemporaryFile() as log:
        try:
            with _stderr_to(log):
                bpf = BPF(text=Path(request["source"]).read_bytes(), cflags=request["cflags"])
                for k in request["kprobes"]:
                    try:
                        _attach(bpf, Kprobe(**k))
                    except Exception:
                        if not k["optional"]:
                            raise
        except Exception as exc:
            log.seek(0)
            raise _Failure(failure_line(log.read().decode(errors="replace"), exc)) from None
    maps, fds = [], []
    for name in request["maps"]:
        table = bpf[name.encode()]
        maps.append(
            {
                "name": name,
                "key_size": ctypes.sizeof(table.Key),
                "value_size": ctypes.sizeof(table.Leaf),
                "max_entries": int(table.max_entries),
            }
        )
        fds.append(table.map_fd)
    fds += list(bpf.tracepoint_fds.values()) + list(bpf.raw_tracepoint_fds.values())
    fds += [fd for by_fn in bpf.kprobe_fds.values() for fd in by_fn.values()]
    reply = {"maps": maps, "tracefs_events": _own_tracefs_events()}
    if request["cache"] and not (bpf.raw_tracepoint_fds or bpf.kprobe_fds):
        with contextlib.suppress(Exception):  # not cached then; the load stands
            reply["cache_entry"] = _cache_entry(bpf)
    return reply, fds


def _cache_entry(bpf: Any) -> dict[str, Any]:
    """backends/bpfcache.py's entry for the tracepoint programs bcc loaded and attached."""
    import ctypes

    from bcc import BPF
    from bcc.libbcc import lib

    progs = []
    for tp in bpf.tracepoint_fds:
        fn = b"tracepoint__" + tp.replace(b":", b"__")
        start, size = lib.bpf_function_start(bpf.module, fn), lib.bpf_function_size(bpf.module, fn)
        license_ = lib.bpf_module_license(bpf.module)
        kern_version = lib.bpf_module_kern_version(bpf.module)
        insns = ctypes.string_at(start, size)
        progs.append((tp.decode(), BPF.TRACEPOINT, insns, license_, kern_version))
    return bpfcache.entry_of(progs)


def _attach(bpf: Any, k: Kprobe) -> None:
    event, fn = k.event.encode(), k.fn.encode()
    if not k.ret:
        bpf.attach_kprobe(event=event, fn_name=fn)
        return
    try:
        bpf.attach_kretprobe(event=event, fn_name=fn, maxactive=k.maxactive)
    except Exception:  # kernels before 4.12 take no maxactive
        if not k.maxactive:
            raise
        bpf.attach_kretprobe(event=event, fn_name=fn)


def _own_tracefs_events() -> list[str]:
    """The kprobe_events entries bcc created for this process ("kprobes/<name>")."""
    suffix = f"_bcc_{os.getpid()}"
    for d in TRACEFS_DIRS:
        with contextlib.suppress(OSError):
            lines = (d / "kprobe_events").read_text().splitlines()
            names = [line.split()[0].partition(":")[2] for line in lines if line.strip()]
            return [n for n in names if n.endswith(suffix)]
    return []


@contextlib.contextmanager
def _stderr_to(log: IO[bytes]) -> Iterator[None]:
    """Point file descriptor 2 at `log` for the duration: bcc's compiler writes there."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def failure_line(log: str, exc: BaseException) -> str:
    """One line for the user out of bcc's exception and compiler output."""
    what = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    error = next((line[line.index("error:") :] for line in lines if "error:" in line), None)
    if what.startswith("Failed to compile"):
        detail = error or (lines[0] if lines else "no compiler output")
        return f"bcc could not compile the eBPF program: {detail}"
    return f"bcc could not load the eBPF program: {what}"


if __name__ == "__main__":
    main()
