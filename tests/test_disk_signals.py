"""denet's disk signals against a real process: a file read twice (the second time from
the page cache), a known write, and an anonymous mapping touched page by page; through
the collector and through `nettop-ui --json --all`."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nettop_ui.collector import Collector, ProcessState, _psutil_faults, _psutil_io
from tests.netenv import require
from tests.test_collector import find, sample
from tests.test_json_e2e import Stream

MB = 1024 * 1024
FILE_BYTES = 50 * MB
WRITE_BYTES = 20 * MB
PAGES = 8192  # 32 MiB of 4 KiB pages
# What the worker reads and writes besides the measured bytes: its command and reply.
SLACK_BYTES = 4096
# Faults besides the touched pages: the interpreter's own, within the loop.
SLACK_FAULTS = 200
# What a read from the page cache may still fetch from the disk: pages the kernel dropped
# between the two reads (a CI run once saw 1.2 MiB of the 50 come back from the disk).
# A tenth is far from the whole file that a count of syscall bytes would show.
CACHE_MISS_BYTES = FILE_BYTES // 10

# One command a line on stdin, "ok" on stdout after each; raw os.read/os.write only, so
# every byte through a syscall is one the test asked for or one of these short lines.
WORKER = r"""
import mmap, os
PAGE = mmap.PAGESIZE
kept = []
os.write(1, b"ok\n")
while cmd := os.read(0, 256).split():
    if cmd[0] == b"read":
        fd = os.open(cmd[1], os.O_RDONLY)
        while os.read(fd, 1 << 20):
            pass
        os.close(fd)
    elif cmd[0] == b"write":
        fd = os.open(cmd[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        left, chunk = int(cmd[2]), bytes(1 << 20)
        while left:
            left -= os.write(fd, chunk[: min(left, len(chunk))])
        os.close(fd)
    elif cmd[0] == b"touch":
        size = int(cmd[1]) * PAGE
        region = mmap.mmap(-1, size)
        region.madvise(mmap.MADV_NOHUGEPAGE)  # one fault per page, not per 2 MiB
        for at in range(0, size, PAGE):
            region[at] = 1
        kept.append(region)
    os.write(1, b"ok\n")
"""


class Worker:
    """The worker process, driven one command at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._wait()

    def _wait(self) -> None:
        assert self.proc.stdout is not None
        assert os.read(self.proc.stdout.fileno(), 16) == b"ok\n"

    def do(self, *words: object) -> None:
        assert self.proc.stdin is not None
        os.write(self.proc.stdin.fileno(), " ".join(map(str, words)).encode() + b"\n")
        self._wait()


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.proc.kill()
    w.proc.wait()


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """FILE_BYTES on disk and out of the page cache: the first read must fetch them."""
    path = tmp_path / "big.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(FILE_BYTES // MB):
            os.write(fd, os.urandom(MB))
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path


def grew(after: Any, before: Any, key: str) -> int:
    """How much figure `key` grew from one reading (a ProcessState or a record) to the next."""
    a, b = (
        (after[key], before[key])
        if isinstance(after, dict)
        else (
            getattr(after, key),
            getattr(before, key),
        )
    )
    assert a is not None and b is not None, key
    return int(a - b)


def test_collector_counts_syscall_bytes_cache_hits_and_page_faults(
    worker: Worker, big_file: Path, tmp_path: Path
) -> None:
    collector = Collector(gpu=False, system=False, count_connections=False)

    def reading() -> ProcessState:
        (state,) = find(collector.ingest(sample(0.1)), worker.proc.pid)
        return copy.copy(state)  # the collector goes on changing its own

    start = reading()
    worker.do("read", big_file)
    first = reading()
    worker.do("read", big_file)
    second = reading()
    worker.do("write", tmp_path / "out.bin", WRITE_BYTES)
    written = reading()
    worker.do("touch", PAGES)
    touched = reading()

    # Every byte read() returned counts, from the disk or from the cache.
    assert FILE_BYTES <= grew(first, start, "syscall_read_bytes") <= FILE_BYTES + SLACK_BYTES
    assert FILE_BYTES <= grew(second, first, "syscall_read_bytes") <= FILE_BYTES + SLACK_BYTES
    # The block layer fetched the file once: the second read came from the page cache.
    assert grew(first, start, "read_bytes") >= FILE_BYTES * 0.9
    assert grew(second, first, "read_bytes") <= CACHE_MISS_BYTES
    assert WRITE_BYTES <= grew(written, second, "syscall_write_bytes") <= WRITE_BYTES + SLACK_BYTES
    assert grew(written, second, "syscall_read_bytes") <= SLACK_BYTES
    # One minor fault per page of new anonymous memory, none waiting for the disk.
    assert PAGES <= grew(touched, written, "page_faults_cached") <= PAGES + SLACK_FAULTS
    assert grew(touched, written, "page_faults_disk") == 0
    collector.close()


def test_json_stream_carries_the_disk_signals(worker: Worker, big_file: Path) -> None:
    stream = Stream("--all", "--backend", "psutil", "--interval", "0.2")
    pid = worker.proc.pid

    def record() -> dict[str, Any]:
        stream.wait_samples(2)  # one begun after the command finished
        found: list[dict[str, Any]] = stream.samples()[-1]["processes"]
        (rec,) = [p for p in found if p["pid"] == pid]
        return rec

    try:
        start = record()
        worker.do("read", big_file)
        worker.do("read", big_file)
        read = record()
        worker.do("touch", PAGES)
        touched = record()
    finally:  # not Stream.stop: its communicate() would read the pipe beside the reader
        stream.proc.send_signal(signal.SIGINT)
        stream.proc.wait(timeout=30)
    assert 2 * FILE_BYTES <= grew(read, start, "syscall_read_bytes") <= 2 * FILE_BYTES + SLACK_BYTES
    # The first read from the disk, the second from the page cache.
    assert FILE_BYTES * 0.9 <= grew(read, start, "read_bytes") <= FILE_BYTES + CACHE_MISS_BYTES
    assert PAGES <= grew(touched, read, "page_faults_cached") <= PAGES + SLACK_FAULTS
    assert touched["page_faults_disk"] is not None and touched["syscall_write_bytes"] is not None


# A command for `run`: reads the file, writes WRITE_BYTES, touches PAGES pages.
RUN_CMD = r"""
import mmap, os, sys, time
time.sleep(0.3)  # denet counts from its first sample: let it take one before the work
buf = bytearray(1 << 20)  # one buffer for both: no new memory (page faults) per call
fd = os.open(sys.argv[1], os.O_RDONLY)
while os.readv(fd, [buf]):
    pass
os.close(fd)
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
for _ in range(int(sys.argv[3]) // len(buf)):
    os.write(fd, buf)
os.close(fd)
size = int(sys.argv[4]) * mmap.PAGESIZE
region = mmap.mmap(-1, size)
region.madvise(mmap.MADV_NOHUGEPAGE)
for at in range(0, size, mmap.PAGESIZE):
    region[at] = 1
time.sleep(0.3)  # and one after it
"""
# What the command's interpreter reads, writes and faults on its own (python -I -S).
STARTUP_BYTES = 4 * MB
STARTUP_FAULTS = 4096


def _command(tmp_path: Path, big_file: Path) -> list[str]:
    cmd = [sys.executable, "-I", "-S", "-c", RUN_CMD, str(big_file), str(tmp_path / "w.bin")]
    return [*cmd, str(WRITE_BYTES), str(PAGES)]


def _run(tmp_path: Path, big_file: Path, *options: str) -> Path:
    out = tmp_path / "run.jsonl"
    cmd = _command(tmp_path, big_file)
    res = subprocess.run(
        [sys.executable, "-m", "nettop_ui", "run", "--backend", "psutil", "--interval", "0.2",
         "--output", str(out), *options, "--", *cmd],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


def _check_totals(totals: dict[str, Any], names: dict[str, str]) -> None:
    """The tree's totals of one run of RUN_CMD, under `names` (ours -> theirs)."""
    read, write = totals[names["syscall_read_bytes"]], totals[names["syscall_write_bytes"]]
    assert FILE_BYTES <= read <= FILE_BYTES + STARTUP_BYTES
    assert WRITE_BYTES <= write <= WRITE_BYTES + STARTUP_BYTES
    assert PAGES <= totals[names["page_faults_cached"]] <= PAGES + STARTUP_FAULTS
    assert totals[names["page_faults_disk"]] is not None


SIGNALS = ("syscall_read_bytes", "syscall_write_bytes", "page_faults_cached", "page_faults_disk")


def test_run_summary_reports_the_tree_totals(big_file: Path, tmp_path: Path) -> None:
    out = _run(tmp_path, big_file)
    res = subprocess.run(
        [sys.executable, "-m", "nettop_ui", "summary", "--json", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    _check_totals(summary, {k: k for k in SIGNALS})
    text = subprocess.run(
        [sys.executable, "-m", "nettop_ui", "summary", str(out)],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert f"{summary['page_faults_cached']} cached (minor)" in text


def test_denet_format_writes_them_where_denet_does(big_file: Path, tmp_path: Path) -> None:
    """Ours, and denet's own recording of the same command: same keys, same figures."""
    try:
        import denet  # a dev dependency
    except ImportError:
        denet = None
    require(denet is not None, "needs denet (pip install 'denet[report]')")
    out = _run(tmp_path, big_file, "--format", "denet")
    ours = [r for r in map(json.loads, out.read_text().splitlines()) if r["kind"] == "tree"]
    _check_totals(ours[-1]["aggregated"], {k: k for k in SIGNALS})
    assert all(k in ours[-1]["parent"] for k in SIGNALS)

    theirs_path = tmp_path / "denet.jsonl"
    rc, _ = denet.execute_with_monitoring(
        [*_command(tmp_path, big_file)], base_interval_ms=100, max_interval_ms=100,
        quiet=True, output_file=str(theirs_path),
    )  # fmt: skip
    assert rc == 0
    theirs = [json.loads(line)["aggregated"] for line in theirs_path.read_text().splitlines()]
    # Cumulative, but denet's very last line, once the command has gone, holds zeros.
    _check_totals({k: max(t[k] for t in theirs) for k in SIGNALS}, {k: k for k in SIGNALS})


def test_psutil_path_fills_what_psutil_gives_and_leaves_the_rest_unknown() -> None:
    """Off Linux the collector reads psutil: macOS's memory_info has every fault and the
    page-ins; FreeBSD's io_counters has no read_chars. Elsewhere: unknown, not 0."""
    mac_pmem = namedtuple("mac_pmem", "rss vms pfaults pageins")  # psutil's fields on macOS
    assert _psutil_faults(mac_pmem(1, 2, 100, 7)) == (93, 7)
    assert _psutil_faults(psutil.Process().memory_info()) == (None, None)  # Linux's has none
    assert _psutil_faults(None) == (None, None)
    bsd_pio = namedtuple("bsd_pio", "read_count write_count read_bytes write_bytes")
    facts = _psutil_io(bsd_pio(1, 2, 3, 4))
    assert (facts.read_bytes, facts.write_bytes) == (3, 4)
    assert (facts.syscall_read_bytes, facts.syscall_write_bytes) == (None, None)
    real = psutil.Process().io_counters()
    facts = _psutil_io(real)
    assert (facts.syscall_read_bytes, facts.syscall_write_bytes) == (
        real.read_chars,
        real.write_chars,
    )
