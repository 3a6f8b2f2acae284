# ruff: noqa: F811 - the tests take the imported `recording` fixture as a parameter
"""`nettop-ui summary` and `replay` on damaged, joined, huge and endless recordings.

Each damaged file is a real `run` recording (test_replay's) with one line spoiled;
both commands must go up to the damage, say where they stopped in one line, and
report only honest figures (strict JSON: no NaN, no Infinity).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nettop_ui.tui.replay import ReplayApp
from tests.test_replay import header_text, recording, source_of  # noqa: F401 - `recording`: the fixture
from tests.tmuxterm import tui
from tests.tui_fixtures import capture_notices, wait_for

CLI = [sys.executable, "-m", "nettop_ui"]
Record = dict[str, Any]


def nettop(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the summary: not JSON")

    return json.loads(text, parse_constant=refuse)


def first_process(record: Record, key: str, value: Any) -> Record:
    record["processes"][0][key] = value
    return record


def set_key(key: str, value: Any) -> Callable[[Record], Record]:
    return lambda record: {**record, key: value}


def set_tree(key: str, value: Any) -> Callable[[Record], Record]:
    return lambda record: {**record, "tree": {**record["tree"], key: value}}


# Where (line number, 1-based; -1: the last) and how each damage spoils a recording.
# Line 2 is the sample taken while CMD was held (its memory unknown), so damage comes
# at line 4, after two samples.
SPOILED_LINE: dict[str, tuple[int, Callable[[Record], Record] | bytes]] = {
    "nan-in-a-process": (4, lambda r: first_process(r, "rss_bytes", float("nan"))),
    "infinity-in-a-process": (4, lambda r: first_process(r, "cpu_percent", float("inf"))),
    "ts-1e308": (4, set_key("ts", 1e308)),
    "100000-nested-brackets": (4, b"[" * 100_000),
    "negative-rss": (4, set_tree("rss_bytes", -5)),
    "ended-0": (-1, set_key("ended", 0)),
    "schema-999": (1, set_key("schema", 999)),
    "remotes-not-hosts": (4, set_key("remotes", [{"address": 7, "sent_bytes": -1}])),
}


def spoil(recording: Path, tmp_path: Path, how: str) -> tuple[Path, int]:
    """A copy of the recording with one line spoiled; the copy and that line's number."""
    lines = recording.read_bytes().splitlines()
    where, change = SPOILED_LINE[how]
    index = where - 1 if where > 0 else len(lines) + where
    if isinstance(change, bytes):
        lines[index] = change
    else:
        lines[index] = json.dumps(change(json.loads(lines[index]))).encode()  # NaN as NaN
    damaged = tmp_path / f"{how}.jsonl"
    damaged.write_bytes(b"\n".join(lines) + b"\n")
    return damaged, index + 1


def samples_before(path: Path, line: int) -> int:
    return sum(b'"type": "sample"' in raw or b'"type":"sample"' in raw
               for raw in path.read_bytes().splitlines()[: line - 1])  # fmt: skip


@pytest.mark.parametrize("how", [h for h in SPOILED_LINE if h != "schema-999"])
def test_summary_stops_at_the_damage_with_honest_figures(
    recording: Path, tmp_path: Path, how: str
) -> None:
    damaged, line = spoil(recording, tmp_path, how)
    res = nettop("summary", "--json", str(damaged))
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("\n") == 1 and f"stopped at line {line}" in res.stderr, res.stderr
    summary = strict_json(res.stdout)
    assert summary["samples"] == samples_before(damaged, line)
    assert summary["duration_s"] is not None and summary["duration_s"] >= 0
    assert summary["rss_bytes_peak"] is not None and summary["rss_bytes_peak"] > 0
    text = nettop("summary", str(damaged))
    assert text.returncode == 0 and "peak RSS -" not in text.stdout and "nan" not in text.stdout


def test_summary_refuses_an_unknown_schema(recording: Path, tmp_path: Path) -> None:
    damaged, _line = spoil(recording, tmp_path, "schema-999")
    res = nettop("summary", str(damaged))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("nettop-ui: error: ") and res.stderr.count("\n") == 1
    assert "schema 999" in res.stderr


def _rewritten(recording: Path, tmp_path: Path, change: Callable[[Record], Record]) -> Path:
    out = tmp_path / "rewritten.jsonl"
    lines = [json.dumps(change(json.loads(raw))) for raw in recording.read_bytes().splitlines()]
    out.write_text("\n".join(lines) + "\n")
    return out


def test_a_schema_1_recording_is_still_read(recording: Path, tmp_path: Path) -> None:
    def schema_1(record: Record) -> Record:
        record.pop("remotes", None)
        return {**record, "schema": 1} if record["type"] == "meta" else record

    old = _rewritten(recording, tmp_path, schema_1)
    res = nettop("summary", "--json", str(old))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    summary = strict_json(res.stdout)
    assert summary["samples"] > 0 and summary["remotes"] is None
    assert "remote hosts" not in nettop("summary", str(old)).stdout


