"""nettop_ui/gpu.py's per-device and per-process NVML code, run on real machines' answers.

tests/fake_nvml.py stands in for pynvml and answers from real `nvidia-smi -q -x` dumps
(tests/fixtures/nvidia-smi/README.md says whose). Every figure the tests expect is read
from the dump itself, so a test fails if gpu.py drops, mislabels or makes up a value.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from nettop_ui.collector import Collector, Snapshot
from nettop_ui.core import TrafficSample
from nettop_ui.gpu import GpuDevice, GpuSampler
from tests.fake_nvml import (
    A100_MIG,
    ALL_DUMPS,
    MIB,
    RTX_3080,
    TESLA_M10,
    TESLA_T4,
    FakeNvml,
    dump_gpus,
    mig_devices,
    number,
    processes,
)


def install(
    monkeypatch: pytest.MonkeyPatch, *dumps: Path, pids: dict[int, int] | None = None
) -> FakeNvml:
    """Make `import pynvml` (in gpu.py) find the stand-in for these dumps."""
    fake = FakeNvml(*dumps, pids=pids)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def figure(text: str | None) -> float | None:
    """The dump's figure, or None where it says N/A (unknown)."""
    try:
        return number(text)
    except pynvml.NVMLError_NotSupported:
        return None


def mib(text: str | None) -> int:
    """A dump's memory figure ("19968 MiB") in bytes."""
    return int(number(text)) * MIB


def power_of(gpu: ET.Element) -> float | None:
    for path in ("gpu_power_readings/power_draw", "power_readings/power_draw"):
        if gpu.find(path) is not None:
            return figure(gpu.findtext(path))
    return None


def by_index(devices: list[GpuDevice]) -> dict[str, GpuDevice]:
    return {d.index: d for d in devices}


@pytest.fixture
def sampler() -> Iterator[list[GpuSampler]]:
    made: list[GpuSampler] = []
    yield made
    for s in made:
        s.close()


