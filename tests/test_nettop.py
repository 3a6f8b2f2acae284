"""The macOS nettop backend, on real captured nettop output (tests/fixtures/nettop).

This machine has no macOS, so the backend's subprocess handling is tested end to end
against a stand-in `nettop` (tests/fakebin/nettop) that replays those real captures
block by block, `-s` seconds apart. The two netglass captures come from the same Mac
five minutes apart (resolved at 00:34:29, numeric at 00:39:45), so replaying them in
that order is a real pair of consecutive samples: counters that grew, and counters
that dropped when sockets closed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.nettop import (
    DeltaTracker,
    NettopBackend,
    NettopParser,
    parse_capture,
)
from nettop_ui import registry
from tests.netenv import BackendRun

FIXTURES = Path(__file__).parent / "fixtures" / "nettop"
FAKEBIN = Path(__file__).parent / "fakebin"
RESOLVED = FIXTURES / "nettop_L1_J_noP_resolved_macos26_netglass.csv"
NUMERIC = FIXTURES / "nettop_L1_J_noP_numeric_macos26_netglass.csv"
MACOS12 = FIXTURES / "nettop_L1_P_J_bytes_macos12_issue_Tao93_NetTool_7.csv"
DASHBOARD = FIXTURES / "nettop_P_x_d_L2_default_columns_dashboard_fixture.csv"


def processes(path: Path) -> dict[tuple[str, int], tuple[int | None, int | None]]:
    (block,) = parse_capture(path.read_text())
    return {(r.name, r.pid): (r.bytes_in, r.bytes_out) for r in block if r.connection is None}


def test_macos12_process_rows() -> None:
    assert processes(MACOS12) == {
        ("systemstats", 503): (0, 0),
        ("configd", 504): (0, 0),
        ("apsd", 533): (11417, 23504),
        ("locationd", 541): (0, 0),
        ("bluetoothd", 555): (0, 0),
    }


def test_netglass_names_with_dots_spaces_parentheses() -> None:
    procs = processes(NUMERIC)
    assert len(procs) == 29  # FORMATS.md: "a real 29-process capture"
    assert procs[("apsd", 590)] == (7046, 34544)
    assert procs[("io.tailscale.ip", 1982)] == (44726, 82425068)
    assert procs[("com.apple.WebKi", 1790)] == (5222773, 1269190)
    names = {name for name, _ in procs}
    assert {"Google Chrome H", "Codex (Service)"} <= names
    assert len(processes(RESOLVED)) == 27


@pytest.mark.parametrize("path", [NUMERIC, RESOLVED])
def test_connection_rows_sum_to_their_process(path: Path) -> None:
    """A process row is the sum of its open sockets (FORMATS.md: 55 of 56 match)."""
    (block,) = parse_capture(path.read_text())
    sums: dict[int, list[int]] = {}
    for r in block:
        if r.connection is not None:
            acc = sums.setdefault(r.pid, [0, 0])
            acc[0] += r.bytes_in or 0
            acc[1] += r.bytes_out or 0
    rows = [r for r in block if r.connection is None and r.pid in sums]
    mismatches = [r for r in rows if sums[r.pid] != [r.bytes_in, r.bytes_out]]
    assert len(rows) >= 20 and len(mismatches) <= 1


def test_listener_rows_have_no_values_not_zero() -> None:
    (block,) = parse_capture(NUMERIC.read_text())
    udp = [r for r in block if r.connection and r.connection.startswith("udp4 *:*")]
    assert udp and all(r.bytes_in is None and r.bytes_out is None for r in udp)


def test_repeated_header_splits_blocks() -> None:
    blocks = parse_capture(DASHBOARD.read_text())
    assert [len(b) for b in blocks] == [2, 3]
    assert (blocks[1][2].name, blocks[1][2].pid) == ("Code Helper (Pl", 51458)
    assert (blocks[0][1].bytes_in, blocks[0][1].bytes_out) == (146969880, 145968400)


def test_comma_in_name_joins_extra_fields() -> None:
    # No capture shows a comma in a name (FORMATS.md 1.4); nettop does not quote, so
    # the rule is: extra fields belong to the name column. Header and row are real.
    parser = NettopParser()
    parser.feed(",bytes_in,bytes_out,")
    parser.feed("Foo, Inc Helper.77,10,20,")
    (row,) = parser.flush() or []
    assert (row.name, row.pid, row.bytes_in, row.bytes_out) == ("Foo, Inc Helper", 77, 10, 20)


def test_prompt_line_before_header_is_counted_not_fatal() -> None:
    parser = NettopParser()
    for line in MACOS12.read_text().splitlines():
        parser.feed(line)
    assert parser.bad_lines == 1  # "% nettop -L 1 -P -J bytes_in,bytes_out"


def test_deltas_between_real_consecutive_samples() -> None:
    tracker = DeltaTracker()
    (first,) = parse_capture(RESOLVED.read_text())
    (second,) = parse_capture(NUMERIC.read_text())
    assert tracker.update(first) == []  # the baseline
    deltas = {(t.name, t.pid): (t.sent_bytes, t.recv_bytes) for t in tracker.update(second)}
    assert deltas[("apsd", 590)] == (34544 - 34103, 7046 - 5542)
    assert deltas[("Telegram", 97533)] == (376094 - 362028, 1709858 - 1676357)
    # Tunnel's counts dropped (sockets closed): nothing is invented for it.
    assert ("Tunnel", 41723) not in deltas
    # Unchanged processes move nothing.
    assert ("netbiosd", 32976) not in deltas


@given(st.lists(st.text(max_size=120), max_size=40))
def test_parser_never_raises(lines: list[str]) -> None:
    parser = NettopParser()
    for line in [",bytes_in,bytes_out,", *lines]:
        parser.feed(line)
    parser.flush()


@given(st.binary(max_size=2000))
def test_parse_capture_never_raises_on_bytes(raw: bytes) -> None:
    parse_capture(raw.decode("utf-8", errors="backslashreplace"))


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NETTOP_REPLAY", f"{RESOLVED}{os.pathsep}{NUMERIC}")


def nettop_children() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "fakebin/nettop" in line]


@pytest.mark.usefixtures("standin")
def test_backend_end_to_end_with_standin() -> None:
    assert NettopBackend.probe().available
    with BackendRun(NettopBackend(), interval_s=1.0) as run:
        run.wait_samples(3)
    assert run.totals(590) == (34544 - 34103, 7046 - 5542)
    assert run.names[590] == "apsd"
    assert run.totals(97533) == (376094 - 362028, 1709858 - 1676357)
    assert run.totals(41723) == (0, 0)
    time.sleep(0.2)
    assert nettop_children() == []  # the child is reaped on close


@pytest.mark.usefixtures("standin")
def test_backend_restarts_nettop_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTOP_REPLAY_EXIT", "1")
    with BackendRun(NettopBackend(), interval_s=1.0) as run:
        deadline = time.monotonic() + 30
        while not run.failures and time.monotonic() < deadline:
            time.sleep(0.2)
    assert run.failures and "nettop keeps exiting" in run.failures[0].message
    assert nettop_children() == []


@pytest.mark.usefixtures("standin")
def test_cli_forces_nettop_on_linux_but_auto_never_picks_it() -> None:
    chosen, _ = registry.choose("auto")
    assert chosen.name != "nettop" or sys.platform == "darwin"
    res = subprocess.run(
        [sys.executable, "-m", "nettop_ui", "--json", "--backend", "nettop", "--count", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    meta, *samples = [json.loads(line) for line in res.stdout.splitlines()]
    assert meta["backend"] == "nettop"
    apsd = [p for p in samples[-1]["processes"] if p["pid"] == 590]
    assert apsd and apsd[0]["name"] == "apsd" and apsd[0]["exited"] is True
    assert (apsd[0]["sent_bytes"], apsd[0]["recv_bytes"]) == (34544 - 34103, 7046 - 5542)


@pytest.mark.usefixtures("standin")
@pytest.mark.parametrize(
    "fault",
    [
        ("NETTOP_REPLAY_LONG_LINE", "100000"),  # one 100 KB line between two real blocks
        ("NETTOP_REPLAY_STDERR", "1000000"),  # 1 MB of warnings: more than a pipe holds
    ],
    ids=["long-line", "stderr-flood"],
)
def test_long_line_and_stderr_flood_do_not_freeze_the_counts(
    monkeypatch: pytest.MonkeyPatch, fault: tuple[str, str]
) -> None:
    """After the first real block the stand-in prints the fault, then the second block:
    its deltas must still arrive (they froze at zero: the reader died on the long line,
    and nettop blocked writing to a stderr nobody read)."""
    monkeypatch.setenv(*fault)
    backend = NettopBackend()
    with BackendRun(backend, interval_s=1.0) as run:
        run.wait_samples(3)
    assert run.totals(590) == (34544 - 34103, 7046 - 5542)
    assert run.totals(97533) == (376094 - 362028, 1709858 - 1676357)
    if fault[0] == "NETTOP_REPLAY_LONG_LINE":
        assert backend.bad_lines == 1  # the long line, skipped whole: its tail is not a row
