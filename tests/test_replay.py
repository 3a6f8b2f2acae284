"""`nettop-ui replay FILE`: a real recording, replayed in the TUI through Pilot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nettop_ui.format import human_bytes, human_rate
from nettop_ui.summary import read_recording
from nettop_ui.tui.app import NettopApp
from nettop_ui.tui.detail_screen import DetailScreen
from nettop_ui.tui.header import StatusHeader
from nettop_ui.tui.help_screen import binding_rows
from nettop_ui.tui.kill_dialog import KillDialog
from nettop_ui.tui.panels import Panel
from nettop_ui.tui.replay import ReplayApp, ReplaySource
from tests.tui_fixtures import capture_notices, screen_lines, table_order, wait_for

NETTOP_UI = str(Path(sys.executable).with_name("nettop-ui"))
# Allocates 2 MB every 0.1 s for 2 s: its RSS differs from one sample to the next.
LOAD = (
    "import time\nx = []\nfor _ in range(20):\n    x.append(bytearray(2_000_000)); time.sleep(0.1)"
)


def nettop(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NETTOP_UI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "rec.jsonl"
    res = nettop("run", "--backend", "psutil", "--interval", "0.3", "--output", str(out),
                 "--", sys.executable, "-c", LOAD)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


def samples_of(path: Path) -> list[dict[str, Any]]:
    records, _problem = read_recording(str(path))
    return [r for r in records if r["type"] == "sample"]


def header_text(app: NettopApp) -> str:
    header = app.main.query_one(StatusHeader)
    return " ".join(seg.plain for seg in header.segments())


def shown_rss(app: NettopApp, pid: int) -> int | None:
    assert app.shown is not None
    return next(p.rss_bytes for p in app.shown.processes if p.pid == pid)


def history_len(app: NettopApp) -> int:
    """Points in the history of the drilled-down process, as of the sample shown."""
    screen = app.screen
    if app.shown is None or not isinstance(screen, DetailScreen):
        return -1
    history = app.shown.histories.get(screen.process_key)
    return -1 if history is None else len(history.ts)


def source_of(path: Path) -> ReplaySource:
    records, problem = read_recording(str(path))
    return ReplaySource(records, str(path), problem)


async def press(pilot: Any, *keys: str) -> None:
    await pilot.press(*keys)
    await pilot.pause()


async def test_timeline_keys_move_through_the_recording(recording: Path) -> None:
    samples = samples_of(recording)
    n = len(samples)
    assert n >= 4
    pid = samples[-1]["processes"][0]["pid"]
    rss = [next(p["rss_bytes"] for p in s["processes"] if p["pid"] == pid) for s in samples]
    assert len(set(rss)) > 1  # a value that differs between samples
    app = ReplayApp(source_of(recording), host="test")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        assert f"replay 1/{n}" in header_text(app)
        assert any(k.startswith(f"{pid}:") for k in table_order(app))
        assert shown_rss(app, pid) == rss[0]
        assert app.shown is not None and app.shown.ts == samples[0]["ts"]

        await press(pilot, "right")
        assert f"replay 2/{n}" in header_text(app)
        assert shown_rss(app, pid) == rss[1]

        await press(pilot, "end")
        assert f"replay {n}/{n}" in header_text(app)
        assert shown_rss(app, pid) == rss[-1]
        await press(pilot, "right")  # past the end: stays
        assert f"replay {n}/{n}" in header_text(app)

        await press(pilot, "left")
        assert f"replay {n - 1}/{n}" in header_text(app)
        assert shown_rss(app, pid) == rss[-2]

        await press(pilot, "home")
        assert f"replay 1/{n}" in header_text(app)
        assert shown_rss(app, pid) == rss[0]
        await press(pilot, "left")  # before the start: stays
        assert f"replay 1/{n}" in header_text(app)

        await press(pilot, "space")  # play: one sample per recorded interval, to the end
        assert app.replay.playing and "▶" in header_text(app)
        await wait_for(pilot, lambda: app.replay.index == n - 1, "play to the end", timeout=20)
        await pilot.pause()
        assert not app.replay.playing
        assert f"replay {n}/{n}" in header_text(app)
        assert shown_rss(app, pid) == rss[-1]

        await press(pilot, "space", "space")  # from the end, play restarts; then pause
        assert not app.replay.playing
        assert app.replay.index <= 1


async def test_filter_and_drill_down_work_in_replay(recording: Path) -> None:
    samples = samples_of(recording)
    pid = samples[-1]["processes"][0]["pid"]
    app = ReplayApp(source_of(recording), host="test")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        await press(pilot, "end")
        await press(pilot, "slash", *"zzznomatch")
        assert table_order(app) == []
        await press(pilot, "left", "home")  # typed into the filter box, not the timeline
        assert app.replay.index == len(samples) - 1
        await press(pilot, "escape", "delete")
        assert any(k.startswith(f"{pid}:") for k in table_order(app))

        await press(pilot, "slash", *str(pid), "escape")
        keys = table_order(app)
        assert keys and all(k.startswith(f"{pid}:") for k in keys)
        await press(pilot, "t")  # tree view
        assert app.opts.mode == "tree"
        assert any(k.startswith(f"{pid}:") for k in table_order(app))
        await press(pilot, "t")
        await press(pilot, "enter")
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.process_key.startswith(f"{pid}:")
        # Its history as of the last sample: every sample.
        await wait_for(pilot, lambda: history_len(app) == len(samples), "the full history")
        await press(pilot, "home")  # the timeline works in the drill-down too
        assert app.replay.index == 0
        await wait_for(pilot, lambda: history_len(app) == 1, "the history as of sample 1")
        await press(pilot, "escape")
        assert app.screen is app.main


async def test_a_truncated_recording_replays_up_to_the_damage(
    recording: Path, tmp_path: Path
) -> None:
    raw = recording.read_bytes()
    lines = raw.splitlines(keepends=True)
    cut = b"".join(lines[:4]) + lines[4][: len(lines[4]) // 2]  # meta, 3 samples, half a line
    damaged = tmp_path / "cut.jsonl"
    damaged.write_bytes(cut)
    source = source_of(damaged)
    assert len(source) == 3
    assert source.problem is not None and "line 5" in source.problem
    app = ReplayApp(source, host="test")
    notes = capture_notices(app)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        assert any("line 5" in n and "replaying up to there" in n for n in notes), notes
        await press(pilot, "end")
        assert "replay 3/3" in header_text(app)
        ids = {row[2] for row in binding_rows(app.screen)}  # what ? lists
        assert {"replay_back", "replay_forward", "replay_first", "replay_last"} <= ids
        assert "replay_play" in ids and "pause" not in ids  # space plays, not the live pause


def panel_text(app: NettopApp, panel_id: str) -> str:
    return str(app.main.query_one(f"#panel-{panel_id}", Panel).render())


async def test_replay_panels_show_what_the_recording_has(recording: Path) -> None:
    samples = samples_of(recording)
    last, before = samples[-1], samples[-2]
    dt = last["ts"] - before["ts"]
    app = ReplayApp(source_of(recording), host="test")
    async with app.run_test(size=(160, 48)) as pilot:  # bordered panels
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        await press(pilot, "end")
        panels = {p: panel_text(app, p) for p in ("cpu", "mem", "net", "disk")}
        for name, text in panels.items():
            assert "…" not in text, (name, text)  # never "waiting" for the whole replay
            assert "not recorded" in text, (name, text)  # the machine's own figures
        # What the recording does hold, labelled as the tree's, from the recorded numbers.
        assert f"tree RSS {human_bytes(last['tree']['rss_bytes'])}" in panels["mem"]
        written = (last["tree"]["write_bytes"] - before["tree"]["write_bytes"]) / dt
        assert f"W {human_rate(written)}" in panels["disk"]
        sent = (last["interfaces_sent_bytes"] - before["interfaces_sent_bytes"]) / dt
        assert f"↑{human_rate(sent)}" in panels["net"] and "but lo" in panels["net"]
    app = ReplayApp(source_of(recording), host="test")
    async with app.run_test(size=(100, 30)) as pilot:  # one line per panel
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        for name, label in [("cpu", "CPU  tree "), ("mem", "MEM  tree RSS "),
                            ("net", "NET  all but lo "), ("disk", "DISK tree R ")]:  # fmt: skip
            assert panel_text(app, name).startswith(label), panel_text(app, name)


async def test_replay_offers_no_signal_to_a_recorded_pid(recording: Path) -> None:
    app = ReplayApp(source_of(recording), host="test")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.shown is not None, "the first frame")
        await press(pilot, "end")
        assert "kill" not in {row[2] for row in binding_rows(app.screen)}  # not in ? help
        assert "Kill" not in "\n".join(screen_lines(app))  # nor in the footer
        await press(pilot, "k")
        assert not isinstance(app.screen, KillDialog)
        await press(pilot, "enter")  # nor in the drill-down
        assert isinstance(app.screen, DetailScreen)
        assert "kill" not in {row[2] for row in binding_rows(app.screen)}
        await press(pilot, "k")
        assert isinstance(app.screen, DetailScreen)


def test_the_live_app_has_no_timeline_keys() -> None:
    ids = {getattr(b, "id", None) for b in NettopApp.BINDINGS}
    assert not any(i and i.startswith("replay_") for i in ids)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        (b"this is not a recording\n", "no samples"),
        (b'{"type": "meta", "schema": 1}\n{"type": "end"}\n', "no samples"),
        (b"", "no samples"),
    ],
    ids=["missing", "garbage", "no-samples", "empty"],
)
def test_unusable_files_give_one_line_and_fail(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "rec.jsonl"
    if content is not None:
        path.write_bytes(content)
    res = nettop("replay", str(path))
    assert res.returncode == 1
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("nettop-ui: error: ") and expected in lines[0]


def test_replay_is_a_subcommand() -> None:
    res = nettop("replay", "--help")
    assert res.returncode == 0 and "FILE" in res.stdout.upper()
    assert os.path.basename(NETTOP_UI) == "nettop-ui"
