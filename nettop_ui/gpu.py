"""NVIDIA GPUs through NVML (nvidia-ml-py, `import pynvml`): per device and per process.

Every NVML failure becomes one line in `GpuStats.error` or `GpuSampler.unavailable`,
never an exception: NVML missing, a driver mismatch, no permission, or a GPU that
falls off the bus leave the rest of nettop-ui running. A query a device does not
support (NOT_SUPPORTED: a MIG device's temperature, utilisation on a MIG-enabled GPU)
leaves that one figure unknown (None), never the whole device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class GpuDevice:
    """One GPU (or MIG device) as NVML reports it; None where NVML does not say."""

    index: str  # "0", or "0/1" for MIG instance 1 on GPU 0
    name: str | None
    util_percent: float | None = None
    mem_util_percent: float | None = None
    mem_used: int | None = None
    mem_total: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None


@dataclass(slots=True)
class GpuStats:
    """One tick of GPU figures: devices, and GPU memory / SM use per pid.

    `process_memory` sums a pid's memory over every device; `process_memory_by_device`
    keeps it per device index (a MIG device's own index where the process runs in one).
    Each process's memory is counted once per device, however NVML lists it (see
    `GpuSampler._place`).
    """

    devices: list[GpuDevice] = field(default_factory=list)
    process_memory: dict[int, int] = field(default_factory=dict)
    process_memory_by_device: dict[str, dict[int, int]] = field(default_factory=dict)
    process_sm_percent: dict[int, float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Running:
    """One process as one device's handle lists it."""

    used: int  # bytes of GPU memory
    instance: tuple[int, int]  # (gpuInstanceId, computeInstanceId); NVML's 0xFFFFFFFF outside MIG


_NO_INSTANCE = 0xFFFFFFFF


def _nvml() -> Any:
    import pynvml  # imported lazily: a missing package is one line, not a crash

    return pynvml


class GpuSampler:
    """Initialises NVML once; `sample()` returns None when there is no usable GPU."""

    def __init__(self) -> None:
        self.unavailable: str | None = None
        self._handles: list[tuple[str, Any]] = []
        self._missing: dict[str, str] = {}  # GPUs NVML could not open: index -> why
        self._last_ts_us: dict[str, int] = {}
        # (GPU index, gpuInstanceId, computeInstanceId) -> that MIG device's index "GPU/j"
        self._mig_index: dict[tuple[str, int, int], str] = {}
        self._initialised = False
        try:
            nvml = _nvml()
            nvml.nvmlInit()
            self._initialised = True
            for i in range(nvml.nvmlDeviceGetCount()):
                try:
                    handle = nvml.nvmlDeviceGetHandleByIndex(i)
                except Exception as exc:  # this GPU is lost (say): the others still count
                    self._missing[str(i)] = _explain(exc)
                    continue
                self._handles.append((str(i), handle))
                self._handles.extend(self._mig_handles(nvml, i, handle))
            if not self._handles:
                self.unavailable = _one_line(self._missing) or "no NVIDIA GPU"
        except ImportError:
            self.unavailable = "no NVIDIA GPU (nvidia-ml-py not installed)"
        except Exception as exc:
            self.unavailable = _explain(exc)

    def _mig_handles(self, nvml: Any, i: int, handle: Any) -> list[tuple[str, Any]]:
        try:
            current, _ = nvml.nvmlDeviceGetMigMode(handle)
        except Exception:
            return []
        if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
            return []
        migs = []
        for j in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
            except Exception:
                continue
            migs.append((f"{i}/{j}", mig))
            with contextlib.suppress(Exception):  # unknown ids: its processes stay on the GPU
                gi = nvml.nvmlDeviceGetGpuInstanceId(mig)
                self._mig_index[(str(i), gi, nvml.nvmlDeviceGetComputeInstanceId(mig))] = f"{i}/{j}"
        return migs

    @property
    def available(self) -> bool:
        return self.unavailable is None

    def sample(self) -> GpuStats | None:
        if not self.available:
            return None
        nvml = _nvml()
        stats = GpuStats()
        failed = dict(self._missing)  # device index -> why it is left out
        running: dict[str, dict[int, _Running]] = {}  # device index -> what its handle lists
        for index, handle in self._handles:
            if index.split("/")[0] in failed:
                continue  # a MIG device of a GPU already reported: one line says it
            try:
                dev = self._device(nvml, index, handle)
                running[index] = _running(nvml, handle)
                self._sm_use(nvml, index, handle, stats)
                stats.devices.append(dev)
            except Exception as exc:  # e.g. the GPU fell off the bus
                failed[index] = _explain(exc)
        self._place(running, stats)
        stats.error = _one_line(failed)
        return stats

    @staticmethod
    def _device(nvml: Any, index: str, handle: Any) -> GpuDevice:
        def query(fn: Any, default: Any = None) -> Any:
            return _optional(nvml, fn, default)

        name = query(lambda: nvml.nvmlDeviceGetName(handle))
        dev = GpuDevice(index, name.decode() if isinstance(name, bytes) else name)
        dev.mem_used, dev.mem_total = query(
            lambda: _mem(nvml.nvmlDeviceGetMemoryInfo(handle)), (None, None)
        )
        dev.util_percent, dev.mem_util_percent = query(
            lambda: _util(nvml.nvmlDeviceGetUtilizationRates(handle)), (None, None)
        )
        dev.temperature_c = query(
            lambda: float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        )
        dev.power_w = query(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)
        dev.sm_clock_mhz = query(
            lambda: int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
        )
        dev.mem_clock_mhz = query(
            lambda: int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM))
        )
        return dev

    def _place(self, running: dict[str, dict[int, _Running]], stats: GpuStats) -> None:
        """Count each process's memory once, on the device it runs on.

        NVML documents (nvml.h, nvmlDeviceGet{Compute,Graphics}RunningProcesses) that in
        MIG mode the whole GPU's handle returns the aggregate of all its instances (to a
        privileged caller) while each MIG device's handle returns its own processes. So
        what a MIG device lists is counted there, and the whole GPU's entry for the same
        pid is not counted again; a pid only the whole GPU lists (MIG handles that do not
        answer, as in vGPU host mode) goes to the MIG device its gpuInstanceId and
        computeInstanceId name, or stays on the GPU where they name none.
        """
        on_instances: dict[str, set[int]] = {}  # GPU index -> pids its MIG devices list
        for index, procs in running.items():
            gpu, _, mig = index.partition("/")
            if mig:
                on_instances.setdefault(gpu, set()).update(procs)
        for index, procs in running.items():
            gpu, _, mig = index.partition("/")
            for pid, proc in procs.items():
                where = index
                if not mig:
                    if pid in on_instances.get(gpu, ()):
                        continue  # counted on its MIG device
                    where = self._mig_index.get((gpu, *proc.instance), index)
                stats.process_memory[pid] = stats.process_memory.get(pid, 0) + proc.used
                stats.process_memory_by_device.setdefault(where, {})[pid] = proc.used

    def _sm_use(self, nvml: Any, index: str, handle: Any, stats: GpuStats) -> None:
        since = self._last_ts_us.get(index, 0)
        samples = _optional(nvml, lambda: nvml.nvmlDeviceGetProcessUtilization(handle, since), [])
        for s in samples:
            stats.process_sm_percent[s.pid] = max(
                stats.process_sm_percent.get(s.pid, 0.0), float(s.smUtil)
            )
            self._last_ts_us[index] = max(self._last_ts_us.get(index, 0), int(s.timeStamp))

    def close(self) -> None:
        """Shut NVML down, once (each nvmlInit wants one nvmlShutdown); no sampling after."""
        if self._initialised:  # NVML came up, whether or not a GPU was found
            with contextlib.suppress(Exception):
                _nvml().nvmlShutdown()
            self._initialised = False
        self._handles = []
        if self.available:
            self.unavailable = "GPU sampling closed"


