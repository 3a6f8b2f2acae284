"""nettop_ui.api's analysis utilities, side by side with denet 0.10.3's own, on real runs.

A real process tree (tests/treeload.py: two processes burning CPU, one holding
memory, real bytes sent into the test namespace) is recorded by nettop-ui; denet's
functions and ours are called on the same input and must give the same results,
exactly. The same run read as our recording, as our in-memory records and as its
denet-format file must give the same results too.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from nettop_ui import api
from nettop_ui.denet_format import DenetConverter
from nettop_ui.jsonl import JsonlWriter
from tests.netenv import Network, require, require_root

LOAD = str(Path(__file__).parent / "treeload.py")
MB = 1024 * 1024
Metrics = list[dict[str, Any]]
ANALYSES = ("aggregate_metrics", "find_peaks", "resource_utilization", "process_tree_analysis")
FORMATS = ("csv", "json", "jsonl")


@pytest.fixture
def denet() -> ModuleType:
    try:
        return importlib.import_module("denet.analysis")  # a dev dependency: '.[dev]'
    except ImportError:
        require(False, "needs denet (pip install -e '.[dev]')")
        raise


def _workload(net: Network) -> list[str]:
    load = [sys.executable, LOAD, "--cpu", "1", "--mem", "60", "--hold", "0.5"]
    return [*load, "--send", str(2 * MB), "--to", net.ns_v4, "--port", str(net.ports["tcp4"])]


def _calls(metrics: Metrics) -> list[tuple[str, tuple[Any, ...]]]:
    """Every analysis, with its defaults and with other arguments."""
    calls: list[tuple[str, tuple[Any, ...]]] = [(name, (metrics,)) for name in ANALYSES]
    for window in (0, 1, 3, 7):
        calls += [("aggregate_metrics", (metrics, window, m)) for m in ("mean", "max", "min", "x")]
    for field in ("cpu_usage", "mem_rss_kb", "thread_count", "ts_ms", "uptime_secs"):
        for threshold, window in ((0.0, 1), (0.5, 3), (0.8, 5), (0.0, 4)):
            calls.append(("find_peaks", (metrics, field, threshold, window)))
    calls += [("convert_format", (metrics, fmt)) for fmt in FORMATS]
    calls.append(("convert_format", (metrics, "json", 2)))
    return calls


def _views(trees: Metrics, top: int) -> dict[str, Metrics]:
    """The tree records as denet reads them, their parts as flat metrics, and each
    tick as the flat records with `pid` and flat `children` that denet's
    process_tree_analysis reads (`processes`), or as one record per process
    (`members`: children first, so the first record and the last are of different
    processes)."""

    def flat(m: dict[str, Any]) -> Metrics:
        return [
            {**m["parent"], "pid": top},
            *({**c["metrics"], "pid": c["pid"]} for c in m["children"]),
        ]

    ticks = [m for m in trees if m["parent"]]
    return {
        "tree": trees,
        "aggregated": [m["aggregated"] for m in trees],
        "parent": [m["parent"] for m in ticks],
        "child": [c["metrics"] for m in trees for c in m["children"]],
        "processes": [{**flat(m)[0], "children": flat(m)[1:]} for m in ticks],
        "members": [{**r, "children": []} for m in ticks for r in flat(m)[::-1]],
    }


def _side_by_side(denet: ModuleType, metrics: Metrics) -> dict[tuple[str, str], Any]:
    """Each call on `metrics` to denet and to us: the same result, the same types
    and key order. Returns ours, by call."""
    results = {}
    for name, args in _calls(metrics):
        theirs, ours = getattr(denet, name)(*args), getattr(api, name)(*args)
        assert repr(ours) == repr(theirs), (name, args[1:])
        results[(name, repr(args[1:]))] = ours
    return results


def _check_beside_denet(denet: ModuleType, path: Path, top: int, tmp_path: Path) -> Metrics:
    """Every function on a denet-format file of ours, as denet's: its tree records."""
    for meta in (False, True):
        assert api.load_metrics(str(path), meta) == denet.load_metrics(str(path), meta)
    trees = api.load_metrics(str(path))
    assert len(trees) >= 10 and {m["kind"] for m in trees} == {"tree"}
    for fmt in FORMATS:
        assert api.convert_format(str(path), fmt) == denet.convert_format(str(path), fmt)

    peaks = []
    for view, metrics in _views(trees, top).items():
        results = _side_by_side(denet, metrics)
        peaks += [r for (name, _), r in results.items() if name == "find_peaks" and r]
        assert results[("resource_utilization", "()")], view
    assert peaks  # find_peaks found something to agree on, not only []

    # save_metrics, in every format, writes what denet writes, and loads back the same
    for fmt in FORMATS:
        for meta in (False, True):
            ours, theirs = tmp_path / f"ours.{fmt}", tmp_path / f"theirs.{fmt}"
            api.save_metrics(trees, str(ours), fmt, meta)
            denet.save_metrics(trees, str(theirs), fmt, meta)
            assert _no_clock(ours) == _no_clock(theirs), (fmt, meta)
            if fmt != "csv":
                loaded = api.load_metrics(str(ours), meta)
                assert loaded == denet.load_metrics(str(ours), meta)
                assert loaded[-1] == trees[-1]
    return trees