@pytest.mark.parametrize("dump", ALL_DUMPS, ids=lambda p: p.stem)
def test_each_dump_gives_its_devices(
    dump: Path, monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    install(monkeypatch, dump)
    sampler.append(s := GpuSampler())
    assert s.available, s.unavailable
    stats = s.sample()
    assert stats is not None and stats.error is None
    devices = by_index(stats.devices)
    for i, gpu in enumerate(dump_gpus(dump)):
        dev = devices[str(i)]
        assert dev.name == gpu.findtext("product_name")
        assert dev.mem_total == mib(gpu.findtext("fb_memory_usage/total"))
        assert dev.mem_used == mib(gpu.findtext("fb_memory_usage/used"))
        assert dev.util_percent == figure(gpu.findtext("utilization/gpu_util"))
        assert dev.mem_util_percent == figure(gpu.findtext("utilization/memory_util"))
        assert dev.temperature_c == figure(gpu.findtext("temperature/gpu_temp"))
        assert dev.power_w == power_of(gpu)
        assert dev.sm_clock_mhz == figure(gpu.findtext("clocks/sm_clock"))
        assert dev.mem_clock_mhz == figure(gpu.findtext("clocks/mem_clock"))
    mig_count = sum(len(mig_devices(g)) for g in dump_gpus(dump))
    assert len(stats.devices) == len(dump_gpus(dump)) + mig_count


def test_mig_instances_are_devices_of_their_own(
    monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    """The A100's four MIG devices are listed as 0/<index>, each with its own memory, and
    what the dump does not say about them (name, temperature, utilisation) is unknown.
    Before: NVML's NOT_SUPPORTED for a MIG device's name dropped every MIG device and
    left 'GPU 0/3: NVML: Not Supported' as the GPU error."""
    install(monkeypatch, A100_MIG)
    sampler.append(s := GpuSampler())
    stats = s.sample()
    assert stats is not None and stats.error is None
    (gpu,) = dump_gpus(A100_MIG)
    migs = mig_devices(gpu)
    assert len(migs) == 4
    assert [d.index for d in stats.devices] == ["0"] + [f"0/{m.findtext('index')}" for m in migs]
    devices = by_index(stats.devices)
    for mig in migs:
        dev = devices[f"0/{mig.findtext('index')}"]
        assert dev.mem_total == mib(mig.findtext("fb_memory_usage/total"))
        assert dev.mem_used == mib(mig.findtext("fb_memory_usage/used"))
        assert (dev.name, dev.temperature_c, dev.util_percent, dev.power_w) == (None,) * 4


def test_not_available_is_unknown_not_zero(
    monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    """The MIG-enabled A100 says <gpu_util>N/A</gpu_util>: unknown (None), not 0%."""
    (gpu,) = dump_gpus(A100_MIG)
    assert gpu.findtext("utilization/gpu_util") == "N/A"
    assert gpu.findtext("utilization/memory_util") == "N/A"
    install(monkeypatch, A100_MIG)
    sampler.append(s := GpuSampler())
    stats = s.sample()
    assert stats is not None
    whole = by_index(stats.devices)["0"]
    assert whole.util_percent is None and whole.mem_util_percent is None
    assert whole.temperature_c is not None  # what the dump does say is there
    assert stats.process_sm_percent == {}  # nvidia-smi prints no per-process SM use


@pytest.mark.parametrize("dump", [RTX_3080, TESLA_T4], ids=lambda p: p.stem)
def test_process_memory_joined_to_its_pid(
    dump: Path, monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    install(monkeypatch, dump)
    sampler.append(s := GpuSampler())
    stats = s.sample()
    assert stats is not None
    (gpu,) = dump_gpus(dump)
    want = {p.pid: p.used_bytes for p in processes(gpu)}
    assert want and all(want.values())
    assert stats.process_memory == want
    assert stats.process_memory_by_device == {"0": want}


def test_compute_and_graphics_processes_both_count(
    monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    (gpu,) = dump_gpus(TESLA_T4)
    assert {p.type for p in processes(gpu)} == {"C", "G"}
    fake = install(monkeypatch, TESLA_T4)
    sampler.append(s := GpuSampler())
    stats = s.sample()
    assert stats is not None
    for p in processes(gpu):
        assert stats.process_memory[p.pid] == p.used_bytes, p
    assert "nvmlDeviceGetComputeRunningProcesses" in fake.calls
    assert "nvmlDeviceGetGraphicsRunningProcesses" in fake.calls


def test_a_process_with_compute_and_graphics_contexts_counts_once(
    monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    """A Tesla M10 vGPU host's four GPUs each run two C+G processes, which NVML lists
    both as compute and as graphics processes, each time with the process's memory on
    the device. Before: the two were summed, so each process held twice its memory and
    a GPU's processes more than it has in use (2 x 2 x 4064 MiB on an 8191 MiB GPU)."""
    gpus = dump_gpus(TESLA_M10)
    dumped = [p for gpu in gpus for p in processes(gpu)]
    assert dumped and {p.type for p in dumped} == {"C+G"}
    install(monkeypatch, TESLA_M10)
    sampler.append(s := GpuSampler())
    stats = s.sample()
    assert stats is not None and stats.error is None
    assert stats.process_memory == {p.pid: p.used_bytes for p in dumped}
    devices = by_index(stats.devices)
    for i, gpu in enumerate(gpus):
        on_gpu = stats.process_memory_by_device[str(i)]
        assert on_gpu == {p.pid: p.used_bytes for p in processes(gpu)}
        used = devices[str(i)].mem_used  # no more than the GPU has in use
        assert used is not None and sum(on_gpu.values()) <= used


@pytest.mark.parametrize(
    "refused",
    [None, ("mig", pynvml.NVML_ERROR_NOT_SUPPORTED), ("gpu", pynvml.NVML_ERROR_NO_PERMISSION)],
    ids=["both-answer", "mig-handles-unsupported", "whole-gpu-refused"],
)
def test_a_mig_process_counts_once_on_its_instance(
    refused: tuple[str, int] | None, monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    """The T4's compute process (a real record) runs in the A100's MIG device 1; the
    placement is the test's, as no public dump shows MIG with processes. NVML lists it
    on the whole GPU (the aggregate a privileged caller gets) and on MIG device 1 (its
    own), unless one of them does not answer: MIG handles in vGPU host mode, the whole
    GPU to an unprivileged caller. Every way, its memory counts once, on 0/1.
    Before: both answering counted it twice (on 0 and on 0/1); with only the whole GPU
    answering it sat on GPU 0, not on its instance."""
    fake = install(monkeypatch, A100_MIG)
    python = next(p for p in processes(dump_gpus(TESLA_T4)[0]) if p.type == "C")
    assert python.used_bytes
    fake.run_in_instance(python, gpu=0, mig_index=1)
    fake.nvmlInit()  # the premise: the whole GPU and MIG device 1 both list it
    whole = fake.nvmlDeviceGetHandleByIndex(0)
    for handle in (whole, fake.nvmlDeviceGetMigDeviceHandleByIndex(whole, 1)):
        assert [p.pid for p in fake.nvmlDeviceGetComputeRunningProcesses(handle)] == [python.pid]
    fake.nvmlShutdown()
    if refused is not None:
        for getter in (
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            fake.fail(getter, refused[1], devices=refused[0])
    sampler.append(s := GpuSampler())
    stats = s.sample()
    assert stats is not None and stats.error is None
    assert stats.process_memory == {python.pid: python.used_bytes}
    assert stats.process_memory_by_device == {"0/1": {python.pid: python.used_bytes}}


def test_a_mig_process_whose_instance_is_unknown_stays_on_its_gpu(
    monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    """Only the whole GPU lists the process and the MIG devices do not say their instance
    ids: it is counted once, on GPU 0, rather than guessed onto an instance."""
    fake = install(monkeypatch, A100_MIG)
    python = next(p for p in processes(dump_gpus(TESLA_T4)[0]) if p.type == "C")
    fake.run_in_instance(python, gpu=0, mig_index=1)
    fake.fail("nvmlDeviceGetGpuInstanceId", pynvml.NVML_ERROR_NOT_SUPPORTED)
    fake.fail("nvmlDeviceGetComputeRunningProcesses", pynvml.NVML_ERROR_NOT_SUPPORTED, "mig")
    sampler.append(s := GpuSampler())
    stats = s.sample()
    assert stats is not None and stats.error is None
    assert stats.process_memory_by_device == {"0": {python.pid: python.used_bytes}}


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def ingest(collector: Collector) -> Snapshot:
    return collector.ingest(TrafficSample(time.time(), 0.5, []))


@pytest.mark.parametrize("tick", ["ingest", "first_look"])
def test_collector_puts_gpu_memory_on_the_right_live_process(
    monkeypatch: pytest.MonkeyPatch, sleepers: list[subprocess.Popen[bytes]], tick: str
) -> None:
    """The T4's two processes, mapped onto two live processes: each gets its own
    memory; this test's own process, not on the GPU, gets none. The same in the
    first look before the first sample (the TUI's first frame), with the device."""
    (gpu,) = dump_gpus(TESLA_T4)
    dumped = processes(gpu)
    pids = {p.pid: live.pid for p, live in zip(dumped, sleepers, strict=True)}
    install(monkeypatch, TESLA_T4, pids=pids)
    collector = Collector(count_connections=False, resolve=False)
    try:
        snap = ingest(collector) if tick == "ingest" else collector.first_look()
        assert snap is not None and snap.gpu is not None and len(snap.gpu.devices) == 1
        states = {p.pid: p for p in snap.processes}
        for p in dumped:
            assert states[pids[p.pid]].gpu_memory_bytes == p.used_bytes
        assert states[os.getpid()].gpu_memory_bytes is None
        assert states[os.getpid()].gpu_sm_percent is None  # unknown: no per-process SM data
    finally:
        collector.close()


def test_gpu_falling_off_the_bus_is_one_line_and_the_rest_keeps_running(
    monkeypatch: pytest.MonkeyPatch, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """A machine with the T4 (GPU 0) and the RTX 3080 (GPU 1). GPU 0 falls off the bus
    after the first tick: from then on one line says so, GPU 1 and its processes are
    still reported, and the collector keeps producing snapshots."""
    t4_procs = processes(dump_gpus(TESLA_T4)[0])
    pids = {p.pid: live.pid for p, live in zip(t4_procs, sleepers, strict=True)}
    fake = install(monkeypatch, TESLA_T4, RTX_3080, pids=pids)
    collector = Collector(count_connections=False, resolve=False)
    try:
        first = ingest(collector).gpu
        assert first is not None and first.error is None
        assert [d.index for d in first.devices] == ["0", "1"]
        fake.lose(0)
        for _ in range(3):
            snap = ingest(collector)
            gpu = snap.gpu
            assert gpu is not None
            assert gpu.error == "GPU 0: the NVIDIA GPU fell off the bus"
            assert [d.index for d in gpu.devices] == ["1"]
            assert gpu.devices[0].name == dump_gpus(RTX_3080)[0].findtext("product_name")
            rtx = {p.pid: p.used_bytes for p in processes(dump_gpus(RTX_3080)[0])}
            assert gpu.process_memory == rtx
            states = {p.pid: p for p in snap.processes}
            assert all(states[live.pid].gpu_memory_bytes is None for live in sleepers)
    finally:
        collector.close()
    assert fake.initialised == 0  # shut down once, after all that


def test_a_lost_mig_gpu_is_one_line_for_it_and_its_instances(
    monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    fake = install(monkeypatch, A100_MIG)
    sampler.append(s := GpuSampler())
    fake.lose(0)
    stats = s.sample()
    assert stats is not None
    assert stats.devices == []
    assert stats.error == "GPU 0: the NVIDIA GPU fell off the bus"


@pytest.mark.parametrize(
    ("code", "line"),
    [
        (pynvml.NVML_ERROR_NO_PERMISSION, "no permission to query the NVIDIA GPU"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "no NVIDIA GPU (driver not loaded)"),
        (
            pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
            "NVIDIA driver/library version mismatch: reboot or reinstall the driver",
        ),
        (pynvml.NVML_ERROR_GPU_IS_LOST, "the NVIDIA GPU fell off the bus"),
    ],
)
def test_init_failures_are_one_line(code: int, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, RTX_3080)
    fake.fail("nvmlInit", code)
    s = GpuSampler()
    assert s.unavailable == line
    assert s.sample() is None
    s.close()
    assert "nvmlShutdown" not in fake.calls  # nothing to shut down: init failed


def test_close_shuts_nvml_down_once_and_sampling_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, TESLA_T4)
    s = GpuSampler()
    assert s.sample() is not None and fake.initialised == 1
    s.close()
    s.close()
    assert fake.calls.count("nvmlShutdown") == 1 and fake.initialised == 0
    calls = len(fake.calls)
    assert s.sample() is None
    assert len(fake.calls) == calls  # no NVML call after shutdown


def test_the_stand_in_invents_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the dump has no answer, the stand-in raises NVML's NOT_SUPPORTED (a real
    pynvml exception class), and before nvmlInit it raises UNINITIALIZED, as NVML does."""
    fake = FakeNvml(A100_MIG)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    fake.nvmlInit()
    whole = fake.nvmlDeviceGetHandleByIndex(0)
    mig = fake.nvmlDeviceGetMigDeviceHandleByIndex(whole, 0)
    for call in (
        lambda: fake.nvmlDeviceGetUtilizationRates(whole),  # N/A in the dump
        lambda: fake.nvmlDeviceGetName(mig),  # not printed for a MIG device
        lambda: fake.nvmlDeviceGetTemperature(mig, pynvml.NVML_TEMPERATURE_GPU),
        lambda: fake.nvmlDeviceGetProcessUtilization(whole, 0),
        lambda: fake.nvmlDeviceGetGpuInstanceId(whole),  # a whole GPU is no instance
    ):
        with pytest.raises(pynvml.NVMLError_NotSupported):
            call()
    with pytest.raises(pynvml.NVMLError_NotFound):
        fake.nvmlDeviceGetMigDeviceHandleByIndex(whole, 4)
    (dumped,) = (m for m in mig_devices(dump_gpus(A100_MIG)[0]) if m.findtext("index") == "0")
    assert (fake.nvmlDeviceGetGpuInstanceId(mig), fake.nvmlDeviceGetComputeInstanceId(mig)) == (
        int(dumped.findtext("gpu_instance_id") or ""),
        int(dumped.findtext("compute_instance_id") or ""),
    )


def test_a_gpu_lost_before_start_leaves_the_others(
    monkeypatch: pytest.MonkeyPatch, sampler: list[GpuSampler]
) -> None:
    """Before: one GPU NVML could not open at start made the sampler give up on all."""
    fake = install(monkeypatch, TESLA_T4, RTX_3080)
    fake.lose(0)
    sampler.append(s := GpuSampler())
    assert s.available, s.unavailable
    stats = s.sample()
    assert stats is not None
    assert [d.index for d in stats.devices] == ["1"]
    assert stats.error == "GPU 0: the NVIDIA GPU fell off the bus"


def test_the_only_gpu_lost_before_start_is_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, TESLA_T4)
    fake.lose(0)
    s = GpuSampler()
    assert s.unavailable == "GPU 0: the NVIDIA GPU fell off the bus"
    s.close()
    assert fake.initialised == 0


def test_nvml_up_but_unusable_is_still_shut_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: nvmlInit succeeded, listing the GPUs failed, and close() never called
    nvmlShutdown (each nvmlInit wants one)."""
    fake = install(monkeypatch, TESLA_T4)
    fake.fail("nvmlDeviceGetCount", pynvml.NVML_ERROR_NO_PERMISSION)
    s = GpuSampler()
    assert s.unavailable == "no permission to query the NVIDIA GPU"
    s.close()
    s.close()
    assert fake.calls.count("nvmlShutdown") == 1 and fake.initialised == 0
