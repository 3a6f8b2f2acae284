"""The system panels: CPU, memory & swap, network interfaces, disk I/O, GPU.

Each panel draws itself from the last frame and the `SystemHistory` at whatever size
the layout gives it: one line when the terminal is small (`line_form`), a bordered
box with per-core bars and history sparklines when there is room (`box_form`).
"""

from __future__ import annotations

from textwrap import wrap

from rich.text import Text

from nettop_ui.format import Scale
from nettop_ui.gpu import GpuDevice, GpuStats
from nettop_ui.system import SystemStats
from nettop_ui.tui.cells import sparkline
from nettop_ui.tui.frame import Frame, RecordedFigures
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.system_history import SystemHistory
from nettop_ui.tui.text_widget import TextWidget

BAR_FULL, BAR_EMPTY = "█", "░"
MACHINE_NOT_RECORDED = Text("machine: not recorded", style="dim")


def bar(percent: float, width: int) -> str:
    width = max(width, 0)
    filled = round(width * max(0.0, min(percent, 100.0)) / 100.0)
    return BAR_FULL * filled + BAR_EMPTY * (width - filled)


def pct_style(percent: float) -> str:
    if percent >= 90:
        return "bold red"
    if percent >= 70:
        return "yellow"
    return "green"


def fit(text: Text, width: int) -> Text:
    text.truncate(max(width, 0), overflow="ellipsis")
    text.no_wrap = True
    return text


NicRate = tuple[str, float | None, float | None]  # (interface, sent B/s, received B/s)


def nic_rates(stats: SystemStats | None) -> list[NicRate]:
    """Every interface's rates, busiest first: what the NET panel lists."""
    if stats is None:
        return []
    nics = [(n, i.sent_bps, i.recv_bps) for n, i in stats.interfaces.items()]
    nics.sort(key=lambda t: (-((t[1] or 0) + (t[2] or 0)), t[0]))
    return nics


def nic_totals(stats: SystemStats | None) -> tuple[float | None, float | None]:
    """Sent and received B/s summed over the interfaces `nic_rates` lists (loopback
    included, as the NET panel shows it); None where no interface has a figure."""
    ups = [up for _, up, _ in nic_rates(stats) if up is not None]
    downs = [down for _, _, down in nic_rates(stats) if down is not None]
    return (float(sum(ups)) if ups else None, float(sum(downs)) if downs else None)


