"""Whole-machine recordings: `--output` next to the TUI, `summary` and `replay` of them,
large ones (an indexed replay, a streaming summary) and damaged ones.

The recordings are real: `nettop-ui` in a real terminal (tests/tmuxterm.py) or
headless, with a traffic generator moving known bytes (tests/netenv.py); the large one
is written by the real writer from real snapshots (bench/recording.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench.recording import write_recording
from nettop_ui.recording_index import index_recording
from nettop_ui.tui.replay import IndexedReplaySource, ReplayApp, ReplaySource, load
from tests.netenv import Client, Network, require_root, within
from tests.test_record import small_fs
from tests.test_replay import header_text
from tests.test_summary import child_max_rss
from tests.tmuxterm import tui
from tests.tui_fixtures import capture_notices, wait_for

CLI = [sys.executable, "-m", "nettop_ui"]
Record = dict[str, Any]
UP = 3_000_000  # bytes the generator uploads


def nettop(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def whole_lines(path: Path) -> list[Record]:
    """Every line of the recording, each a whole JSON object; the file ends a line."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), raw[-200:]
    return [json.loads(line) for line in raw.splitlines()]


def sent_by(records: list[Record], pid: int) -> int | None:
    """The bytes `pid` sent, as the last sample listing it recorded them."""
    found = None
    for r in records:
        if r["type"] == "sample":
            found = next((p["sent_bytes"] for p in r["processes"] if p["pid"] == pid), found)
    return found


