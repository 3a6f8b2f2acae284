"""backends/child.py with real child processes: lines and quiet gaps, a silent child
failing, an over-long line skipped whole, a stderr flood drained, and ending children
that ignore SIGTERM or are stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from backends.child import Child, ChildStalled, stop
from nettop_ui.core import BackendError

LIMIT = 1 << 16


async def sh(script: str, limit: int = LIMIT) -> Child:
    return await Child.start(["sh", "-c", script], limit=limit)


async def collect(child: Child, quiet_s: float = 0.2) -> list[str | None]:
    return [line async for line in child.lines(quiet_s)]


async def ready(child: Child) -> None:
    """Wait for the child's first line, `ready`: it has set itself up."""
    async for line in child.lines(5):
        assert line == "ready\n"
        return


async def test_lines_with_a_quiet_gap_then_the_exit_reason() -> None:
    child = await sh("echo a; echo b; sleep 0.5; printf c; echo last >&2; exit 3")
    lines = await collect(child)
    assert lines[:2] == ["a\n", "b\n"] and lines[-1] == "c"  # no newline: still a line
    assert None in lines[2:-1]  # the pause
    assert await child.exit_reason() == "last"
    assert child.returncode == 3
    quiet = await sh("exit 4")
    assert await collect(quiet) == [] and await quiet.exit_reason() == "exit status 4"


async def test_a_silent_child_is_a_failure_past_the_limit() -> None:
    child = await sh("echo ready; exec sleep 30")
    await ready(child)
    child.check_silence(1.0)  # it has just printed
    async for line in child.lines(0.1):
        assert line is None  # a quiet gap, reported
        break
    await asyncio.sleep(1.0)
    with pytest.raises(ChildStalled, match=r"^sh printed nothing for \d+ s: why$"):
        child.check_silence(1.0, ": why")
    await child.terminate()
    assert child.returncode == -signal.SIGTERM


async def test_an_overlong_line_is_skipped_whole() -> None:
    child = await sh("echo a; head -c 5000 /dev/zero | tr '\\0' x; echo; echo b", limit=1024)
    assert [line for line in await collect(child) if line is not None] == ["a\n", "b\n"]
    assert child.overlong == 1


async def test_a_stderr_flood_does_not_block_the_child() -> None:
    # 1.6 MB on stderr, far more than a pipe holds: undrained, the child would block
    # before it printed `done`.
    child = await sh("yes warning | head -n 200000 >&2; echo done; echo 'last words' >&2")
    lines = await asyncio.wait_for(collect(child), 30)
    assert [line for line in lines if line is not None] == ["done\n"]
    assert await child.exit_reason() == "last words"
    assert list(child.stderr)[-2:] == ["warning", "last words"]


async def test_exit_reason_names_the_signal() -> None:
    child = await sh("echo oops >&2; kill -9 $$")
    await collect(child)
    assert await child.exit_reason() == "killed by SIGKILL (last stderr line: oops)"


async def test_terminate_kills_a_child_that_ignores_sigterm_after_the_grace() -> None:
    child = await sh("trap '' TERM; echo ready; while :; do sleep 0.1; done")
    await ready(child)
    started = time.monotonic()
    await child.terminate(grace_s=1.0)
    assert 1.0 <= time.monotonic() - started < 5
    assert child.returncode == -signal.SIGKILL
    assert not os.path.exists(f"/proc/{child.pid}")  # reaped, not a zombie


async def test_terminate_ends_a_stopped_child_promptly() -> None:
    child = await sh("echo ready; exec sleep 30")
    await ready(child)
    os.kill(child.pid, signal.SIGSTOP)
    started = time.monotonic()
    await child.terminate(grace_s=10)
    assert time.monotonic() - started < 5  # SIGCONT let it act on SIGTERM, no kill needed
    assert child.returncode == -signal.SIGTERM
    assert not os.path.exists(f"/proc/{child.pid}")
    await child.terminate()  # again: nothing left to do


async def test_a_missing_program_is_a_clear_backend_error() -> None:
    with pytest.raises(BackendError, match=r"^cannot run /nonexistent/helper: No such file"):
        await Child.start(["/nonexistent/helper"], limit=LIMIT)


async def test_stop_ends_the_child_even_if_its_reader_misses_the_cancel() -> None:
    """A backend's close (`stop`) cancels its line reader and ends the child. Python
    3.11's wait_for could lose a cancel that landed as its timeout fired, and the reader
    read on until the child next printed: nethogs, which prints nothing for its first
    seconds, made a quit in the TUI's first second take 3 s. The reader here misses the
    cancel on purpose; `stop` must still return at once, the child's end closing the
    pipe under the reader."""
    child = await sh("exec sleep 60")

    async def deaf_reader() -> None:
        while True:
            try:
                async for _ in child.lines(0.05):
                    pass
                return  # stdout ended
            except asyncio.CancelledError:
                continue  # as the lost cancel: read on

    reader = asyncio.ensure_future(deaf_reader())
    await asyncio.sleep(0.2)
    start = time.monotonic()
    stopping = asyncio.ensure_future(stop(child, reader))
    done, _ = await asyncio.wait({stopping}, timeout=5)
    took = time.monotonic() - start
    if not done:  # clean up: the child's end lets the reader, then `stop`, finish
        await child.terminate(0.1)
        await stopping
    assert done and took < 1.0, f"stop took {took:.1f} s"
    assert reader.done() and child.returncode == -signal.SIGTERM
