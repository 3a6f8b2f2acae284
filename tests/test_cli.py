"""The command line as a user runs it: real subprocesses, real output, real signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.nettop import NettopBackend
from backends.psutil_backend import PsutilBackend
from nettop_ui import cli, registry

CLI = [sys.executable, "-m", "nettop_ui"]
PROCESS_KEYS = {
    "pid", "name", "cmdline", "user", "sent_bytes", "recv_bytes", "sent_bps", "recv_bps",
    "cpu_percent", "rss_bytes", "read_bytes", "write_bytes", "threads", "exited",
}  # fmt: skip


def run(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_list_backends_names_every_backend_with_status() -> None:
    res = run("--list-backends")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for name in ("ebpf", "nethogs", "sockdiag", "psutil"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), out
    assert "auto picks:" in out
    assert res.stderr == ""


def test_json_stream_psutil_backend() -> None:
    res = run("--json", "--backend", "psutil", "--interval", "0.3", "--count", "2")
    assert res.returncode == 0, res.stderr
    meta, *samples = lines(res.stdout)
    assert meta["type"] == "meta" and meta["schema"] == 2 and meta["backend"] == "psutil"
    assert {"layer", "interval_s", "host", "started", "coverage"} <= meta.keys()
    assert meta["coverage"]["per_process"] is False
    assert len(samples) == 2
    for s in samples:
        assert s["type"] == "sample" and isinstance(s["ts"], float)
        assert "unattributed" in s and "processes" in s
        assert "lo" in s["interfaces"]
    procs = [p for s in samples for p in s["processes"]]
    for p in procs:
        assert p.keys() >= PROCESS_KEYS
        # psutil cannot know per-process bytes: null, never 0, never disk I/O.
        assert p["sent_bytes"] is None and p["recv_bytes"] is None and p["sent_bps"] is None


def test_json_all_processes_includes_this_test() -> None:
    res = run("--json", "--backend", "psutil", "--interval", "0.2", "--count", "1", "--all")
    _meta, sample = lines(res.stdout)
    pids = {p["pid"] for p in sample["processes"]}
    assert os.getpid() in pids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_stream_with_final_sample(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [*CLI, "--json", "--backend", "psutil", "--interval", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    meta = json.loads(proc.stdout.readline())
    assert meta["type"] == "meta"
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    (final,) = lines(out)
    assert final["type"] == "sample" and final["interval_s"] < 5
    assert "Traceback" not in err


def test_duration_ends_stream() -> None:
    start = time.monotonic()
    res = run("--json", "--backend", "psutil", "--interval", "0.4", "--duration", "1.0")
    assert res.returncode == 0
    assert time.monotonic() - start < 15
    samples = [r for r in lines(res.stdout) if r["type"] == "sample"]
    assert 2 <= len(samples) <= 4


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--interval", "-1"], "must be a positive number"),
        (["--interval", "abc"], "not a number"),
        (["--count", "0"], "must be positive"),
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--units", "furlongs"], "argument --units: invalid choice: 'furlongs'"),
        (["--json", "--backend", "psutil", "--filter", "port:http2x"], "port:http2x: not a port"),
        (["--headless", "--prometheus", "0", "--filter", "x"], "--filter applies to the TUI"),
        (["--duration", "1", "--count", "2"], "not allowed with"),
        (["--json", "--backend", "psutil", "--output", "/nonexistent/x.jsonl"], "cannot write"),
        (["--backend", "psutil", "--count", "1", "--output", ""], "empty file name"),
        (["--json", "--backend", "psutil", "--count", "1", "--interval", "1e-9"], "at least"),
        (["--json", "--backend", "psutil", "--count", "\u0663"], "not a whole number"),
        (["--json", "--backend", "psutil", "--duration", "\u0661"], "not a number"),
        (["--headless", "--backend", "psutil", "--count", "1",
          "--prometheus", "\u0669\u0661\u0660\u0660"], "the port must be a number"),
        (["run", "--backend", "psutil", "--output", "", "--", "true"], "empty file name"),
        (["run", "--backend", "psutil", "--json", "--interval", "1e-9", "--", "true"], "at least"),
        (["run", "--json", "--max-interval", "1e-9", "--", "true"], "at least"),
        (["attach", "--json", "--duration", "0.5", "\u0661"], "not a whole number"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(args: list[str], needle: str) -> None:
    res = run(*args, timeout=20)
    assert res.returncode != 0
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    prog = "nettop-ui " + args[0] if args[0] in ("run", "attach") else "nettop-ui"
    assert needle in err and err.startswith(f"{prog}: error:"), err
    assert "Traceback" not in err


def test_output_file_is_written_safely(tmp_path: Path) -> None:
    target = tmp_path / "rec.jsonl"
    res = run(
        "--backend", "psutil", "--interval", "0.2", "--count", "2", "--output", str(target),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        preexec_fn=lambda: os.umask(0),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    records = lines(target.read_text())
    assert [r["type"] for r in records] == ["meta", "sample", "sample"]
    mode = stat.S_IMODE(target.stat().st_mode)
    assert not mode & stat.S_IWOTH, oct(mode)


def test_output_refuses_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "rec.jsonl"
    link.symlink_to(victim)
    res = run("--json", "--backend", "psutil", "--count", "1", "--output", str(link))
    assert res.returncode != 0
    assert "symlink" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert victim.read_text() == "precious"


NOBODY = 65534


@pytest.fixture
def unprotected_symlinks() -> Iterator[None]:
    """fs.protected_symlinks=0, as on systems without that kernel guard; restored after."""
    from tests.netenv import require_root

    require_root()
    knob = Path("/proc/sys/fs/protected_symlinks")
    before = knob.read_text()
    knob.write_text("0")
    try:
        yield
    finally:
        knob.write_text(before)


@pytest.mark.usefixtures("unprotected_symlinks")
def test_output_refuses_a_directory_symlink_planted_by_another_user(tmp_path: Path) -> None:
    """A world-writable sticky directory where `nobody` planted `nettop -> a root-only
    directory`: root's `--output shared/nettop/run.jsonl` must not reach through it."""
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    precious = private / "run.jsonl"
    precious.write_text("precious")
    precious.chmod(0o600)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "nettop").symlink_to(private)
    os.lchown(shared / "nettop", NOBODY, NOBODY)
    res = run("--json", "--backend", "psutil", "--count", "1",
              "--output", "shared/nettop/run.jsonl", cwd=tmp_path)  # fmt: skip
    assert res.returncode != 0
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "symlink" in err and "another user" in err, err
    assert precious.read_text() == "precious"
    # The user's own symlinked directory is followed as before.
    (shared / "mine").symlink_to(private)
    res = run("--backend", "psutil", "--count", "1", "--output", "shared/mine/new.jsonl",
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert lines((private / "new.jsonl").read_text())[0]["type"] == "meta"


def test_output_refuses_a_file_another_user_owns(tmp_path: Path) -> None:
    from tests.netenv import require_root

    require_root()
    theirs = tmp_path / "run.jsonl"
    theirs.write_text("theirs")
    os.chown(theirs, NOBODY, NOBODY)
    res = run("--json", "--backend", "psutil", "--count", "1", "--output", str(theirs))
    assert res.returncode != 0
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "another user" in err, err
    assert theirs.read_text() == "theirs" and theirs.stat().st_uid == NOBODY


def test_output_refuses_a_hard_link_to_another_file(tmp_path: Path) -> None:
    """A second name for a file elsewhere (planted where protected_hardlinks is off)
    is not truncated, even when the user owns the file."""
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    precious = private / "shadow"
    precious.write_text("precious")
    os.link(precious, tmp_path / "run.jsonl")
    res = run("--json", "--backend", "psutil", "--count", "1",
              "--output", str(tmp_path / "run.jsonl"))  # fmt: skip
    assert res.returncode != 0
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "hard link" in err, err
    assert precious.read_text() == "precious"


def test_broken_pipe_is_quiet() -> None:
    """`--json | head -1`: the reader went away; that is a normal end, exit 0, no word."""
    proc = subprocess.Popen(
        [*CLI, "--json", "--backend", "psutil", "--interval", "0.1", "--count", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert json.loads(first)["type"] == "meta"
    assert err == ""


def test_list_backends_without_root_says_what_fixes_each() -> None:
    from tests.netenv import require_root

    require_root()  # to become an unprivileged user
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *CLI, "--list-backends"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd(), "HOME": "/tmp"},
    )
    assert res.returncode == 0, res.stderr
    blocks: dict[str, str] = {}
    for line in res.stdout.splitlines():
        if line[:1].strip():
            name = line.split()[0]
        blocks[name] = blocks.get(name, "") + line + "\n"
    assert "unavailable" in blocks["ebpf"] and "CAP_BPF" in blocks["ebpf"]
    assert "unavailable" in blocks["nethogs"] and "fix:" in blocks["nethogs"]
    assert "setcap cap_net_admin,cap_net_raw+ep" in blocks["nethogs"]
    assert "your own processes" in blocks["sockdiag"]
    assert "auto picks: sockdiag" in res.stdout


@pytest.fixture
def dying_auto_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--backend auto` picks nettop, as on macOS, and it dies mid-run for good: the
    stand-in replays real captured macOS output, then exits every time it is restarted.
    Its fallback is psutil."""
    fixtures = Path(__file__).parent / "fixtures" / "nettop"
    capture = fixtures / "nettop_L1_J_noP_resolved_macos26_netglass.csv"
    monkeypatch.setenv(
        "PATH", f"{Path(__file__).parent / 'fakebin'}{os.pathsep}{os.environ['PATH']}"
    )
    monkeypatch.setenv("NETTOP_REPLAY", str(capture))
    monkeypatch.setenv("NETTOP_REPLAY_EXIT", "1")
    choose = registry.choose
    monkeypatch.setattr(
        registry,
        "choose",
        lambda name: (NettopBackend, "auto on macOS") if name == "auto" else choose(name),
    )
    monkeypatch.setattr(registry, "fallbacks_after", lambda cls: [PsutilBackend])


@pytest.mark.usefixtures("dying_auto_backend")
def test_json_stream_records_the_switch_to_the_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json --backend auto`: the backend dies mid-run for good, the next one takes
    over, an event line records the switch, stderr says it in one line, exit 0."""
    out = tmp_path / "stream.jsonl"
    assert cli.main(["--json", "--interval", "0.5", "--duration", "12", "--output", str(out)]) == 0
    records = lines(out.read_text())
    events = [r for r in records if r["type"] == "event"]
    assert len(events) == 1, events
    assert events[0]["event"] == "backend_failed"
    assert (events[0]["backend"], events[0]["fallback"]) == ("nettop", "psutil")
    after = records[records.index(events[0]) + 1 :]
    assert len(after) >= 2 and all(r["type"] == "sample" for r in after)
    err = capsys.readouterr().err
    assert "backend nettop failed" in err and "continuing with psutil" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("dying_auto_backend")
def test_count_counts_samples_not_the_switch(tmp_path: Path) -> None:
    """`--count N` gives N samples, however many backends it took."""
    out = tmp_path / "stream.jsonl"
    assert cli.main(["--json", "--interval", "0.5", "--count", "12", "--output", str(out)]) == 0
    records = lines(out.read_text())
    assert [r["event"] for r in records if r["type"] == "event"] == ["backend_failed"]
    assert sum(r["type"] == "sample" for r in records) == 12


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "rec.jsonl"
    res = run("run", "--backend", "psutil", "--interval", "0.2", "--output", str(out), "--", "true")
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("closed", ["stdin", "stdout"])
@pytest.mark.parametrize("command", ["top", "run", "attach", "replay", "replay-db"])
def test_a_closed_stdin_or_stdout_is_one_clear_line(
    closed: str, command: str, recording: Path
) -> None:
    """The other of the two is a real terminal (a pty), as when a user types `<&-`/`>&-`."""
    args = {
        "top": ["--backend", "psutil"],
        "run": ["run", "--backend", "psutil", "--", "sleep", "30"],
        "attach": ["attach", str(os.getpid()), "--backend", "psutil"],
        "replay": ["replay", str(recording)],
        "replay-db": ["replay", "--db", str(recording.with_name("history.db"))],
    }[command]
    master, tty = os.openpty()
    fd = 0 if closed == "stdin" else 1
    try:
        res = subprocess.run(
            ["sh", "-c", f'exec "$@" {fd}>&-', "sh", *CLI, *args],
            stdin=tty,
            stdout=tty,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(tty)
        os.close(master)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("nettop-ui: error: the TUI needs a terminal"), res.stderr
    assert f"{closed} is closed" in res.stderr


def test_a_closed_stdin_off_a_terminal_is_no_error() -> None:
    """`<&-` with stdout a pipe: no TUI was wanted, so the one-shot table as usual."""
    res = subprocess.run(
        ["sh", "-c", 'exec "$@" 0>&-', "sh", *CLI, "--backend", "psutil", "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout and not res.stderr


# Loaded on the TUI's way to its first frame only when needed: the subcommands (run,
# attach, summary, replay) and the drill-down's charts (plotext).
LATER = ["nettop_ui.jobs", "nettop_ui.watch", "nettop_ui.summary", "nettop_ui.denet_format"]
LATER += ["textual_plotext", "plotext"]


def test_the_tui_starts_without_loading_the_subcommands_or_the_charts() -> None:
    """A fresh interpreter imports what `nettop-ui` imports to start the TUI; none of
    LATER is loaded (together they cost the first frame about 80 ms of CPU), while a
    subcommand still loads its own (the drill-down's charts: tests/test_tui_snapshots)."""
    code = (
        "import sys\n"
        "import nettop_ui.cli\n"
        "from nettop_ui.tui import run_tui\n"
        f"print(sorted(m for m in {LATER!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert "usage" in run("summary", "--help").stdout  # the subcommand still loads