def test_analysis_matches_denet_on_a_real_run(
    net: Network, tmp_path: Path, denet: ModuleType
) -> None:
    require_root()
    out = tmp_path / "run.denet.jsonl"
    res = subprocess.run(
        [sys.executable, "-m", "nettop_ui", "run", "--format", "denet", "--backend", "ebpf",
         "--interval", "0.1", "--output", str(out), "--", *_workload(net)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    told = json.loads(res.stdout.splitlines()[-1])
    trees = _check_beside_denet(denet, out, told["pid"], tmp_path)

    # what the figures say about the run: the tree's memory, its child, its bytes
    util = api.resource_utilization([m["aggregated"] for m in trees])
    assert util["max_mem_mb"] >= 60 and util["total_time_sec"] > 1
    assert list(api.process_tree_analysis(trees)["child_processes"]) == [told["child"]]
    per_process = api.process_tree_analysis(_views(trees, told["pid"])["processes"])
    assert list(per_process["child_processes"]) == [told["child"]]
    assert per_process["child_processes"][told["child"]]["max_memory_mb"] >= 60
    assert per_process["main_process"]["max_cpu"] > 0  # it burnt a core for a second
    assert trees[-1]["aggregated"]["ebpf"]["network"]["tx_bytes"] >= told["sent"]


def _no_clock(path: Path) -> list[Any]:
    """The file's lines, the metadata line's `t0_ms` (when it was written) left out."""
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith('{"pid"'):
        lines[0] = json.dumps({**json.loads(lines[0]), "t0_ms": None})
    return lines


def _as_denet_file(recording: Path, out: Path) -> None:
    """The denet-format file of a recording: its records through the writer that
    `--format denet` uses (nettop_ui.jobs)."""
    with out.open("w") as f:
        convert = DenetConverter(JsonlWriter(f).write)
        for line in recording.read_text().splitlines():
            convert(json.loads(line))


def _backend_unknown(trees: Metrics) -> Metrics:
    """What samples without their `meta` line know: not the backend or its layer."""
    nettop = {"backend": None, "layer": None}
    return [
        {**m, "aggregated": {**m["aggregated"], "nettop": {**m["aggregated"]["nettop"], **nettop}}}
        for m in trees
    ]


def _held_tree(load: list[str]) -> subprocess.Popen[str]:
    """A script with a child from the start, that runs `load` once told "go" on stdin."""
    script = "import subprocess, sys\n"
    script += "held = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],"
    script += " stdin=subprocess.PIPE)\n"
    script += f"sys.stdin.readline()\nsubprocess.run({load!r})\nheld.stdin.close()\nheld.wait()\n"
    cmd = [sys.executable, "-c", script]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_recording_records_and_denet_file_of_one_attach_agree(
    net: Network, tmp_path: Path, denet: ModuleType
) -> None:
    require_root()
    recording, denet_file = tmp_path / "attach.jsonl", tmp_path / "attach.denet.jsonl"
    target = _held_tree(_workload(net))
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(target.pid).children() and time.monotonic() < deadline:
            time.sleep(0.01)
        mon = api.ProcessMonitor(
            pid=target.pid, backend="ebpf", interval_s=0.1, output=str(recording)
        ).start()
        next(iter(mon))  # sampling has started: let the workload go
        assert target.stdin is not None
        target.stdin.write("go\n")
        target.stdin.flush()
        mon.wait()
        told = json.loads(target.communicate(timeout=60)[0])
    finally:
        target.kill()
        target.wait()
    assert mon.failure is None and len(mon.samples[0]["processes"]) == 2
    assert max(s["tree"]["processes"] for s in mon.samples) == 4  # + treeload and its child
    _as_denet_file(recording, denet_file)
    trees = _check_beside_denet(denet, denet_file, target.pid, tmp_path)
    assert trees[-1]["aggregated"]["ebpf"]["network"]["tx_bytes"] >= told["sent"]

    assert len(trees) == len(mon.samples)
    for meta in (False, True):
        assert api.load_metrics(str(recording), meta) == api.load_metrics(str(denet_file), meta)
    for fmt in FORMATS:
        assert api.convert_format(str(recording), fmt) == api.convert_format(str(denet_file), fmt)

    # in memory: every record of the run (meta first), and the samples alone
    unknown = _backend_unknown(trees)
    assert unknown != trees
    for name, args in _calls(trees):
        call = getattr(api, name)
        assert call(mon.records, *args[1:]) == call(*args), ("records", name, args[1:])
        assert call(mon.samples, *args[1:]) == call(unknown, *args[1:]), ("samples", name)


def _recorded(tmp_path: Path, fmt: str) -> Path:
    """A short real `run` (psutil: no root) recorded in `fmt`."""
    out = tmp_path / f"run.{fmt}.jsonl"
    res = subprocess.run(
        [sys.executable, "-m", "nettop_ui", "run", "--format", fmt, "--backend", "psutil",
         "--interval", "0.1", "--output", str(out), "--", "sleep", "0.5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


def test_bad_input_raises_clear_errors(tmp_path: Path, denet: ModuleType) -> None:
    missing = str(tmp_path / "missing.jsonl")
    for load in (api.load_metrics, api.convert_format):
        with pytest.raises(FileNotFoundError):
            load(missing)

    for fmt, where in (("denet", "line 3: not JSON"), ("nettop", "stopped at line 3: not JSON")):
        whole = _recorded(tmp_path, fmt).read_text().splitlines(keepends=True)
        assert len(whole) >= 5
        cut = tmp_path / f"cut-{fmt}.jsonl"
        cut.write_text("".join(whole[:2]) + whole[2][: len(whole[2]) // 2] + "\n" + whole[3])
        for read in (api.load_metrics, api.convert_format):
            with pytest.raises(api.MetricsError) as caught:
                read(str(cut))
            message = str(caught.value)
            assert message.startswith(f"{cut}: {where}") and "\n" not in message
        with pytest.raises(ValueError):  # denet fails on it too
            denet.load_metrics(str(cut))

    not_metrics = tmp_path / "table.csv"
    not_metrics.write_text("ts_ms,cpu_usage\n1,2\n")
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)))
    numbers = tmp_path / "numbers.json"
    numbers.write_text("[1, 2]")
    for path, why in ((not_metrics, "line 1: not JSON"), (binary, "not a metrics file"),
                      (numbers, "not a JSON object")):  # fmt: skip
        with pytest.raises(api.MetricsError, match=why):
            api.load_metrics(str(path))

    metrics = api.load_metrics(str(_recorded(tmp_path, "denet")))
    kept = tmp_path / "kept.jsonl"
    kept.write_text("what the user recorded\n")
    for call in (
        lambda: api.convert_format(metrics, "xml"),
        lambda: api.save_metrics(metrics, str(kept), "xml"),
    ):
        with pytest.raises(ValueError, match="Unknown format: xml"):
            call()
    assert kept.read_text() == "what the user recorded\n"
