"""A pynvml stand-in that answers from real `nvidia-smi -q -x` dumps (tests/fixtures/nvidia-smi).

There is no GPU on the test machine, so the NVML calls nettop_ui/gpu.py makes are answered
from what real machines printed. Nothing is made up: where a dump says N/A, or has no
such field (a MIG instance's name, temperature or utilisation, per-process SM use), the
call raises pynvml's own NVMLError_NotSupported, as NVML does for an unsupported query.
Errors are the real pynvml exception classes (`pynvml.NVMLError(code)` picks the
subclass), so gpu.py sees exactly what it would see from the library.

Install it where `import pynvml` finds it: `monkeypatch.setitem(sys.modules, "pynvml",
FakeNvml(path))`. Several dumps make one machine with their GPUs in order. `pids` maps a
dump's pid onto a live process (to test the join with real processes); `lose(i)` makes
GPU i fall off the bus (every later call on it raises GPU_IS_LOST); `fail(name, code)`
makes one NVML function fail for every device (or only whole GPUs, or only MIG devices);
`run_in_instance` puts a dump's process into a MIG device, for want of a public dump of
MIG with processes (the placement is the test's, the process record is real).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pynvml

DUMPS = Path(__file__).parent / "fixtures" / "nvidia-smi"
A100_MIG = DUMPS / "a100-sxm4-v12.xml"
RTX_3080 = DUMPS / "rtx-3080-v12.xml"
TESLA_T4 = DUMPS / "tesla-t4.xml"
TESLA_M10 = DUMPS / "tesla-m10-vgpu-host.xml"
ALL_DUMPS = (A100_MIG, RTX_3080, TESLA_T4, TESLA_M10)

MIB = 1024 * 1024
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(MiB|W|C|MHz|%)?\s*$")
# NVML's clock types, each to the <clocks> element nvidia-smi prints it in.
_CLOCKS = {
    pynvml.NVML_CLOCK_GRAPHICS: "graphics_clock",
    pynvml.NVML_CLOCK_SM: "sm_clock",
    pynvml.NVML_CLOCK_MEM: "mem_clock",
    pynvml.NVML_CLOCK_VIDEO: "video_clock",
}
# Where a GPU's power draw is, newest schema first.
_POWER = (
    "gpu_power_readings/instant_power_draw",
    "gpu_power_readings/power_draw",
    "power_readings/power_draw",
)
_NO_ID = 0xFFFFFFFF  # NVML's gpuInstanceId/computeInstanceId outside MIG


def error(code: int) -> pynvml.NVMLError:
    """The pynvml exception NVML's `code` raises (an NVMLError subclass)."""
    return pynvml.NVMLError(code)


def number(text: str | None) -> float:
    """A dump's figure ("1005 MiB", "67.03 W", "27 C"); N/A or absent: NOT_SUPPORTED."""
    match = _NUMBER.match(text or "")
    if match is None:
        raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)
    return float(match.group(1))


@dataclass(frozen=True)
class Handle:
    """An nvmlDevice_t: GPU `gpu` of the machine, or MIG device `mig` on it."""

    gpu: int
    xml: ET.Element
    mig: ET.Element | None = None


@dataclass(frozen=True)
class DumpProcess:
    """One <process_info> of a dump, as the dump says it."""

    pid: int
    type: str
    name: str
    used_bytes: int | None
    gpu_instance: int | None
    compute_instance: int | None


def dump_gpus(*paths: Path) -> list[ET.Element]:
    """The <gpu> elements of the dumps, in order (the stand-in's devices 0, 1, ...)."""
    gpus: list[ET.Element] = []
    for path in paths:
        root = ET.parse(path).getroot()
        assert root.tag == "nvidia_smi_log", path
        gpus.extend(root.findall("gpu"))
    return gpus


def mig_devices(gpu: ET.Element) -> list[ET.Element]:
    return gpu.findall("mig_devices/mig_device")


def processes(gpu: ET.Element) -> list[DumpProcess]:
    """The dump's <processes> of one GPU."""

    def optional_int(text: str | None) -> int | None:
        return int(text) if text and text.strip().isdigit() else None

    out = []
    for info in gpu.findall("processes/process_info"):
        used = info.findtext("used_memory")
        out.append(
            DumpProcess(
                pid=int(info.findtext("pid") or ""),
                type=info.findtext("type") or "",
                name=info.findtext("process_name") or "",
                used_bytes=int(number(used)) * MIB if _NUMBER.match(used or "") else None,
                gpu_instance=optional_int(info.findtext("gpu_instance_id")),
                compute_instance=optional_int(info.findtext("compute_instance_id")),
            )
        )
    return out


