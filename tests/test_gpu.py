"""GPU sampling degrades to one quiet line when there is no usable NVIDIA GPU.

This machine has no GPU, so these are the real failure paths of NVML here: the
library is absent (libnvidia-ml.so not found) or the Python binding is missing.
The per-device and per-process paths need a real GPU; see docs/gpu.md.
"""

from __future__ import annotations

import subprocess
import sys
import time

from nettop_ui.collector import Collector
from nettop_ui.core import TrafficSample
from nettop_ui.gpu import GpuSampler


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