def test_summary_lists_the_top_remote_hosts_with_names_escaped(
    recording: Path, tmp_path: Path
) -> None:
    hostile = "\x1b]0;owned\x07evil.example"
    hosts = [
        {"address": f"192.0.2.{i}", "name": hostile if i == 3 else None,
         "name_source": "resolver" if i == 3 else None, "scope": "remote",
         "sent_bytes": 1000 * i, "recv_bytes": 10 * i}
        for i in range(1, 14)
    ]  # fmt: skip

    def with_hosts(record: Record) -> Record:
        return {**record, "remotes": hosts} if record["type"] == "sample" else record

    path = _rewritten(recording, tmp_path, with_hosts)
    summary = strict_json(nettop("summary", "--json", str(path)).stdout)
    assert [h["address"] for h in summary["remotes"]] == [f"192.0.2.{i}" for i in range(13, 3, -1)]
    hosts[2]["sent_bytes"] = 10**6  # the hostile name among the top ten
    path = _rewritten(recording, tmp_path, with_hosts)
    text = nettop("summary", str(path)).stdout
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;owned\\x07evil.example (192.0.2.3)" in text


def test_two_joined_recordings_are_not_one_run(recording: Path, tmp_path: Path) -> None:
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(recording.read_bytes() * 2)
    lines = len(recording.read_bytes().splitlines())
    res = nettop("summary", "--json", str(joined))
    assert res.returncode == 0
    assert f"stopped at line {lines + 1}" in res.stderr and "second recording" in res.stderr
    alone = strict_json(nettop("summary", "--json", str(recording)).stdout)
    assert strict_json(res.stdout) == alone


def test_endless_file_gives_one_line_quickly() -> None:
    start = time.monotonic()
    res = nettop("summary", "/dev/zero", timeout=30)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("nettop-ui: error: ")
    assert "longer than" in res.stderr, res.stderr
    assert time.monotonic() - start < 10


def child_max_rss(args: list[str]) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Run `nettop-ui ARGS` in a fresh child (through a small Python parent, so that
    RUSAGE_CHILDREN holds only it) and return its peak RSS in bytes."""
    probe = (
        "import resource, subprocess, sys, json\n"
        "res = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps([rss, res.returncode, res.stdout, res.stderr]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *CLI, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rss, code, stdout, stderr = json.loads(out.stdout)
    return rss, subprocess.CompletedProcess(args, code, stdout, stderr)


def test_summary_of_a_large_recording_runs_in_bounded_memory(
    recording: Path, tmp_path: Path
) -> None:
    """200 MB of real sample lines (the recording's, repeated with rising timestamps)
    take no more memory to summarise than the small recording itself."""
    lines = recording.read_bytes().splitlines(keepends=True)
    meta, samples = lines[0], [json.loads(x) for x in lines[1:-1]]
    samples = [s for s in samples if s["type"] == "sample"]
    big = tmp_path / "big.jsonl"
    ts = samples[0]["ts"]
    with big.open("wb") as f:
        f.write(meta)
        while f.tell() < 200 * 1024 * 1024:
            block = []
            for s in samples:
                ts += 0.2
                block.append(json.dumps({**s, "ts": ts}, separators=(",", ":")) + "\n")
            f.write("".join(block * 50).encode())
    small_rss, small = child_max_rss(["summary", "--json", str(recording)])
    big_rss, res = child_max_rss(["summary", "--json", str(big)])
    assert small.returncode == 0 and res.returncode == 0, res.stderr
    assert strict_json(res.stdout)["samples"] > 100_000
    assert big_rss < small_rss + 20 * 1024 * 1024, (small_rss, big_rss)


@pytest.mark.parametrize("how", ["nan-in-a-process", "ts-1e308", "100000-nested-brackets"])
async def test_replay_shows_what_is_good_up_to_the_damage(
    recording: Path, tmp_path: Path, how: str
) -> None:
    damaged, line = spoil(recording, tmp_path, how)
    source = source_of(damaged)
    assert len(source) == samples_before(damaged, line)
    assert source.problem is not None and f"line {line}" in source.problem
    app = ReplayApp(source, host="test")
    notes = capture_notices(app)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        assert any(f"line {line}" in n for n in notes), notes
        await pilot.press("end")
        await pilot.pause()
        assert f"replay {len(source)}/{len(source)}" in header_text(app)


@pytest.mark.parametrize("how", ["nan-in-a-process", "ts-1e308", "100000-nested-brackets"])
def test_replay_cli_in_a_terminal_stops_at_the_damage(
    recording: Path, tmp_path: Path, how: str
) -> None:
    damaged, line = spoil(recording, tmp_path, how)
    with tui(120, 30, "replay", str(damaged)) as (term, app):
        term.wait_for(lambda s: "replay 1/" in s, 30, "the replay header")
        term.keys("q")
        app.wait_exit()

        def unwrapped() -> str:  # the screen with wrapped lines joined (-J)
            return term.tmux("capture-pane", "-p", "-J", "-t", term.target)

        term.wait_for(lambda _: "replayed up to there" in unwrapped(), 10, "the warning")
        screen = unwrapped()
        assert screen.count("nettop-ui: warning:") == 1, screen
        assert f"stopped at line {line}:" in screen and "Traceback" not in screen, screen
        term.expect_exit_status(0, "exit status 0")
