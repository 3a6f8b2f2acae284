"""Histories of the machine-wide figures the panels draw (the collector keeps none).

Fed once per displayed frame; rings from `nettop_ui.history`, so memory stays flat.
"""

from __future__ import annotations

from nettop_ui.history import Ring
from nettop_ui.system import SystemStats

HISTORY_POINTS = 120


class SystemHistory:
    """CPU, memory, disk and per-interface rate histories, newest last."""

    def __init__(self, size: int = HISTORY_POINTS) -> None:
        self.size = size
        self.cpu = Ring(size)
        self.mem = Ring(size)
        self.disk_read = Ring(size)
        self.disk_write = Ring(size)
        self.nic_up: dict[str, Ring] = {}
        self.nic_down: dict[str, Ring] = {}
        self.gpu_util: dict[str, Ring] = {}
        self.last_ts: float | None = None

    def add(
        self, stats: SystemStats | None, gpu_util: dict[str, float | None] | None = None
    ) -> None:
        if stats is None or stats.ts == self.last_ts:
            return
        self.last_ts = stats.ts
        self.cpu.append(stats.cpu_percent)
        mem_pct = 100.0 * stats.mem_used / stats.mem_total if stats.mem_total else 0.0
        self.mem.append(mem_pct)
        self.disk_read.append(_nan(stats.disk_read_bps))
        self.disk_write.append(_nan(stats.disk_write_bps))
        for nic, s in stats.interfaces.items():
            self.nic_up.setdefault(nic, Ring(self.size)).append(_nan(s.sent_bps))
            self.nic_down.setdefault(nic, Ring(self.size)).append(_nan(s.recv_bps))
        for index, util in (gpu_util or {}).items():
            self.gpu_util.setdefault(index, Ring(self.size)).append(_nan(util))

    def nic_total(self, nic: str, points: int) -> tuple[float, ...]:
        up = self.nic_up.get(nic)
        down = self.nic_down.get(nic)
        if up is None or down is None:
            return ()
        return tuple(a + b for a, b in zip(up.last(points), down.last(points), strict=True))


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
