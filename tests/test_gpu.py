"""GPU sampling degrades to one quiet line when there is no usable NVIDIA GPU.

This machine has no GPU, so these are the real failure paths of NVML here: the
library is absent (libnvidia-ml.so not found) or the Python binding is missing.
The per-device and per-process paths need a real GPU; see docs/gpu.md.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import ClassVar

import pytest

from backends.psutil_backend import PsutilBackend
from nettop_ui import collector as collector_module
from nettop_ui.collector import Collector
from nettop_ui.core import TrafficSample
from nettop_ui.gpu import GpuSampler
from nettop_ui.monitor import Tee, monitor
from nettop_ui.tui.tree_run import TreeSource
from nettop_ui.watch import Attached


def test_no_nvml_library_is_one_line_not_an_error() -> None:
    sampler = GpuSampler()
    if sampler.available:  # a machine with a GPU: nothing to check here
        return
    assert sampler.unavailable is not None and sampler.unavailable.startswith("no NVIDIA GPU")
    assert "\n" not in sampler.unavailable
    assert sampler.sample() is None
    sampler.close()


def test_collector_without_gpu_keeps_running() -> None:
    collector = Collector()
    snap = collector.ingest(TrafficSample(time.time(), 0.1, []))
    if snap.gpu is None:
        assert snap.gpu_unavailable and snap.gpu_unavailable.startswith("no NVIDIA GPU")
        assert all(p.gpu_memory_bytes is None for p in snap.processes)


def test_missing_binding_is_explained() -> None:
    code = (
        "import sys; sys.modules['pynvml'] = None\n"
        "from nettop_ui.gpu import GpuSampler\n"
        "print(GpuSampler().unavailable)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "no NVIDIA GPU (nvidia-ml-py not installed)"


class CountingSampler(GpuSampler):
    """The real sampler (NVML really initialised, or really absent), counted."""

    made: ClassVar[list[CountingSampler]] = []

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0
        CountingSampler.made.append(self)

    def close(self) -> None:
        self.closed += 1
        super().close()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountingSampler]:
    CountingSampler.made = []
    monkeypatch.setattr(collector_module, "GpuSampler", CountingSampler)
    return CountingSampler.made


def test_run_tui_source_initialises_nvml_once_and_closes_it(
    counted: list[CountingSampler],
) -> None:
    """`run`/`attach`'s TUI source built its own collector after MonitorSource had built
    one: NVML initialised twice, and neither sampler was ever closed."""
    sleeper = subprocess.Popen(["sleep", "1.5"])
    try:
        source = TreeSource(Attached(sleeper.pid), PsutilBackend(), 0.3)
        frames: list[object] = []
        asyncio.run(source.run(frames.append))  # until the attached process exits
    finally:
        sleeper.kill()
        sleeper.wait()
    assert frames and source.target_exited
    assert [s.closed for s in counted] == [1]


def test_monitor_closes_the_sampler_of_the_collector_it_made(
    counted: list[CountingSampler],
) -> None:
    asyncio.run(monitor(PsutilBackend(), 0.2, Tee(), count=2, handle_signals=False))
    assert [s.closed for s in counted] == [1]
