"""The top line: host, backend and what its bytes measure, interval, totals, uptime, state.

Segments are dropped from the least important end when the terminal is narrow.
"""

from __future__ import annotations

from rich.text import Text

from nettop_ui.tui.cells import NOTE_MARK
from nettop_ui.tui.frame import Frame
from nettop_ui.tui.model import ViewOptions
from nettop_ui.tui.panels import nic_totals
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.text_widget import TextWidget


def elapsed_text(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def traffic_totals(frame: Frame, totals: bool) -> tuple[float | None, float | None, str]:
    """Up and down over all processes (+ unattributed, + exited processes folded away);
    falls back to the sum of the interfaces the NET panel shows."""
    ups: list[float | None]
    downs: list[float | None]
    if totals:
        ups = [p.sent_bytes for p in frame.processes]
        downs = [p.recv_bytes for p in frame.processes]
    else:
        ups = [p.sent_bps for p in frame.processes]
        downs = [p.recv_bps for p in frame.processes]
    up_known = [v for v in ups if v is not None]
    down_known = [v for v in downs if v is not None]
    u = frame.unattributed
    if up_known or down_known:
        up = float(sum(up_known))
        down = float(sum(down_known))
        if u is not None:
            up += (u.sent_bytes if totals else u.sent_bps) or 0
            down += (u.recv_bytes if totals else u.recv_bps) or 0
        if totals:
            up += frame.folded_bytes[0]
            down += frame.folded_bytes[1]
        return up, down, ""
    if totals:
        return None, None, ""
    nic_up, nic_down = nic_totals(frame.system)  # the NET panel's interfaces, summed
    if nic_up is None and nic_down is None:
        return None, None, ""
    return nic_up, nic_down, " (interfaces)"


class StatusHeader(TextWidget):
    """One line of facts about this run; `set_state` then it redraws (if it changed)."""

    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $panel; }
    """

    def __init__(
        self, *, host: str, backend: str, layer: str, interval_s: float, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.host, self.backend, self.backend_layer = host, backend, layer
        self.interval_s = interval_s
        self.frame: Frame | None = None
        self.opts = ViewOptions()
        self.elapsed_s = 0.0
        self.paused = False
        self.position: str | None = None  # replay: where on the timeline, instead of uptime
        self._facts: tuple[
            Frame | None, bool, tuple[float | None, float | None, str, str | None] | None
        ] = (None, False, None)

    def set_state(
        self, frame: Frame | None, opts: ViewOptions, elapsed_s: float, paused: bool
    ) -> None:
        self.frame, self.opts, self.elapsed_s, self.paused = frame, opts, elapsed_s, paused
        self.show_text()

    def _frame_facts(self) -> tuple[float | None, float | None, str, str | None]:
        """The totals and the backend's note of this frame: each a pass over every
        process, so made once per frame (and totals setting), not on every redraw."""
        frame, totals = self.frame, self.opts.totals
        assert frame is not None
        was_frame, was_totals, facts = self._facts
        if frame is not was_frame or totals != was_totals or facts is None:
            up, down, where = traffic_totals(frame, totals)
            note = next((p.note for p in frame.processes if p.note), None)
            facts = (up, down, where, note)
            self._facts = (frame, totals, facts)
        return facts

    def segments(self) -> list[Text]:
        opts = self.opts
        out = [Text("nettop-ui", style="bold")]
        if self.paused:
            out.append(Text(" PAUSED ", style="bold black on yellow"))
        if self.position is not None:
            out.append(Text(f" {self.position} ", style="bold black on cyan"))
        if opts.user is not None:  # early: narrow terminals drop the segments at the end
            out.append(Text(f"user {safe_text(opts.user, 32)}", style="bold magenta"))
        out.append(Text(f"{self.backend} · {self.backend_layer}", style="cyan"))
        if self.frame is not None:
            up, down, where, note = self._frame_facts()
            suffix = "" if opts.totals else "/s"
            scale = opts.scale
            text = Text("↑", style="bold green").append(scale.traffic(up) + suffix)
            text.append(" ↓", style="bold blue").append(scale.traffic(down) + suffix)
            if opts.totals:
                text.append(" total")
            text.append(where, style="dim")
            out.append(text)
            if note is not None:  # the legend of the mark on byte figures; before the rest
                out.append(Text(f"{NOTE_MARK} {note}", style="yellow"))
        if self.position is None:
            out.append(Text(f"up {elapsed_text(self.elapsed_s)}"))
        out.append(Text(safe_text(self.host, 40), style="bold"))
        out.append(Text(f"every {self.interval_s:g}s", style="dim"))
        if opts.view == "hosts":
            hosts = "remote hosts" + (", local too" if opts.show_local else "")
            out.append(Text(hosts + (", numeric" if opts.numeric else ""), style="magenta"))
        modes = {"tree": "tree (children rolled in)", "user": "by user", "service": "by service"}
        if opts.mode in modes and opts.view == "processes":
            out.append(Text(modes[opts.mode], style="magenta"))
        if opts.only_active:
            out.append(Text("active only", style="magenta"))
        return out

    def make_text(self) -> Text:
        width = self.size.width
        line = Text(no_wrap=True, end="")
        for seg in self.segments():
            sep = 3 if line.plain else 0
            if len(line) + sep + len(seg) > width:
                continue
            if sep:
                line.append(" │ ", style="dim")
            line.append_text(seg)
        return line