def _running(nvml: Any, handle: Any) -> dict[int, _Running]:
    """pid -> its GPU memory on this device, each pid once.

    A process with both a compute and a graphics context (nvidia-smi's type C+G) is
    listed by both queries with the same usedGpuMemory: that figure is the process's
    memory on the device, not one context's, so it is taken once (as nvitop's
    `Device.processes()` keys them by pid). Memory NVML does not know (N/A) is left out.
    """
    found: dict[int, _Running] = {}
    for getter in (
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetGraphicsRunningProcesses",
    ):
        for proc in _optional(nvml, lambda g=getter: getattr(nvml, g)(handle), []):
            used = proc.usedGpuMemory
            if used is None or used >= 2**63:  # NVML_VALUE_NOT_AVAILABLE
                continue
            instance = (
                getattr(proc, "gpuInstanceId", _NO_INSTANCE),
                getattr(proc, "computeInstanceId", _NO_INSTANCE),
            )
            found.setdefault(proc.pid, _Running(int(used), instance))
    return found


def _util(rates: Any) -> tuple[float, float]:
    return float(rates.gpu), float(rates.memory)


def _one_line(failed: dict[str, str]) -> str | None:
    """Devices left out, as one line: 'GPU 0, 2: why; GPU 1: why else'."""
    by_why: dict[str, list[str]] = {}
    for index, why in failed.items():
        by_why.setdefault(why, []).append(index)
    return "; ".join(f"GPU {', '.join(ix)}: {why}" for why, ix in by_why.items()) or None


def _mem(mem: Any) -> tuple[int, int]:
    return int(mem.used), int(mem.total)


# NVML's answers that mean the device itself is gone, not that one query is unsupported.
_GONE = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_RESET_REQUIRED", "NVML_ERROR_UNINITIALIZED")


def _optional(nvml: Any, fn: Any, default: Any) -> Any:
    """Call an NVML query that some drivers or devices do not support: `default` when it
    fails, except when the device is gone (lost, needing a reset), which is raised."""
    try:
        return fn()
    except Exception as exc:
        if getattr(exc, "value", None) in {getattr(nvml, name, None) for name in _GONE}:
            raise
        return default


def _explain(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "driver" in lowered and "not loaded" in lowered:
        return "no NVIDIA GPU (driver not loaded)"
    if "library not found" in lowered or "shared library" in lowered:
        return "no NVIDIA GPU (NVML library not found)"
    if "mismatch" in lowered:
        return "NVIDIA driver/library version mismatch: reboot or reinstall the driver"
    if "permission" in lowered or "no_permission" in lowered:
        return "no permission to query the NVIDIA GPU"
    if "lost" in lowered or "fallen off" in lowered:
        return "the NVIDIA GPU fell off the bus"
    return f"NVML: {text}"
