"""macOS paths, exercised on Linux: every module imports with sys.platform = "darwin",
the collector takes its psutil path, and `auto` picks nettop there.

What this cannot show (no Mac here): that Apple's nettop behaves like the captures in
tests/fixtures/nettop, and psutil's macOS implementation itself. See README "Limits".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
FAKEBIN = Path(__file__).parent / "fakebin"

SCRIPT = r"""
import importlib, os, pkgutil, sys, time
import psutil  # psutil picks its platform module at import: load the real one first
import urllib.request  # as "darwin" it would import _scproxy, built only on macOS
sys.platform = "darwin"
import nettop_ui, backends
names = []
for pkg in (nettop_ui, backends):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        names.append(info.name)
assert "backends.ebpf" in names and "backends.nettop" in names, names

from nettop_ui import collector, registry
from nettop_ui.core import TrafficSample
assert not collector.LINUX
c = collector.Collector(gpu=False)
c.ingest(TrafficSample(time.time(), 0.2, []))
snap = c.ingest(TrafficSample(time.time(), 0.2, []))
me = [p for p in snap.processes if p.pid == os.getpid()][0]
assert me.name and me.cmdline and me.rss_bytes, me
assert me.cgroup is None and me.service is None, me  # no cgroups off Linux

status = {s.cls.name: s for s in registry.probe_all("darwin")}
assert status["nettop"].platform_ok and status["nettop"].usable
assert status["psutil"].platform_ok
for linux_only in ("ebpf", "nethogs", "sockdiag"):
    if linux_only in status:
        assert not status[linux_only].platform_ok, linux_only
        assert "linux" in status[linux_only].probe.reason
chosen, why = registry.choose("auto", "darwin")
assert chosen.name == "nettop", chosen
print("ok", len(names))
"""


def test_every_module_imports_and_runs_as_darwin() -> None:
    env = {**os.environ, "PATH": f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("ok")
