"""Human units (nettop_ui/format.py): binary (IEC, the default) and decimal (SI), exactly."""

from __future__ import annotations

import pytest

from nettop_ui.format import Scale, human_bytes, human_rate, unit_for

KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("value", "bits", "units", "text"),
    [
        (None, False, "iec", "-"),
        (float("nan"), True, "si", "-"),
        (0, False, "iec", "0B"),
        (0, True, "si", "0bit"),
        (999, False, "si", "999B"),
        (1000, False, "si", "1.0kB"),
        (1000, False, "iec", "1000B"),
        (1536, False, "iec", "1.5KiB"),
        (1536, False, "si", "1.5kB"),
        (1536, True, "iec", "12.0Kib"),
        (1536, True, "si", "12.3kbit"),
        (99_949, False, "si", "99.9kB"),
        (99_950, False, "si", "100kB"),  # no "100.0kB"
        (999_499, False, "si", "999kB"),
        (999_500, False, "si", "1.0MB"),  # no "1000kB"
        (1023 * KIB + 600, False, "iec", "1.0MiB"),  # no "1024KiB"
        (5 * MIB, False, "iec", "5.0MiB"),
        (5 * MIB, False, "si", "5.2MB"),
        (12_500_000, True, "si", "100Mbit"),  # 100 Mbit/s, as iperf3 prints it
        (12_500_000, True, "iec", "95.4Mib"),
        (125_000_000, True, "si", "1.0Gbit"),
        (3 * GIB, False, "iec", "3.0GiB"),
        (3 * GIB, False, "si", "3.2GB"),
        (2e18, False, "si", "2000PB"),  # past the last prefix: stays on it
    ],
)
def test_human_bytes(value: float | None, bits: bool, units: str, text: str) -> None:
    assert human_bytes(value, bits, units) == text  # type: ignore[arg-type]


def test_rates_and_the_default_is_binary() -> None:
    assert human_rate(1536) == "1.5KiB/s"
    assert human_rate(12_500_000, True, "si") == "100Mbit/s"
    assert human_rate(None, True, "si") == "-"
    scale = Scale(bits=True, units="si")
    assert scale.traffic_rate(1_250_000) == "10.0Mbit/s"
    assert scale.traffic(1_250_000) == "10.0Mbit"
    assert scale.size(1_250_000) == "1.2MB"  # memory and disk: bytes, in the units
    assert scale.size_rate(1_250_000) == "1.2MB/s"
    assert Scale().traffic_rate(1_250_000) == "1.2MiB/s"


def test_axis_units() -> None:
    assert unit_for(0) == (1.0, "B")
    assert unit_for(3 * MIB) == (MIB, "MiB")
    assert unit_for(3_000_000, units="si") == (1e6, "MB")
    assert unit_for(12_500_000, bits=True, units="si") == (1e6 / 8, "Mbit")
    assert unit_for(0.05, bits=True) == (1 / 8, "b")
