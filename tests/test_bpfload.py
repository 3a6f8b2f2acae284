"""backends/bpfload.py, bpfmap.py and bpfcache.py against the real kernel.

A program loaded by the helper keeps counting after the helper has exited; every map
operation, batched and one element at a time, reads back what was written; a cached
program loads without the helper and counts the same, and a cache entry for another
kernel or writable by others is not used, nor are the BTF offsets the ebpf program is
compiled with (cached too); nettop-ui itself never imports bcc nor maps
libbcc or LLVM.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from backends import bpfload, bpfmap, btf, ebpf
from nettop_ui.core import BackendError
from tests.test_ebpf import require_ebpf
from tests.test_json_e2e import Stream

pytestmark = pytest.mark.root
PROG = Path(__file__).with_name("bpfload_prog.c")
SEND = (
    "import os, socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "[s.sendto(b'x' * n, ('127.0.0.1', 9)) for n in (1500, 2500)]; print(os.getpid())"
)


@pytest.fixture(scope="module")
def loaded() -> Iterator[bpfload.Loaded]:
    require_ebpf()
    prog = bpfload.load(PROG, ["-w"], ["target", "sent", "hash", "lru"])
    yield prog
    prog.close()


def test_program_counts_after_the_helper_is_gone(loaded: bpfload.Loaded) -> None:
    helpers = [c for c in psutil.Process().children(recursive=True) if bpfload.BOOT in c.cmdline()]
    assert helpers == []
    assert loaded.links, "no attached perf event came over"
    fds = loaded.links + [m.fd for m in loaded.maps.values()]
    assert not any(os.get_inheritable(fd) for fd in fds)  # a child (run CMD) never gets them
    me = struct.pack("=I", os.getpid())
    loaded.maps["target"].update(struct.pack("=I", 0), me)
    assert loaded.maps["target"].lookup(struct.pack("=I", 0)) == me
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sent = s.sendto(b"a" * 1000, ("127.0.0.1", 9)) + s.sendto(b"b" * 234, ("127.0.0.1", 9))
    assert loaded.maps["sent"].lookup(me) == struct.pack("=Q", sent)


def test_a_helper_that_dies_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    require_ebpf()
    monkeypatch.setenv("NETTOP_UI_BPF_CACHE", "")  # no cache: the helper must run
    monkeypatch.setattr(bpfload, "BOOT", "import sys; sys.exit('the helper broke')")
    with pytest.raises(BackendError) as info:
        bpfload.load(PROG, ["-w"], ["target"])
    assert str(info.value) == "the eBPF loader helper failed: the helper broke"


def counts_exactly(prog: bpfload.Loaded) -> None:
    """The program (bpfload_prog.c) adds up exactly what this process sends."""
    me = struct.pack("=I", os.getpid())
    prog.maps["target"].update(struct.pack("=I", 0), me)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sent = s.sendto(b"c" * 777, ("127.0.0.1", 9))
    assert prog.maps["sent"].lookup(me) == struct.pack("=Q", sent)


def load_test_prog() -> bpfload.Loaded:
    return bpfload.load(PROG, ["-w"], ["target", "sent"])


def test_cached_program_loads_without_the_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_ebpf()
    cache = tmp_path / "cache"
    monkeypatch.setenv("NETTOP_UI_BPF_CACHE", str(cache))
    first = load_test_prog()
    try:
        assert not first.cached
        (entry,) = cache.iterdir()
        assert entry.stat().st_mode & 0o777 == 0o600 and cache.stat().st_mode & 0o777 == 0o700

        def no_helper(*args: object, **kwargs: object) -> None:
            raise AssertionError("the helper was started on a cache hit")

        monkeypatch.setattr(subprocess, "Popen", no_helper)
        second = load_test_prog()
        try:
            assert second.cached
            counts_exactly(second)
        finally:
            second.close()
    finally:
        first.close()


def test_cache_entry_for_another_kernel_or_writable_by_others_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_ebpf()
    monkeypatch.setenv("NETTOP_UI_BPF_CACHE", str(tmp_path))
    load_test_prog().close()
    (entry,) = tmp_path.iterdir()

    entry.chmod(0o666)  # anyone could have put a program of theirs there
    again = load_test_prog()
    assert not again.cached  # compiled afresh, and the entry rewritten as ours
    again.close()
    assert entry.stat().st_mode & 0o777 == 0o600

    text = entry.read_text()
    entry.write_text(text.replace('"format": "', '"format": "0'))  # a tracepoint changed
    again = load_test_prog()
    assert not again.cached
    again.close()

    # An entry the kernel's verifier refuses (a bare `exit`, r0 unset): compiled afresh,
    # no descriptor left behind; and one that is not an entry at all.
    first = text.index('"insns": "') + len('"insns": "')
    refused = text[:first] + "95" + "0" * 14 + text[first + 16 :]  # its first insn: exit
    truncated = text[:first] + text[first + 16 :]  # every relocation one insn off, the last out
    for broken in (refused, truncated, "[]", '{"version": 1}'):
        entry.write_text(broken)
        fds_before = set(os.listdir("/proc/self/fd"))
        again = load_test_prog()
        assert not again.cached
        again.close()
        assert set(os.listdir("/proc/self/fd")) <= fds_before

    monkeypatch.setattr("platform.release", lambda: "0.0.0-another-kernel")
    again = load_test_prog()
    assert not again.cached
    counts_exactly(again)
    again.close()
    assert len(list(tmp_path.iterdir())) == 2  # one entry per kernel


def test_btf_offsets_are_kept_for_this_kernel_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ebpf program's tcp_sock offsets, from the kernel's BTF (0.2 s of CPU on
    every start), are parsed once per kernel: a later start reads them from the cache;
    an entry others may write, one that is not offsets, or another kernel parses again."""
    require_ebpf()
    monkeypatch.setenv("NETTOP_UI_BPF_CACHE", str(tmp_path))
    parsed: list[Path | None] = []
    parse = btf.Btf.load

    def counted(path: Path | None = None) -> btf.Btf:
        parsed.append(path)
        return parse(path)

    monkeypatch.setattr(btf.Btf, "load", counted)
    offsets = ebpf._tcp_offsets()
    assert offsets is not None and offsets["copied_seq"] > 0 and len(parsed) == 1
    assert ebpf._tcp_offsets() == offsets and len(parsed) == 1  # from the cache
    (entry,) = tmp_path.iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600
    for spoil in (lambda: entry.chmod(0o666), lambda: entry.write_text('{"copied_seq": "8"}')):
        spoil()
        assert ebpf._tcp_offsets() == offsets  # parsed again, and the entry rewritten
    assert len(parsed) == 3 and entry.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr("platform.release", lambda: "0.0.0-another-kernel")
    assert ebpf._tcp_offsets() == offsets and len(parsed) == 4
    assert len(list(tmp_path.iterdir())) == 2  # one entry per kernel


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("name", ["hash", "lru"])
def test_map_operations(
    loaded: bpfload.Loaded, name: str, batch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bpfmap, "BATCH", 64)  # several batch calls per read
    m = loaded.maps[name]
    m.batch = batch
    fmt = "=I" if m.key_size == 4 else "=Q"

    def key(i: int) -> bytes:
        return struct.pack(fmt, i)

    entries = {key(i): struct.pack("=Q", i * 7) for i in range(1000)}
    for k, v in entries.items():
        m.update(k, v)
    assert dict(m.items()) == entries
    assert m.batch is batch  # this kernel (6.x) has the batch commands: no silent fallback
    assert m.lookup(key(5)) == struct.pack("=Q", 35)
    assert m.lookup(key(5000)) is None
    assert set(m.keys()) == set(entries)
    assert m.delete(key(10)) and not m.delete(key(10))
    gone = [key(i) for i in range(0, 1000, 2)]  # key(10) among them, already deleted
    assert m.delete_many(gone) == len(gone) - 1
    rest = {k: v for k, v in entries.items() if k not in gone}
    assert dict(m.items(delete=True)) == rest
    assert m.items() == []