def wait_recorded(path: Path, client: Client, timeout: float = 60) -> None:
    """Until the recording holds all the bytes the client sent (a later tick's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_bytes().splitlines()
        samples = [json.loads(x) for x in lines[1:] if x.startswith(b'{"type":"sample"')]
        sent = sent_by(samples, client.pid)
        if sent is not None and within(sent, client.sent, 0.01):
            return
        time.sleep(0.3)
    raise AssertionError(f"the recording never had the client's {client.sent} bytes")


# -- `--output FILE` next to the TUI ---------------------------------------------------


@pytest.mark.parametrize("stop", ["q", "SIGTERM", "SIGHUP"])
def test_tui_records_while_watching_and_leaves_a_whole_recording(
    net: Network, tmp_path: Path, stop: str
) -> None:
    require_root()
    out = tmp_path / "watch.jsonl"
    args = ("--backend", "ebpf", "--interval", "0.5", "--output", str(out))
    with tui(160, 48, *args) as (term, app):
        app.wait_table()
        client = net.client(f"ntu-watch-{stop[-1]}", "tcp", "v4", up=UP).wait_done()
        wait_recorded(out, client)
        app.wait_table()  # the TUI is still there, drawing
        if stop == "q":
            term.keys("q")
        else:
            os.kill(app.proc.pid, getattr(signal, stop))
        app.wait_exit()
        term.expect_exit_status(0, "exit status 0")
        assert "Traceback" not in term.screen() and "error" not in term.screen()
    client.finish()
    records = whole_lines(out)
    assert records[0]["type"] == "meta" and records[0]["backend"] == "ebpf"
    assert all(r["type"] in ("sample", "event") for r in records[1:])
    sent = sent_by(records, client.pid)
    assert sent is not None and within(sent, client.sent, 0.01), (sent, client.sent)
    res = nettop("summary", "--json", str(out))  # a whole-machine recording: summarised
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert json.loads(res.stdout)["samples"] == sum(r["type"] == "sample" for r in records)


def notices(screen: str) -> str:
    """The text of the notices (toasts) on the screen, their wrapped lines joined (the
    table's cells show on the right of a toast, past a run of spaces)."""
    lines = [line.rsplit("▌", 1)[1].strip() for line in screen.split("\n") if "▌" in line]
    return " ".join(re.split(r"\s{2,}", line)[0] for line in lines if line)


def fill(fs: Path) -> None:
    """Write into `fs` until it is full."""
    with contextlib.suppress(OSError), (fs / "filler").open("wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()


def test_a_full_disk_stops_the_recording_with_one_line_and_the_tui_runs_on(
    net: Network,
) -> None:
    require_root()
    with small_fs("8m") as fs:
        out = fs / "watch.jsonl"
        args = ("--backend", "ebpf", "--interval", "0.3", "--output", str(out))
        with tui(160, 48, *args) as (term, app):
            app.wait_table()
            deadline = time.monotonic() + 30
            while out.read_bytes().count(b'{"type":"sample"') < 2:
                assert time.monotonic() < deadline, "no samples recorded"
                time.sleep(0.2)
            fill(fs)
            screen = term.wait_for(
                lambda s: "stopped: disk full; what was written is kept" in notices(s),
                30,
                "the disk-full notice",
            )
            assert f"recording to {out} stopped" in notices(screen)
            # The TUI runs on: new traffic still shows in the table.
            client = net.client("ntu-after-full", "tcp", "v4", up=UP, rate=UP / 10)
            term.wait_for(lambda s: "ntu-after-full" in s, 30, "the new client's row")
            client.wait_done()
            client.finish()
            term.keys("q")
            app.wait_exit()
            screen = term.tmux("capture-pane", "-p", "-J", "-t", term.target)
            assert screen.count("nettop-ui: error: recording to") == 1, screen
            assert "stopped: disk full" in screen and "Traceback" not in screen
            term.expect_exit_status(1, "exit status 1")
        records = whole_lines(out)
    assert records[0]["type"] == "meta"
    assert sum(r["type"] == "sample" for r in records) >= 2


# -- summary and replay of a whole-machine recording ------------------------------------


Machine = tuple[Path, Client, Client]


@pytest.fixture(scope="module")
def machine(net: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """A headless whole-machine recording (`--json --output`) while two clients upload,
    one three times what the other does. Other tests on this machine move traffic too:
    `--filter` keeps the recording to these two."""
    require_root()
    out = tmp_path_factory.mktemp("machine") / "machine.jsonl"
    tag = f"ntu-m{os.getpid() % 100000}"
    proc = subprocess.Popen([*CLI, "--json", "--backend", "ebpf", "--interval", "0.3",
                             "--filter", tag, "--output", str(out)],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(2)  # the backend is up
        big = net.client(f"{tag}a", "tcp", "v4", up=UP).wait_done()
        small = net.client(f"{tag}b", "tcp", "v4", up=UP // 3).wait_done()
        wait_recorded(out, big)
        wait_recorded(out, small)
        big.finish()
        small.finish()
        time.sleep(1)  # a few samples with the clients exited
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    yield out, big, small


def cpu_growth(records: list[Record], pid: int) -> float:
    """CPU seconds `pid` used from its first recorded sample to its last."""
    seen = [p for r in records if r["type"] == "sample" for p in r["processes"] if p["pid"] == pid]
    return float(sum(seen[-1][k] - seen[0][k] for k in ("cpu_user_s", "cpu_system_s")))


def test_summary_of_a_machine_recording_ranks_its_processes(machine: Machine) -> None:
    path, big, small = machine
    records = whole_lines(path)
    res = nettop("summary", "--json", str(path))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    s = json.loads(res.stdout)
    assert s["recording"] == "machine" and s["backend"] == "ebpf"
    assert s["samples"] == sum(r["type"] == "sample" for r in records)
    assert [r["pid"] for r in s["top"]["bytes"]] == [big.pid, small.pid]
    for client, row in zip((big, small), s["top"]["bytes"], strict=True):
        assert within(row["sent_bytes"], client.sent, 0.01), (row, client.sent)
        assert row["sent_bytes"] == sent_by(records, client.pid)
        assert row["total_bytes"] == row["sent_bytes"] + row["recv_bytes"]
        cpu = next((r for r in s["top"]["cpu"] if r["pid"] == client.pid), None)
        grown = cpu_growth(records, client.pid)
        if grown == 0:
            assert cpu is None
        else:
            assert cpu is not None and cpu["cpu_seconds"] == round(grown, 3), (cpu, grown)
    assert s["sent_bytes"] == sum(r["sent_bytes"] for r in s["top"]["bytes"])
    assert {r["pid"] for r in s["top"]["memory"]} == {big.pid, small.pid}
    text = nettop("summary", str(path))
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert "whole machine" in lines[0]
    ranked = lines[lines.index("top by network bytes (sent, received)") + 1 :][:2]
    assert [int(line.split()[0]) for line in ranked] == [big.pid, small.pid], text.stdout


def shown_sent(app: ReplayApp, pid: int) -> int | None:
    assert app.shown is not None
    return next((p.sent_bytes for p in app.shown.processes if p.pid == pid), None)


@pytest.mark.parametrize("indexed", [False, True], ids=["read-whole", "indexed"])
async def test_replay_shows_a_machine_recording_over_time(machine: Machine, indexed: bool) -> None:
    path, client, _small = machine
    records = whole_lines(path)
    samples = [r for r in records if r["type"] == "sample"]
    if indexed:
        meta, found = index_recording(str(path))
        source: ReplaySource = IndexedReplaySource(meta, found, str(path))
    else:
        source = load(str(path))  # a small file: read whole
        assert not isinstance(source, IndexedReplaySource)
    assert len(source) == len(samples)
    app = ReplayApp(source, host="test")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        assert f"replay 1/{len(samples)}" in header_text(app)
        await pilot.press("end")
        await wait_for(pilot, lambda: f"replay {len(samples)}/" in header_text(app), "the end")
        assert shown_sent(app, client.pid) == sent_by(records, client.pid)
        first_seen = next(i for i, s in enumerate(samples)
                          if any(p["pid"] == client.pid for p in s["processes"]))  # fmt: skip
        await pilot.press("home", *["right"] * first_seen)
        await wait_for(pilot, lambda: f"replay {first_seen + 1}/" in header_text(app), "step")
        expected = next(p for p in samples[first_seen]["processes"] if p["pid"] == client.pid)
        assert shown_sent(app, client.pid) == expected["sent_bytes"]


# -- large recordings ------------------------------------------------------------------

LARGE = 200 * 1024 * 1024


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A 1 MiB and a 200 MiB whole-machine recording from the real writer; the large
    one's sample count."""
    where = tmp_path_factory.mktemp("large")
    small, big = where / "small.jsonl", where / "big.jsonl"
    write_recording(small, 1024 * 1024)
    return small, big, write_recording(big, LARGE)


def test_summary_of_a_large_machine_recording_runs_in_bounded_memory(
    large: tuple[Path, Path, int],
) -> None:
    small, big, samples = large
    small_rss, res_small = child_max_rss(["summary", "--json", str(small)])
    big_rss, res = child_max_rss(["summary", "--json", str(big)])
    assert res_small.returncode == 0 and res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["samples"] == samples
    assert big_rss < small_rss + 20 * 1024 * 1024, (small_rss, big_rss)


def at_the_end(screen: str) -> bool:
    m = re.search(r"replay (\d+)/(\d+)", screen)
    return m is not None and m.group(1) == m.group(2)


def replay_opened(path: Path) -> tuple[float, float, int]:
    """`nettop-ui replay FILE` in a terminal: seconds to the first frame, to the last
    after `end`, and the app's RSS then."""
    with tui(160, 48, "replay", str(path)) as (term, app):
        start = app.proc.create_time()
        term.wait_for(lambda s: "replay 1/" in s, 60, "the first frame", poll_s=0.05)
        first = time.time() - start
        t = time.monotonic()
        term.keys("End")
        term.wait_for(at_the_end, 60, "the last frame", poll_s=0.05)
        last = time.monotonic() - t
        rss = psutil.Process(app.proc.pid).memory_info().rss
        term.keys("q")
        app.wait_exit()
    return first, last, rss


def test_a_large_recording_opens_in_replay_within_seconds_in_bounded_memory(
    large: tuple[Path, Path, int],
) -> None:
    small, big, _samples = large
    small_first, small_last, small_rss = replay_opened(small)
    first, last, rss = replay_opened(big)
    # Start-up (Python, Textual) is the same for both: the index costs the difference;
    # the last frame reads its sample and a bounded history window (HISTORY_BYTES).
    assert first < small_first + 3.0, (small_first, first)
    assert last < small_last + 3.0, (small_last, last)
    assert rss < small_rss + 60 * 1024 * 1024, (small_rss, rss)


# -- damaged recordings, indexed ---------------------------------------------------------


def copy_with(path: Path, tmp_path: Path, change: bytes, where: int) -> Path:
    """A copy of the recording with line `where` (0-based; -1 the last) replaced."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[where] = change
    out = tmp_path / "damaged.jsonl"
    out.write_bytes(b"".join(lines))
    return out


def cut_short(raw: bytes, tmp_path: Path) -> Path:
    """A copy of a recording whose writer was killed in the middle of its last line."""
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(raw[: len(raw) - 40])
    return cut


def test_an_indexed_recording_cut_short_replays_its_whole_lines(
    machine: Machine, tmp_path: Path
) -> None:
    path, _big, _small = machine
    raw = path.read_bytes()
    cut = cut_short(raw, tmp_path)
    _meta, samples = index_recording(str(cut))
    assert len(samples) == raw.count(b'{"type":"sample"') - 1
    assert samples.problem is not None and "cut short" in samples.problem
    assert samples[len(samples) - 1]["type"] == "sample"


async def test_a_damaged_sample_in_an_indexed_recording_ends_the_replay_there(
    machine: Machine, tmp_path: Path
) -> None:
    path, _big, _small = machine
    lines = path.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    assert lines[middle].startswith(b'{"type":"sample"')
    damaged = copy_with(path, tmp_path, b'{"type":"sample","ts":NaN}\n', middle)
    meta, found = index_recording(str(damaged))
    source = IndexedReplaySource(meta, found, str(damaged))
    app = ReplayApp(source, host="test")
    notes = capture_notices(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        assert not notes
        await pilot.press("end")
        await wait_for(pilot, lambda: any("NaN" in n for n in notes), "the damage notice")
        await pilot.pause()
        before = sum(x.startswith(b'{"type":"sample"') for x in lines[1:middle])
        assert len(source) == before
        assert f"replay {before}/{before}" in header_text(app)


def test_a_large_damaged_recording_gives_one_line_on_the_command_line(
    large: tuple[Path, Path, int], tmp_path: Path
) -> None:
    _small, big, _samples = large
    garbage = tmp_path / "garbage.jsonl"
    with big.open("rb") as src, garbage.open("wb") as dst:
        dst.write(b"not a recording\n")
        src.readline()
        while chunk := src.read(1 << 24):
            dst.write(chunk)
    for command in ("replay", "summary"):
        res = nettop(command, str(garbage))
        assert res.returncode == 1 and res.stdout == "", res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("nettop-ui: error: ")
        assert "no samples" in res.stderr and "Traceback" not in res.stderr


def test_an_indexed_recording_stops_where_a_second_one_starts(
    machine: Machine, tmp_path: Path
) -> None:
    path, _big, _small = machine
    raw = path.read_bytes()
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(raw + raw)  # `cat a b`
    _meta, samples = index_recording(str(joined))
    assert len(samples) == raw.count(b'{"type":"sample"')
    assert samples.problem == f"stopped at byte {len(raw)}: a second recording starts here"


def test_summary_of_a_machine_recording_cut_short_says_where_in_one_line(
    machine: Machine, tmp_path: Path
) -> None:
    path, big, _small = machine
    raw = path.read_bytes()
    cut = cut_short(raw, tmp_path)
    lines = raw.count(b"\n")
    res = nettop("summary", "--json", str(cut))
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("\n") == 1 and f"stopped at line {lines}:" in res.stderr
    s = json.loads(res.stdout)
    assert s["samples"] == raw.count(b'{"type":"sample"') - 1
    assert s["top"]["bytes"][0]["pid"] == big.pid
