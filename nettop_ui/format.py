"""Human units for byte counts and rates.

Two systems (`--units`, the TUI's `i`): binary, IEC (k = 1024: KiB, MiB; the default, as
nethogs and htop count), and decimal, SI (k = 1000: kB, MB, and in bits kbit/s, Mbit/s,
as iperf3 and network providers print them). In bits, IEC writes Kib, Mib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Units = Literal["iec", "si"]
UNITS: tuple[Units, ...] = ("iec", "si")

# (units, bits) -> (the step between prefixes, the unit names smallest first)
_SCALES: dict[tuple[Units, bool], tuple[int, tuple[str, ...]]] = {
    ("iec", False): (1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB")),
    ("iec", True): (1024, ("b", "Kib", "Mib", "Gib", "Tib", "Pib")),
    ("si", False): (1000, ("B", "kB", "MB", "GB", "TB", "PB")),
    ("si", True): (1000, ("bit", "kbit", "Mbit", "Gbit", "Tbit", "Pbit")),
}


def human_bytes(value: float | None, bits: bool = False, units: Units = "iec") -> str:
    """`1536` -> `1.5KiB` (SI: `1.5kB`); in bits `12.0Kib` (SI: `12.3kbit`); None
    (unknown) -> `-`.

    One decimal below 100, none from there; a value that would round up to the next
    prefix's step (`1024KiB`, `1000kB`) is written with the next prefix.
    """
    if value is None or value != value:
        return "-"
    step, names = _SCALES[units, bits]
    if bits:
        value *= 8
    for i, unit in enumerate(names):
        last = i == len(names) - 1
        if i == 0:
            if abs(value) < step - 0.5 or last:
                return f"{value:.0f}{unit}"
        elif abs(value) < 99.95:
            return f"{value:.1f}{unit}"
        elif abs(value) < step - 0.5 or last:
            return f"{value:.0f}{unit}"
        value /= step
    raise AssertionError("unreachable")


def human_rate(value: float | None, bits: bool = False, units: Units = "iec") -> str:
    """`1536.0` -> `1.5KiB/s`; in SI bits `12.3kbit/s`; None (unknown) -> `-`."""
    text = human_bytes(value, bits, units)
    return text if text == "-" else text + "/s"


def unit_for(peak: float, bits: bool = False, units: Units = "iec") -> tuple[float, str]:
    """An axis's unit for values (in bytes) up to `peak`: (how many bytes it is, its name)."""
    step, names = _SCALES[units, bits]
    size = 1 / 8 if bits else 1.0
    best = (size, names[0])
    for name in names:
        if peak >= size:
            best = (size, name)
        size *= step
    return best


@dataclass(frozen=True, slots=True)
class Scale:
    """How the figures of one view are written: traffic in bytes or bits, and the units.

    Memory and disk are always in bytes, in the chosen units."""

    bits: bool = False
    units: Units = "iec"

    def traffic(self, value: float | None) -> str:
        return human_bytes(value, self.bits, self.units)

    def traffic_rate(self, value: float | None) -> str:
        return human_rate(value, self.bits, self.units)

    def size(self, value: float | None) -> str:
        return human_bytes(value, False, self.units)

    def size_rate(self, value: float | None) -> str:
        return human_rate(value, False, self.units)

    def traffic_axis(self, peak: float) -> tuple[float, str]:
        return unit_for(peak, self.bits, self.units)

    def size_axis(self, peak: float) -> tuple[float, str]:
        return unit_for(peak, False, self.units)