class FakeNvml:
    """The part of pynvml's API that nettop_ui/gpu.py calls, answered from dumps."""

    NVMLError = pynvml.NVMLError

    def __init__(self, *paths: Path, pids: dict[int, int] | None = None) -> None:
        self._gpus = dump_gpus(*paths)
        self._pids = pids or {}
        self._lost: set[int] = set()
        self._failing: dict[str, tuple[int, str]] = {}  # function -> (code, which devices)
        self._placed: dict[int, list[DumpProcess]] = {}  # GPU -> processes run_in_instance put
        self.initialised = 0
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        # Constants (NVML_CLOCK_SM, NVML_DEVICE_MIG_ENABLE, ...) are pynvml's own; any
        # NVML function gpu.py calls that this stand-in lacks fails loudly.
        if name.startswith("NVML_"):
            return getattr(pynvml, name)
        raise AttributeError(f"FakeNvml has no {name}: add it, answered from the dumps")

    # -- what a test injects --------------------------------------------------------

    def lose(self, gpu: int) -> None:
        """GPU `gpu` falls off the bus: every later call on it (or its MIG devices)
        raises GPU_IS_LOST, as NVML does."""
        self._lost.add(gpu)

    def fail(self, function: str, code: int, devices: str = "all") -> None:
        """NVML function `function` (e.g. "nvmlInit") raises `code` from now on: on every
        device, or with `devices` "gpu" only on whole GPUs, "mig" only on MIG devices."""
        assert devices in ("all", "gpu", "mig"), devices
        self._failing[function] = (code, devices)

    def run_in_instance(self, proc: DumpProcess, gpu: int, mig_index: int) -> DumpProcess:
        """Process `proc` (from a dump) runs in MIG device `mig_index` of GPU `gpu`: NVML
        then lists it, with that instance's ids, on the whole GPU and on that MIG device."""
        (mig,) = (m for m in mig_devices(self._gpus[gpu]) if m.findtext("index") == str(mig_index))
        placed = replace(
            proc,
            gpu_instance=int(mig.findtext("gpu_instance_id") or ""),
            compute_instance=int(mig.findtext("compute_instance_id") or ""),
        )
        self._placed.setdefault(gpu, []).append(placed)
        return placed

    # -- bookkeeping shared by every call -------------------------------------------

    def _enter(self, function: str, handle: Handle | None = None) -> None:
        self.calls.append(function)
        if function in self._failing:
            code, devices = self._failing[function]
            on_mig = handle is not None and handle.mig is not None
            if devices == "all" or devices == ("mig" if on_mig else "gpu"):
                raise error(code)
        if function != "nvmlInit" and self.initialised == 0:
            raise error(pynvml.NVML_ERROR_UNINITIALIZED)
        if handle is not None and handle.gpu in self._lost:
            raise error(pynvml.NVML_ERROR_GPU_IS_LOST)

    @staticmethod
    def _field(handle: Handle, path: str) -> float:
        """A figure of the device (of the MIG device where it is one)."""
        return number((handle.mig if handle.mig is not None else handle.xml).findtext(path))

    # -- the NVML API -----------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        # The <gpu> elements a dump holds (a dump of one GPU of four says attached_gpus 4).
        self._enter("nvmlDeviceGetCount")
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        if not 0 <= index < len(self._gpus):
            self._enter("nvmlDeviceGetHandleByIndex")
            raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        handle = Handle(index, self._gpus[index])
        self._enter("nvmlDeviceGetHandleByIndex", handle)
        return handle

    def nvmlDeviceGetName(self, handle: Handle) -> str:
        # nvidia-smi -q -x prints no name for a MIG device: unsupported, not invented.
        self._enter("nvmlDeviceGetName", handle)
        name = handle.xml.findtext("product_name") if handle.mig is None else None
        if not name:
            raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return name

    def nvmlDeviceGetMemoryInfo(self, handle: Handle) -> Any:
        self._enter("nvmlDeviceGetMemoryInfo", handle)
        total, used, free = (
            int(self._field(handle, f"fb_memory_usage/{k}")) * MIB
            for k in ("total", "used", "free")
        )
        return pynvml.c_nvmlMemory_t(total=total, free=free, used=used)

    def nvmlDeviceGetUtilizationRates(self, handle: Handle) -> Any:
        self._enter("nvmlDeviceGetUtilizationRates", handle)
        gpu = self._field(handle, "utilization/gpu_util")
        memory = self._field(handle, "utilization/memory_util")
        return pynvml.c_nvmlUtilization_t(gpu=int(gpu), memory=int(memory))

    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(self._field(handle, "temperature/gpu_temp"))

    def nvmlDeviceGetPowerUsage(self, handle: Handle) -> int:
        """Milliwatts, as NVML answers."""
        self._enter("nvmlDeviceGetPowerUsage", handle)
        for path in _POWER:
            if (handle.mig if handle.mig is not None else handle.xml).find(path) is not None:
                return round(self._field(handle, path) * 1000)
        raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetClockInfo(self, handle: Handle, clock: int) -> int:
        self._enter("nvmlDeviceGetClockInfo", handle)
        if clock not in _CLOCKS:
            raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return int(self._field(handle, f"clocks/{_CLOCKS[clock]}"))

    def nvmlDeviceGetMigMode(self, handle: Handle) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", handle)
        modes = {
            "Enabled": pynvml.NVML_DEVICE_MIG_ENABLE,
            "Disabled": pynvml.NVML_DEVICE_MIG_DISABLE,
        }
        current = handle.xml.findtext("mig_mode/current_mig")
        pending = handle.xml.findtext("mig_mode/pending_mig")
        if handle.mig is not None or current not in modes or pending not in modes:
            raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [modes[current], modes[pending]]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Handle) -> int:
        # The dump lists the MIG devices that exist, not the most the GPU could hold:
        # one past the highest listed index (slots below it that are empty: NOT_FOUND).
        self._enter("nvmlDeviceGetMaxMigDeviceCount", handle)
        return max(
            (int(number(m.findtext("index"))) + 1 for m in mig_devices(handle.xml)), default=0
        )

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Handle, index: int) -> Handle:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        for mig in mig_devices(handle.xml):
            if mig.findtext("index") == str(index):
                return Handle(handle.gpu, handle.xml, mig)
        raise error(pynvml.NVML_ERROR_NOT_FOUND)

    def _processes(self, handle: Handle, kind: str) -> list[Any]:
        """The dump's processes of `kind` ("C" or "G"; "C+G" is both), as pynvml returns
        them. On a MIG-enabled GPU the whole GPU answers for every instance (NVML's
        aggregate view) and a MIG device for its own instance only."""
        return [
            pynvml.nvmlFriendlyObject(
                {
                    "pid": self._pids.get(proc.pid, proc.pid),
                    "usedGpuMemory": proc.used_bytes,  # None: N/A, as pynvml says
                    "gpuInstanceId": _NO_ID if proc.gpu_instance is None else proc.gpu_instance,
                    "computeInstanceId": (
                        _NO_ID if proc.compute_instance is None else proc.compute_instance
                    ),
                }
            )
            for proc in self._own_processes(handle)
            if kind in proc.type.split("+")
        ]

    def _own_processes(self, handle: Handle) -> Iterator[DumpProcess]:
        for proc in processes(handle.xml) + self._placed.get(handle.gpu, []):
            if handle.mig is None or (
                str(proc.gpu_instance) == handle.mig.findtext("gpu_instance_id")
                and str(proc.compute_instance) == handle.mig.findtext("compute_instance_id")
            ):
                yield proc

    def _instance_id(self, function: str, handle: Handle, field: str) -> int:
        # A MIG device's gpuInstanceId / computeInstanceId; a whole GPU has none.
        self._enter(function, handle)
        if handle.mig is None:
            raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(number(handle.mig.findtext(field)))

    def nvmlDeviceGetGpuInstanceId(self, handle: Handle) -> int:
        return self._instance_id("nvmlDeviceGetGpuInstanceId", handle, "gpu_instance_id")

    def nvmlDeviceGetComputeInstanceId(self, handle: Handle) -> int:
        return self._instance_id("nvmlDeviceGetComputeInstanceId", handle, "compute_instance_id")

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Handle) -> list[Any]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", handle)
        return self._processes(handle, "C")

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Handle) -> list[Any]:
        self._enter("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return self._processes(handle, "G")

    def nvmlDeviceGetProcessUtilization(self, handle: Handle, since_us: int) -> list[Any]:
        # `nvidia-smi -q -x` prints no per-process SM utilisation: nothing to answer with.
        self._enter("nvmlDeviceGetProcessUtilization", handle)
        raise error(pynvml.NVML_ERROR_NOT_SUPPORTED)
