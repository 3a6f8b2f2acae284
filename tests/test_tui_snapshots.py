"""SVG snapshots of the main screen, the filtered screen, the drill-down, the host view and
the host screen, 80x24 and 160x48; and of the GPU panel and per-process GPU column, fed by
the NVML stand-in (tests/fake_nvml.py) answering from real `nvidia-smi -q -x` dumps.

The app is fed fully scripted snapshots (fixed pids, names, numbers, clock and host),
so the pictures are the same on every machine. Regenerate after a deliberate change with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from nettop_ui.gpu import GpuSampler, GpuStats
from nettop_ui.tui import NettopApp, ScriptedSource
from nettop_ui.tui.frame import row_key
from tests.fake_nvml import A100_MIG, RTX_3080, TESLA_T4, FakeNvml, dump_gpus, processes
from tests.tui_fixtures import T0, FixedClock, Proc, profiled_snapshots, scripted_snapshots

SIZES = [(80, 24), (160, 48)]


def make_app(**scripted: Any) -> NettopApp:
    snaps = scripted_snapshots(**scripted)
    source = ScriptedSource(snaps, backend_name="ebpf", layer="socket payload")
    return NettopApp(source, host="testhost", clock=FixedClock())


async def sort_by_gpu(pilot: Pilot[int]) -> None:
    """Sort the process table on its GPU MEM column (as a click on its header does)."""
    app = pilot.app
    assert isinstance(app, NettopApp)
    await pilot.pause()
    app.main.action_sort("gpu")
    await pilot.pause()


class FallsOffTheBus(GpuSampler):
    """The real sampler; the stand-in's GPU 0 falls off the bus at sample `at`."""

    def __init__(self, fake: FakeNvml, at: int | None) -> None:
        super().__init__()
        self.fake, self.at, self.samples = fake, at, 0

    def sample(self) -> GpuStats | None:
        self.samples += 1
        if self.samples == self.at:
            self.fake.lose(0)
        return super().sample()


def gpu_app(monkeypatch: pytest.MonkeyPatch, *dumps: Path, lose_at: int | None = None) -> NettopApp:
    """The scripted machine with the dumps' GPUs, and the dumps' GPU processes as processes
    of its own (pid, and name and command line as the dump prints them)."""
    fake = FakeNvml(*dumps)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler = FallsOffTheBus(fake, lose_at)
    on_gpu = [
        Proc(p.pid, 1, Path(p.name.split()[0]).name[:15], "alice", 0, 0, p.name.split())
        for gpu in dump_gpus(*dumps)
        for p in processes(gpu)
    ]
    try:
        return make_app(gpu=sampler, extra=on_gpu)
    finally:
        sampler.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_filtered_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, press=["slash", *"nginx", "escape"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_drill_down(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_nginx_master(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, NettopApp)
        await pilot.pause()
        assert app.main.table.select_key(row_key(900, T0 - 1000 - 900))
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_nginx_master)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_host_view(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, press=["h"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_host_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_edge(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, NettopApp)
        await pilot.press("h")
        await pilot.pause()
        assert app.main.table.select_key("203.0.113.7")
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_edge)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_gpu_panel_with_mig(
    snap_compare: Any, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The A100 with MIG on: the GPU and its four MIG devices, utilisation unknown (N/A),
    one line each (four lines each do not fit)."""
    assert snap_compare(gpu_app(monkeypatch, A100_MIG), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_gpu_memory_column(
    snap_compare: Any, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RTX 3080's five processes, sorted by their GPU memory."""
    app = gpu_app(monkeypatch, RTX_3080)
    assert snap_compare(app, terminal_size=size, run_before=sort_by_gpu)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_gpu_falls_off_the_bus(
    snap_compare: Any, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The T4 (GPU 0) and the RTX 3080 (GPU 1); GPU 0 falls off the bus at tick 30 of 40:
    one yellow line says so, GPU 1 and its processes are still shown, the T4's are not."""
    app = gpu_app(monkeypatch, TESLA_T4, RTX_3080, lose_at=30)
    assert snap_compare(app, terminal_size=size, run_before=sort_by_gpu)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_drill_down_profile(snap_compare: Any, size: tuple[int, int]) -> None:
    """`--profile`: train.py's drill-down with its off-CPU and syscall section."""

    async def open_train(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, NettopApp)
        await pilot.pause()
        assert app.main.table.select_key(row_key(2002, T0 - 1000 - 2002))
        await pilot.press("enter")
        await pilot.pause()

    source = ScriptedSource(profiled_snapshots(), backend_name="ebpf", layer="socket payload")
    app = NettopApp(source, host="testhost", clock=FixedClock())
    assert snap_compare(app, terminal_size=size, run_before=open_train)
