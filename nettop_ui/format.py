"""Human units for byte counts and rates (k = 1024, like nethogs and htop)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_BIT_UNITS = ("b", "Kib", "Mib", "Gib", "Tib", "Pib")


def human_bytes(value: float | None, bits: bool = False) -> str:
    """`1536` -> `1.5KiB`; None (unknown) -> `-`."""
    if value is None or value != value:
        return "-"
    units = _BIT_UNITS if bits else _UNITS
    if bits:
        value *= 8
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            if unit in ("B", "b"):
                return f"{value:.0f}{unit}"
            return f"{value:.1f}{unit}" if abs(value) < 100 else f"{value:.0f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_rate(value: float | None, bits: bool = False) -> str:
    """`1536.0` -> `1.5KiB/s`; None (unknown) -> `-`."""
    text = human_bytes(value, bits)
    return text if text == "-" else text + "/s"
