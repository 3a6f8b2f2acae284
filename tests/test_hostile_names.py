"""Process names and command lines are untrusted: the JSON stream carries them intact,
as valid JSON strings on one ASCII line, whatever bytes they hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HOSTILE_COMM = b"[b]x\x1b[2J\x07\t\n\xff"  # markup, ANSI clear, BEL, tab, newline, bad UTF-8
HOSTILE_ARGS = [
    "[red]markup[/red] [kworker/0:1]",
    "\x1b]0;owned title\x07\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\",
    "line1\nline2\ttab",
    "\u202eevil\u202c bidi",
    "x" * 100_000,
]
CHILD = (
    "import ctypes, sys, time\n"
    f"ctypes.CDLL(None).prctl(15, {HOSTILE_COMM!r}, 0, 0, 0)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_json_keeps_hostile_names_intact() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *HOSTILE_ARGS, os.fsdecode(b"\xfe\xfd-raw")],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout and child.stdout.readline().strip() == b"ready"
        cmd = [sys.executable, "-m", "nettop_ui", "--json", "--backend", "psutil", "--all"]
        res = subprocess.run(
            [*cmd, "--count", "1", "--interval", "0.2"],
            capture_output=True,
            timeout=60,
        )
    finally:
        child.kill()
        child.wait()
    assert res.returncode == 0, res.stderr
    raw_lines = res.stdout.split(b"\n")[:-1]
    assert len(raw_lines) == 2  # meta + one sample: no name broke a line
    for raw in raw_lines:
        raw.decode("ascii")  # nothing but ASCII: no raw escape reaches a terminal
        assert b"\x1b" not in raw and b"\x07" not in raw
    sample = json.loads(raw_lines[1])
    (proc,) = [p for p in sample["processes"] if p["pid"] == child.pid]
    # The kernel keeps 15 bytes of comm; invalid UTF-8 stays visible as \xNN.
    assert proc["name"] == HOSTILE_COMM[:15].decode("utf-8", errors="backslashreplace")
    assert proc["cmdline"][3:8] == HOSTILE_ARGS
    assert proc["cmdline"][8] == "\\xfe\\xfd-raw"