def test_probe_does_not_import_bcc() -> None:
    code = (
        "import sys; from backends.ebpf import EbpfBackend; p = EbpfBackend.probe(); "
        "print(p.available, 'bcc' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"], out


@pytest.mark.parametrize("bcc", ["absent", "unrelated"])
def test_cli_without_bcc_says_so_in_one_line(tmp_path: Path, bcc: str) -> None:
    """Found without importing it: a Python that cannot see bcc, or sees PyPI's unrelated
    `bcc`, gets one line and exit 2 (site-packages of the venv only, no dist-packages)."""
    root = Path(__file__).resolve().parent.parent
    site = next((root / ".venv" / "lib").glob("python3*/site-packages"))
    path = [str(root), str(site)]
    if bcc == "unrelated":
        (tmp_path / "bcc").mkdir()
        (tmp_path / "bcc" / "__init__.py").write_text("VERSION = '0.0.1'\n")
        path.insert(0, str(tmp_path))
    res = subprocess.run(
        [sys.executable, "-S", "-m", "nettop_ui", "--json", "--backend", "ebpf", "--count", "1"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and res.stdout == "", res
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("nettop-ui: error: "), res.stderr
    expected = "is not importable" if bcc == "absent" else "is not BCC (the PyPI package"
    assert expected in res.stderr, res.stderr


def test_cli_has_no_bcc_or_llvm_mapped_and_counts_exactly() -> None:
    """`--json --backend ebpf` after start: no libbcc, LLVM or clang in its /proc/PID/maps,
    and the program the helper loaded counts a client's bytes exactly."""
    require_ebpf()
    stream = Stream("--backend", "ebpf", "--interval", "0.3")
    try:
        stream.wait_samples(1)
        mapped = Path(f"/proc/{stream.proc.pid}/maps").read_text()
        client = subprocess.run([sys.executable, "-c", SEND], capture_output=True, text=True)
        pid = int(client.stdout)
        stream.wait_samples(3)
    finally:
        stream.stop()
    assert "python" in mapped  # it is the real process's map
    paths = {line.split(maxsplit=5)[5] for line in mapped.splitlines() if len(line.split()) > 5}
    found = sorted(p for p in paths if re.search(r"bcc|LLVM|clang", p))  # not in the addresses
    assert found == [], found
    rows = [p for s in stream.samples() for p in s["processes"] if p["pid"] == pid]
    assert rows and rows[-1]["sent_bytes"] == 1500 + 2500, rows
