"""`--format denet`: a real recording loads with denet's own loader and report tool."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.netenv import Network, require, require_root, within

LOAD = str(Path(__file__).parent / "treeload.py")
MB = 1024 * 1024


def test_denet_format_loads_in_denet_with_network_bytes(net: Network, tmp_path: Path) -> None:
    require_root()
    try:
        import denet  # a dev dependency: pip install -e '.[dev]'
    except ImportError:
        denet = None
    require(denet is not None, "needs denet (pip install 'denet[report]')")

    out = tmp_path / "run.denet.jsonl"
    load = [sys.executable, LOAD, "--cpu", "1", "--mem", "60", "--send", str(2 * MB)]
    load += ["--to", net.ns_v4, "--port", str(net.ports["tcp4"])]
    res = subprocess.run(
        [sys.executable, "-m", "nettop_ui", "run", "--format", "denet", "--backend", "ebpf",
         "--interval", "0.25", "--output", str(out), "--", *load],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    told = json.loads(res.stdout.splitlines()[-1])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["kind"] == "metadata" and lines[0]["pid"] == told["pid"]
    assert lines[-1] == {**lines[-1], "kind": "exit", "exit_code": 0}
    children = [r for r in lines if r["kind"] == "child"]
    assert [c["pid"] for c in children] == [told["child"]]

    metrics = denet.load_metrics(str(out), include_metadata=True)
    assert metrics[0]["cmd"] == load
    trees = metrics[1:]
    assert trees and all(m["kind"] == "tree" for m in trees)
    last = trees[-1]["aggregated"]
    assert within(last["ebpf"]["network"]["tx_bytes"], told["sent"], 0.01)
    assert within(last["nettop"]["sent_bytes"], told["sent"], 0.01)
    assert last["ebpf"]["network"]["per_pid"][str(told["pid"])]["tx_bytes"] >= 2 * MB
    util = denet.analysis.resource_utilization([m["aggregated"] for m in trees])
    assert util["max_mem_mb"] >= 60
    cpu_s = (
        sum(
            m["aggregated"]["cpu_usage"] * (m["ts_ms"] - prev["ts_ms"]) / 1000
            for prev, m in itertools.pairwise(trees)
        )
        / 100
    )
    assert within(cpu_s, told["cpu_s"], 0.25), (cpu_s, told["cpu_s"])
    assert max(m["aggregated"]["process_count"] for m in trees) == 2

    beside = Path(sys.executable).parent / "denet-report"  # the venv's, even off PATH
    report = str(beside) if beside.exists() else shutil.which("denet-report")
    require(report is not None, "needs denet-report (pip install 'denet[report]')")
    assert report is not None
    svg = tmp_path / "run.svg"
    res = subprocess.run(
        [report, "-f", "svg", "-o", str(svg), str(out)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert svg.read_text().lstrip().startswith("<svg") and "CPU (%)" in svg.read_text()
