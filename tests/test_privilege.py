"""Least privilege: the ebpf backend as an unprivileged user with file capabilities only.

docs/security.md tells users who do not want to run nettop-ui as root to give a
dedicated copy of the venv's Python `cap_bpf,cap_perfmon,cap_dac_read_search+ep`.
This test does exactly that and runs nettop-ui as `nobody`: the ebpf backend must load
and count a real client's bytes exactly. Without the capabilities the same command
must refuse with the one-line reason and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netenv import Network, require, require_root, within

ROOT = Path(__file__).resolve().parent.parent
SITE = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"), None)
CAPS = "cap_bpf,cap_perfmon,cap_dac_read_search+ep"
# Not under /tmp: file capabilities do not apply on a nosuid mount.
CAPPED = Path("/usr/local/libexec/nettop-ui-test/python3")


@pytest.fixture(scope="module")
def capped_python() -> Iterator[Path]:
    require_root()
    require(shutil.which("setcap") is not None, "needs setcap (apt install libcap2-bin)")
    require(SITE is not None, "needs the venv (./install.sh --dev)")
    CAPPED.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(sys.executable).resolve(), CAPPED)
    subprocess.run(["setcap", CAPS, str(CAPPED)], check=True)
    yield CAPPED
    shutil.rmtree(CAPPED.parent)


def nobody_cmd(python: Path, *args: str) -> list[str]:
    """`python -m nettop_ui ARGS` as user nobody, with the project and venv importable."""
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    return [*cmd, "env", f"PYTHONPATH={ROOT}:{SITE}", str(python), "-m", "nettop_ui", *args]


def test_ebpf_as_nobody_with_capabilities_counts_exactly(capped_python: Path, net: Network) -> None:
    proc = subprocess.Popen(
        nobody_cmd(capped_python, "--json", "--backend", "ebpf", "--interval", "0.5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        assert proc.stdout is not None
        meta = json.loads(proc.stdout.readline() or "{}")
        assert meta.get("backend") == "ebpf", proc.stderr.read() if proc.stderr else ""
        proc.stdout.readline()  # a first sample: the program is attached
        client = net.client("ntu-capped", "tcp", "v4", up=800_000, down=300_000).wait_done()
        last: dict[str, int] = {}
        for line in proc.stdout:
            found = [p for p in json.loads(line)["processes"] if p["pid"] == client.pid]
            if found and found[0]["sent_bytes"] >= client.sent:
                last = found[0]
                break
        client.finish()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert within(last["sent_bytes"], client.sent, 0.01), (last, client.sent)
    assert within(last["recv_bytes"], client.recv, 0.01), (last, client.recv)


def test_ebpf_without_capabilities_says_what_fixes_it() -> None:
    require_root()
    require(SITE is not None, "needs the venv (./install.sh --dev)")
    cmd = nobody_cmd(Path(sys.executable).resolve(), "--json", "--backend", "ebpf", "--count", "1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "CAP_BPF" in res.stderr and "cap_bpf,cap_perfmon" in res.stderr, res.stderr


def test_tree_of_mostly_unreadable_members_is_unknown_not_zero() -> None:
    """As nobody, attached to a root tree with one member of nobody's own: only that
    member's disk bytes can be read (/proc/PID/io). The tree said `read_bytes: 0`."""
    require_root()
    require(SITE is not None, "needs the venv (./install.sh --dev)")
    as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups"
    tree = subprocess.Popen(
        ["sh", "-c", f"{as_nobody} sleep 30 & sleep 30 & sleep 30 & wait"],
        start_new_session=True,
    )
    try:
        time.sleep(0.5)  # the three children have started
        args = ["attach", str(tree.pid), "--json", "--backend", "psutil", "--interval", "0.3"]
        cmd = nobody_cmd(Path(sys.executable).resolve(), *args, "--duration", "1.5")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        os.killpg(tree.pid, signal.SIGKILL)
        tree.wait()
    assert res.returncode == 0, res.stderr
    last = [r for r in map(json.loads, res.stdout.splitlines()) if r["type"] == "sample"][-1]
    members = last["processes"]
    unreadable = [p for p in members if p["read_bytes"] is None]
    assert len(members) == 4 and len(unreadable) == 3, members  # the premise
    assert last["tree"]["read_bytes"] is None and last["tree"]["write_bytes"] is None
    unknown = last["tree"]["unknown_members"]
    assert (unknown["read_bytes"], unknown["write_bytes"]) == (3, 3)
    assert unknown["sent_bytes"] == 4  # psutil: no member's network bytes are known
    assert "rss_bytes" not in unknown
    assert last["tree"]["rss_bytes"] == sum(p["rss_bytes"] for p in members)  # all readable