class Panel(TextWidget):
    """Base: holds the latest frame, history and unit choice; `make_text` picks the form."""

    DEFAULT_CSS = """
    Panel { height: 1; }
    """
    title = "panel"
    number = 0

    def __init__(self, history: SystemHistory, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = history
        self.frame: Frame | None = None
        self.scale = Scale()

    def on_mount(self) -> None:
        self.border_title = f"{self.title} [{self.number}]"

    def show_frame(self, frame: Frame, scale: Scale) -> None:
        self.frame, self.scale = frame, scale
        self.show_text()

    def make_text(self) -> Text:
        width, height = self.content_region.width, self.content_region.height
        recorded = self._recorded()
        if height <= 1 and recorded:
            line = self.label()
            for i, part in enumerate(recorded):
                line.append(" · " if i else "").append_text(part)
            return fit(line, width)
        if height <= 1:
            return fit(self.line_form(width), width)
        lines = recorded or self.box_form(width, height)
        out = Text(no_wrap=True, end="")
        for i, line in enumerate(lines[:height]):
            if i:
                out.append("\n")
            out.append_text(fit(line, width))
        return out

    def label(self) -> Text:
        return Text(f"{self.title:<4} ", style="bold")

    def _recorded(self) -> list[Text]:
        frame = self.frame
        if frame is None or frame.system is not None or frame.recorded is None:
            return []
        return self.recorded_form(frame.recorded)

    def recorded_form(self, recorded: RecordedFigures) -> list[Text]:
        """A replayed recording: what it holds for this panel; [] for the usual form."""
        return []

    def line_form(self, width: int) -> Text:
        return self.label()

    def box_form(self, width: int, height: int) -> list[Text]:
        return [self.line_form(width)]

    @property
    def system(self) -> SystemStats | None:
        return self.frame.system if self.frame else None

    def waiting(self) -> Text:
        return self.label().append("…", style="dim")


class CpuPanel(Panel):
    """Total CPU with history, and every core."""

    title, number = "CPU", 1

    def recorded_form(self, recorded: RecordedFigures) -> list[Text]:
        cpu = recorded.tree_cpu_percent
        text = "-" if cpu is None else f"{cpu:.1f}%"
        return [Text(f"{recorded.scope} ", style="dim").append(text), MACHINE_NOT_RECORDED.copy()]

    def line_form(self, width: int) -> Text:
        s = self.system
        if s is None:
            return self.waiting()
        text = self.label().append(f"{s.cpu_percent:5.1f}% ", style=pct_style(s.cpu_percent))
        cores = s.cpu_per_core
        room = width - len(text) - 1
        if len(cores) <= room // 2:
            text.append(
                sparkline(
                    self.history.cpu.last(room - len(cores) - 1), room - len(cores) - 1, 100.0
                ),
                style="cyan",
            )
            text.append(" ")
        for c in cores[: max(room, 0)]:
            text.append(sparkline([c], 1, 100.0) if c > 0 else "▁", style=pct_style(c))
        return text

    def box_form(self, width: int, height: int) -> list[Text]:
        s = self.system
        if s is None:
            return [self.waiting()]
        head = Text(f"{s.cpu_percent:5.1f}% ", style=pct_style(s.cpu_percent))
        head.append(sparkline(self.history.cpu.last(width - 7), width - 7, 100.0), style="cyan")
        lines = [head]
        cores = s.cpu_per_core
        rows = height - 1
        if len(cores) <= rows:
            for i, c in enumerate(cores):
                line = Text(f"{i:>2} ", style="dim")
                line.append(bar(c, width - 9), style=pct_style(c))
                line.append(f"{c:5.0f}%")
                lines.append(line)
            return lines
        per_line = max(1, -(-len(cores) // max(rows, 1)))
        cell = max(4, width // per_line)
        for start in range(0, len(cores), per_line):
            line = Text()
            for i, c in enumerate(cores[start : start + per_line], start):
                line.append(f"{i:>{cell - 2}}", style="dim")
                line.append(sparkline([c], 1, 100.0) if c > 0 else "▁", style=pct_style(c))
                line.append(" ")
            lines.append(line)
        return lines


class MemPanel(Panel):
    """Memory and swap in use, with the memory history."""

    title, number = "MEM", 2

    def recorded_form(self, recorded: RecordedFigures) -> list[Text]:
        rss = self.scale.size(recorded.tree_rss_bytes)
        line = Text(f"{recorded.scope} RSS ", style="dim").append(rss)
        return [line, MACHINE_NOT_RECORDED.copy()]

    def line_form(self, width: int) -> Text:
        s = self.system
        if s is None:
            return self.waiting()
        mem = 100.0 * s.mem_used / s.mem_total if s.mem_total else 0.0
        text = self.label().append(
            f"{self.scale.size(s.mem_used)}/{self.scale.size(s.mem_total)} ", style=pct_style(mem)
        )
        text.append(f"{mem:.0f}%")
        if s.swap_total:
            swap = 100.0 * s.swap_used / s.swap_total
            text.append("  SWP ", style="bold").append(f"{swap:.0f}%", style=pct_style(swap))
        else:
            text.append("  SWP ", style="bold").append("none", style="dim")
        return text

    def box_form(self, width: int, height: int) -> list[Text]:
        s = self.system
        if s is None:
            return [self.waiting()]
        mem = 100.0 * s.mem_used / s.mem_total if s.mem_total else 0.0
        lines = [
            Text(f"used {self.scale.size(s.mem_used)} of {self.scale.size(s.mem_total)}"),
            Text(bar(mem, width - 6), style=pct_style(mem)).append(f"{mem:5.0f}%", style=""),
            Text(sparkline(self.history.mem.last(width), width, 100.0), style="magenta"),
        ]
        if s.swap_total:
            swap = 100.0 * s.swap_used / s.swap_total
            lines.append(
                Text(f"swap {self.scale.size(s.swap_used)} of {self.scale.size(s.swap_total)}")
            )
            lines.append(Text(bar(swap, width - 6), style=pct_style(swap)).append(f"{swap:5.0f}%"))
        else:
            lines.append(Text("no swap", style="dim"))
        return lines


class NetPanel(Panel):
    """Rates per network interface (wire frames, this namespace), busiest first."""

    title, number = "NET", 3

    def recorded_form(self, recorded: RecordedFigures) -> list[Text]:
        up, down = (
            self.scale.traffic_rate(recorded.nic_sent_bps),
            self.scale.traffic_rate(recorded.nic_recv_bps),
        )
        return [
            Text("all but lo ", style="dim").append(f"↑{up} ↓{down}"),
            Text("each NIC: not recorded", style="dim"),
        ]

    def _peak(self, nics: list[NicRate], points: int) -> float:
        """One scale for every interface, so a quiet one looks quiet next to a busy one."""
        values = [v for n, _, _ in nics for v in self.history.nic_total(n, points) if v == v]
        return max(values, default=0.0)

    def line_form(self, width: int) -> Text:
        nics = nic_rates(self.system)
        if not nics:
            return self.waiting() if self.system is None else self.label().append("none")
        name, up, down = nics[0]
        text = self.label().append(safe_text(name, 12), style="bold cyan")
        text.append(f" ↑{self.scale.traffic_rate(up)} ↓{self.scale.traffic_rate(down)} ")
        room = width - len(text)
        if room > 3:
            spark = self.history.nic_total(name, room)
            text.append(sparkline(spark, room, self._peak(nics, room) or None), style="green")
        return text

    def box_form(self, width: int, height: int) -> list[Text]:
        nics = nic_rates(self.system)
        if not nics:
            return [Text("no interfaces" if self.system else "…", style="dim")]
        lines: list[Text] = []
        per_nic = 2 if len(nics) * 2 <= height else 1
        peak = self._peak(nics, width) or None
        for name, up, down in nics[: height // per_nic]:
            line = Text(f"{safe_text(name, 10):<10}", style="bold cyan")
            line.append(f" ↑{self.scale.traffic_rate(up):>11} ↓{self.scale.traffic_rate(down):>11}")
            if per_nic == 1:
                room = width - len(line) - 1
                if room > 2:
                    line.append(" ")
                    line.append(
                        sparkline(self.history.nic_total(name, room), room, peak), style="green"
                    )
                lines.append(line)
                continue
            lines.append(line)
            lines.append(
                Text(sparkline(self.history.nic_total(name, width), width, peak), style="green")
            )
        return lines


class DiskPanel(Panel):
    """Disk read and write rates, with their histories."""

    title, number = "DISK", 4

    def recorded_form(self, recorded: RecordedFigures) -> list[Text]:
        line = Text(f"{recorded.scope} ", style="dim").append("R ", style="dim")
        line.append(self.scale.size_rate(recorded.tree_read_bps)).append("  W ", style="dim")
        return [
            line.append(self.scale.size_rate(recorded.tree_write_bps)),
            MACHINE_NOT_RECORDED.copy(),
        ]

    def line_form(self, width: int) -> Text:
        s = self.system
        if s is None:
            return self.waiting()
        text = self.label().append("R ", style="dim").append(self.scale.size_rate(s.disk_read_bps))
        text.append("  W ", style="dim").append(self.scale.size_rate(s.disk_write_bps))
        room = width - len(text) - 1
        if room > 3:
            reads = self.history.disk_read.last(room)
            writes = self.history.disk_write.last(room)
            both = [
                a + b if a == a and b == b else float("nan")
                for a, b in zip(reads, writes, strict=True)
            ]
            text.append(" ").append(sparkline(both, room), style="yellow")
        return text

    def box_form(self, width: int, height: int) -> list[Text]:
        s = self.system
        if s is None:
            return [self.waiting()]
        return [
            Text("read  ", style="dim").append(self.scale.size_rate(s.disk_read_bps)),
            Text(sparkline(self.history.disk_read.last(width), width), style="green"),
            Text("write ", style="dim").append(self.scale.size_rate(s.disk_write_bps)),
            Text(sparkline(self.history.disk_write.last(width), width), style="yellow"),
        ]


class GpuPanel(Panel):
    """NVIDIA devices: utilisation, memory, temperature, power; quiet when there is none.

    A GPU that failed (fell off the bus) is one yellow line (wrapped to the box), kept in
    view however many devices there are: when four lines each do not fit, each device
    gets one line."""

    title, number = "GPU", 5

    def _gpu(self) -> tuple[GpuStats | None, str | None]:
        if self.frame is None:
            return None, None
        return self.frame.gpu, self.frame.gpu_unavailable

    @staticmethod
    def _nothing(gpu: GpuStats | None, why: str | None) -> Text:
        """No device to show: the failure that took them, or why there is no GPU."""
        if gpu is not None and gpu.error:
            return Text(safe_text(gpu.error, 80), style="yellow")
        return Text(safe_text(why or "no NVIDIA GPU", 80), style="dim")

    def _summary(self, dev: GpuDevice) -> Text:
        """One device in a few cells: index, utilisation, memory, temperature."""
        text = Text()
        text.append(f"{dev.index}:", style="dim")
        util = dev.util_percent
        text.append(f"{util:.0f}% " if util is not None else "-% ", style=pct_style(util or 0))
        if dev.mem_used is not None and dev.mem_total:
            text.append(f"{self.scale.size(dev.mem_used)}/{self.scale.size(dev.mem_total)} ")
        if dev.temperature_c is not None:
            text.append(f"{dev.temperature_c:.0f}°C ")
        return text

    def line_form(self, width: int) -> Text:
        gpu, why = self._gpu()
        if self.frame is None:
            return self.waiting()
        if gpu is None or not gpu.devices:
            return self.label().append_text(self._nothing(gpu, why))
        text = self.label()
        if gpu.error:
            text.append(safe_text(gpu.error, 60) + " ", style="yellow")
        for dev in gpu.devices:
            text.append_text(self._summary(dev))
        return text

    def _device_box(self, dev: GpuDevice, width: int) -> list[Text]:
        """One device in four lines: name, utilisation with history, memory, temp/power."""
        util = dev.util_percent
        line = Text("util ", style="dim")
        line.append(f"{util:3.0f}% " if util is not None else "  -% ", style=pct_style(util or 0))
        ring = self.history.gpu_util.get(dev.index)
        room = width - len(line)
        if ring is not None and room > 2:
            line.append(sparkline(ring.last(room), room, 100.0), style="green")
        mem = Text("mem  ", style="dim")
        if dev.mem_used is not None and dev.mem_total:
            mem.append(f"{self.scale.size(dev.mem_used)}/{self.scale.size(dev.mem_total)}")
        else:
            mem.append("-")
        extra = Text()
        extra.append(f"{dev.temperature_c:.0f}°C " if dev.temperature_c is not None else "-°C ")
        extra.append(f"{dev.power_w:.0f}W" if dev.power_w is not None else "-W")
        name = Text(f"{dev.index} {safe_text(dev.name or '-', 40)}", style="bold")
        return [name, line, mem, extra]

    def box_form(self, width: int, height: int) -> list[Text]:
        gpu, why = self._gpu()
        if self.frame is None:
            return [self.waiting()]
        if gpu is None or not gpu.devices:
            return [self._nothing(gpu, why)]
        error = [Text(part, style="yellow") for part in wrap(safe_text(gpu.error or "", 80), width)]
        room = height - len(error)  # the error always shows, wrapped to the panel
        boxes = [self._device_box(dev, width) for dev in gpu.devices]
        if sum(len(box) for box in boxes) <= room:
            lines = [line for box in boxes for line in box]
        else:
            lines = [self._summary(dev) for dev in gpu.devices]
            if len(lines) > room:
                shown = max(room - 1, 0)
                lines = [*lines[:shown], Text(f"+{len(lines) - shown} more", style="dim")]
        return lines + error


PANEL_CLASSES: tuple[type[Panel], ...] = (CpuPanel, MemPanel, NetPanel, DiskPanel, GpuPanel)
