"""Real screenshots of nettop-ui: the real app, the real ebpf backend, real traffic.

Run as root from the repository root:

    .venv/bin/python screenshots/make_screenshots.py

It builds the test network (tests/netenv.py: a network namespace with servers), starts
named clients that move paced traffic, drives the app with Textual's Pilot at a fixed
terminal size (the frames come from `MonitorSource` over the ebpf backend, exactly as
`nettop-ui` builds them) and saves SVGs of the main screen (160x48), the filtered
screen, the drill-down, the remote-host view (`h`, local hosts shown with `L`) and a
narrow main screen (80x24). Each SVG is then rendered to
a PNG with headless chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `tests` and `nettop_ui` importable

from nettop_ui import registry  # noqa: E402
from nettop_ui.tui import MonitorSource, NettopApp  # noqa: E402
from tests.dnsenv import isolate_session  # noqa: E402
from tests.netenv import Client, Network, network_env  # noqa: E402

OUT = Path(__file__).resolve().parent
WARMUP_FRAMES = 8  # long enough for the sparklines to fill a bit and the toast to go
FILTER = "backup-agent"


def start_traffic(net: Network) -> list[Client]:
    """A few named programs moving traffic at known paces (bytes/s)."""
    return [
        net.client("backup-agent", "tcp", "v4", up=2_500_000 * 600, rate=2_500_000),
        net.client("sync-client", "tcp", "v6", up=600_000 * 600, rate=600_000),
        net.client("log-shipper", "tcp", "lo", up=150_000 * 600, rate=150_000),
        net.client("metrics-push", "udp", "v4", datagrams=60_000, size=1200, pace=0.01),
        net.client("dns-probe", "udp", "lo", datagrams=60_000, size=80, reply=400, pace=0.02),
    ]


async def wait_frames(app: NettopApp, n: int) -> None:
    target = app.frames_received + n
    for _ in range(n * 20 + 200):  # 0.1 s steps; the BPF program compiles first
        if app.frames_received >= target:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no frame from the backend: {app.state.source_error}")


async def shoot(size: tuple[int, int], shots: dict[str, list[str]]) -> list[Path]:
    """Run the app at `size`; for each shot, press its keys, wait a frame, save the SVG."""
    cls, why = registry.choose("ebpf")
    app = NettopApp(MonitorSource(cls(), 1.0), why=why)
    saved = []
    async with app.run_test(size=size) as pilot:
        await wait_frames(app, WARMUP_FRAMES)
        for name, keys in shots.items():
            await pilot.press(*keys)
            await wait_frames(app, 2)
            await pilot.pause()
            saved.append(Path(app.save_screenshot(f"{name}.svg", str(OUT))))
        await pilot.press("q")
    return saved


def to_png(svg: Path) -> Path:
    """Render an SVG to a PNG of its own size with headless chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium for the PNGs: apt-get install -y chromium")
    m = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text())
    assert m, f"no viewBox in {svg}"
    width, height = (round(float(v)) for v in m.groups())
    png = svg.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                svg.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return png


def main() -> int:
    isolate_session()  # names from /etc/hosts only: no query reaches the machine's DNS
    with network_env() as net:
        clients = start_traffic(net)
        try:
            svgs = asyncio.run(
                shoot(
                    (160, 48),
                    {
                        "main": [],
                        "filtered": ["slash", *FILTER, "escape"],
                        "detail": ["enter"],
                        "hosts": ["escape", "delete", "h", "L"],
                    },
                )
            )
            svgs += asyncio.run(shoot((80, 24), {"narrow": []}))
        finally:
            for client in clients:
                client.proc.kill()
                client.proc.wait()
    for svg in svgs:
        print(svg.relative_to(ROOT), to_png(svg).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
