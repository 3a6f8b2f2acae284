"""The drill-down (enter): one process, its child tree, its connections, its history.

Everything updates live from each frame: tree labels in place (own and subtree
rates), the connections table keyed by (protocol, local, remote), and two plotext
charts (up/down traffic; CPU % and resident memory) over the recorded history.
It reads the app's `ViewState` and asks for a signal with a `KillRequested` message.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, Tree
from textual.widgets.tree import TreeNode, UnknownNodeID
from textual_plotext import PlotextPlot

from nettop_ui.core import sum_known
from nettop_ui.format import Scale
from nettop_ui.services import NO_SERVICE
from nettop_ui.tui.bindings import DETAIL_BINDINGS
from nettop_ui.tui.cells import NOTE_MARK, Cell
from nettop_ui.tui.frame import ConnView, Frame, HistoryView, ProcessView
from nettop_ui.tui.messages import KillRequested
from nettop_ui.tui.model import parent_index
from nettop_ui.tui.safe import command_line, safe_text
from nettop_ui.tui.state import ViewState


def descendants(frame: Frame, key: str) -> dict[str, list[str]]:
    """Children lists (row keys) of every process under `key`, `key` included."""
    parents = parent_index(frame.processes)
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    out: dict[str, list[str]] = {}
    stack = [key]
    while stack:
        k = stack.pop()
        if k in out:
            continue
        out[k] = children.get(k, [])
        stack.extend(out[k])
    return out


def _peak(*series: tuple[float, ...]) -> float:
    return max((v for s in series for v in s if v == v), default=0.0)


def _points(
    xs: list[float], ys: tuple[float, ...], scale: float
) -> tuple[list[float], list[float]]:
    pts = [(x, y / scale) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
    return [p[0] for p in pts], [p[1] for p in pts]


class DetailScreen(Screen[None]):
    """One process in depth. `esc` goes back to the table, same row, sort and filter."""

    BINDINGS: ClassVar[list[BindingType]] = DETAIL_BINDINGS

    def __init__(self, key: str, state: ViewState) -> None:
        super().__init__()
        self.state = state
        self.initial, self.scale = state.shown, state.opts.scale
        self.process_key = key
        self.per_connection = state.source.per_connection
        self.backend_name = state.source.backend_name
        self.process: ProcessView | None = None
        self._node_of: dict[str, TreeNode[str]] = {}
        self._conn_rows: dict[str, tuple[Any, ...]] = {}
        self._conn_width = 0
        self._history: HistoryView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        yield Static(id="detail-cmd")
        yield Static(id="detail-cgroup")
        yield Static(id="detail-stats")
        with Horizontal(id="detail-top"):
            tree: Tree[str] = Tree(Text("…"), data=self.process_key, id="detail-tree")
            tree.border_title = "process tree (own · with children)"
            yield tree
            with Vertical(id="detail-conns-box") as box:
                box.border_title = "connections"
                if self.per_connection:
                    table: DataTable[Cell] = DataTable(
                        id="detail-conns",
                        cursor_type="row",
                        cell_padding=0,
                        show_row_labels=False,
                    )
                    yield table
                else:
                    yield Static(
                        Text(
                            f"the {self.backend_name} backend does not see individual "
                            "connections (the ebpf backend does)",
                            style="dim",
                        ),
                        id="detail-noconns",
                    )
        with Horizontal(id="detail-charts"):
            yield PlotextPlot(id="chart-traffic")
            yield PlotextPlot(id="chart-cpu")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-tree", Tree).focus()
        self.call_after_refresh(self.on_resize)
        if self.initial is not None:
            self.show_frame(self.initial, self.scale)
            self.initial = None

    # -- updates --------------------------------------------------------------------

    def show_frame(self, frame: Frame, scale: Scale) -> None:
        self.scale = scale
        procs = frame.by_key()
        p = procs.get(self.process_key)
        if p is None and self.process is None:
            self.query_one("#detail-title", Static).update(Text("the process is gone"))
            return
        if p is not None:
            self.process = p
        elif self.process is not None and not self.process.exited:
            self.process = _as_exited(self.process)
        assert self.process is not None
        tree_of = descendants(frame, self.process_key) if p is not None else {self.process_key: []}
        self._show_text(self.process, procs, tree_of)
        self._show_tree(self.process, procs, tree_of)
        if self.per_connection:
            self._show_connections(self.process.connections)
        history = frame.histories.get(self.process_key)
        if history is not None:
            self._history = history
        self._show_charts(frame.ts)

    def _subtree(
        self, key: str, procs: dict[str, ProcessView], tree_of: dict[str, list[str]]
    ) -> tuple[float | None, float | None]:
        ups: list[float | None] = []
        downs: list[float | None] = []
        stack = [key]
        while stack:
            k = stack.pop()
            q = procs.get(k)
            if q is not None:
                ups.append(q.sent_bps)
                downs.append(q.recv_bps)
            stack.extend(tree_of.get(k, []))
        return sum_known(ups), sum_known(downs)

    def _show_text(
        self,
        p: ProcessView,
        procs: dict[str, ProcessView],
        tree_of: dict[str, list[str]],
    ) -> None:
        title = Text(f"PID {p.pid} ", style="bold")
        title.append(safe_text(p.name, 80), style="bold cyan")
        title.append(f"  user {safe_text(p.user, 32)}", style="")
        if p.ppid is not None:
            title.append(f"  parent {p.ppid}", style="dim")
        if p.threads is not None:
            title.append(f"  threads {p.threads}", style="dim")
        if p.exited:
            title.append("  exited", style="bold red")
        if p.note is not None:  # what the marked byte figures below get wrong
            title.append(f"  {NOTE_MARK} {p.note}", style="yellow")
        self.query_one("#detail-title", Static).update(title)
        cmd = Text(
            command_line(p.name, p.cmdline, 600), style="dim", no_wrap=True, overflow="ellipsis"
        )
        self.query_one("#detail-cmd", Static).update(cmd)
        self._show_cgroup(p)
        up, down = self._subtree(self.process_key, procs, tree_of)
        stats = Text()
        mark = NOTE_MARK if p.note is not None else ""
        scale = self.scale
        stats.append("↑ ", style="bold green").append(scale.traffic_rate(p.sent_bps) + mark)
        stats.append("  ↓ ", style="bold blue").append(scale.traffic_rate(p.recv_bps) + mark)
        stats.append("  total ", style="dim").append(
            f"↑{scale.traffic(p.sent_bytes)} ↓{scale.traffic(p.recv_bytes)}"
        )
        if len(tree_of) > 1:
            stats.append("  with children ", style="dim")
            stats.append(f"↑{scale.traffic_rate(up)} ↓{scale.traffic_rate(down)}")
        cpu = f"{p.cpu_percent:.1f}%" if p.cpu_percent is not None else "-"
        stats.append("  CPU ", style="dim").append(cpu)
        stats.append("  MEM ", style="dim").append(scale.size(p.rss_bytes))
        stats.append("  disk ", style="dim").append(
            f"R {scale.size_rate(p.read_bps)} W {scale.size_rate(p.write_bps)}"
        )
        conns = str(p.connection_count) if p.connection_count is not None else "-"
        stats.append("  conns ", style="dim").append(conns)
        if p.gpu_memory_bytes is not None:
            stats.append("  GPU ", style="dim").append(scale.size(p.gpu_memory_bytes))
        self.query_one("#detail-stats", Static).update(stats)

    def _show_cgroup(self, p: ProcessView) -> None:
        """Its service and cgroup; the line is hidden where there are no cgroups (macOS)."""
        line = self.query_one("#detail-cgroup", Static)
        line.display = p.cgroup is not None
        if p.cgroup is None:
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("service ", style="dim")
        text.append(safe_text(p.service or NO_SERVICE, 120), style="bold")
        text.append("  cgroup ", style="dim").append(safe_text(p.cgroup, 400))
        line.update(text)

    def _label(
        self, key: str, procs: dict[str, ProcessView], tree_of: dict[str, list[str]]
    ) -> Text:
        p = procs.get(key) or self.process
        assert p is not None
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(safe_text(p.name, 40), style="bold" if not p.exited else "dim")
        text.append(f" {p.pid}", style="dim")
        rate = self.scale.traffic_rate
        text.append(f"  ↑{rate(p.sent_bps)} ↓{rate(p.recv_bps)}")
        if tree_of.get(key):
            up, down = self._subtree(key, procs, tree_of)
            text.append(f"  Σ ↑{rate(up)} ↓{rate(down)}", style="cyan")
        return text

    def _show_tree(
        self,
        p: ProcessView,
        procs: dict[str, ProcessView],
        tree_of: dict[str, list[str]],
    ) -> None:
        tree = self.query_one("#detail-tree", Tree)
        tree.root.set_label(self._label(self.process_key, procs, tree_of))
        tree.root.expand()
        wanted: dict[str, str] = {}  # child key -> parent key, parents first
        order = [self.process_key]
        for k in order:
            kids = sorted(tree_of.get(k, []), key=lambda c: procs[c].pid if c in procs else 0)
            for c in kids:
                wanted[c] = k
                order.append(c)
        for key, node in list(self._node_of.items()):
            parent = node.parent
            if key not in wanted or parent is None or parent.data != wanted[key]:
                del self._node_of[key]
                with contextlib.suppress(UnknownNodeID):  # gone with a removed ancestor
                    tree.get_node_by_id(node.id).remove()
        for child in order[1:]:
            label = self._label(child, procs, tree_of)
            existing = self._node_of.get(child)
            if existing is not None:
                existing.set_label(label)
                node = existing
            else:
                parent_key = wanted[child]
                parent_node = (
                    tree.root if parent_key == self.process_key else self._node_of[parent_key]
                )
                node = parent_node.add(label, data=child, expand=True)
                self._node_of[child] = node
            node.allow_expand = bool(tree_of.get(child))
        tree.root.allow_expand = bool(tree_of.get(self.process_key))

    def _layout_connections(self, table: DataTable[Cell]) -> None:
        """Columns sized to the box; when narrow, only the remote end and the rates."""
        width = table.size.width - 1
        if width <= 0 or width == self._conn_width:
            return
        self._conn_width = width
        table.clear(columns=True)
        self._conn_rows.clear()
        if width >= 60:
            endpoint = (width - 6 - 20) // 2
            columns = [
                ("proto", "PROTO", 6),
                ("local", "LOCAL", endpoint),
                ("remote", "REMOTE", endpoint),
            ]
        else:
            columns = [("remote", "REMOTE", max(width - 20, 8))]
        for key, label, w in [*columns, ("up", "UP/s", 10), ("down", "DOWN/s", 10)]:
            justify: Literal["left", "right"] = "right" if key in ("up", "down") else "left"
            table.add_column(Text(label, justify=justify), width=w, key=key)

    def on_resize(self) -> None:
        if self.per_connection and self.process is not None:
            self._show_connections(self.process.connections)

    def _show_connections(self, conns: tuple[ConnView, ...]) -> None:
        box = self.query_one("#detail-conns-box")
        box.border_title = f"connections ({len(conns)})" if conns else "connections (none seen)"
        table = self.query_one("#detail-conns", DataTable)
        self._layout_connections(table)
        if not table.columns:
            return
        ordered = sorted(conns, key=lambda c: (-(c.sent_bps + c.recv_bps), c.remote, c.local))
        scale = self.scale
        rows = {f"{c.protocol}|{c.local}|{c.remote}": c for c in ordered}
        with self.app.batch_update():
            for key in [k for k in self._conn_rows if k not in rows]:
                table.remove_row(key)
                del self._conn_rows[key]
            for key, c in rows.items():
                values = (c.protocol, c.local, c.remote, c.sent_bps, c.recv_bps, scale)
                old = self._conn_rows.get(key)
                if old == values:
                    continue
                cells = {
                    "proto": Cell(c.protocol, Text(safe_text(c.protocol, 8)), key),
                    "local": Cell(c.local, _endpoint(c.local), key),
                    "remote": Cell(c.remote, _endpoint(c.remote), key),
                    "up": Cell(c.sent_bps, Text(scale.traffic(c.sent_bps), justify="right")),
                    "down": Cell(c.recv_bps, Text(scale.traffic(c.recv_bps), justify="right")),
                }
                shown = [k.value for k in table.columns]
                if old is None:
                    table.add_row(*(cells[k] for k in shown if k is not None), key=key)
                else:
                    for col in shown:
                        if col is not None:
                            table.update_cell(key, col, cells[col], update_width=False)
                self._conn_rows[key] = values
            position = {k: i for i, k in enumerate(rows)}
            table.sort("remote", key=lambda cell: position.get(cell.row, len(position)))

    def _show_charts(self, now: float) -> None:
        h = self._history
        traffic = self.query_one("#chart-traffic", PlotextPlot)
        cpu = self.query_one("#chart-cpu", PlotextPlot)
        for plot in (traffic, cpu):
            plot.plt.clear_figure()
            plot.plt.xlabel("seconds")
        if h is None or not h.ts:
            traffic.plt.title("traffic: history from the next sample")
            cpu.plt.title("CPU and memory: history from the next sample")
            traffic.refresh()
            cpu.refresh()
            return
        xs = [t - now for t in h.ts]
        size, unit = self.scale.traffic_axis(_peak(h.sent_bps, h.recv_bps))
        plt = traffic.plt
        plt.title(f"traffic ({unit}/s)")
        for series, label, color in ((h.sent_bps, "up", "green"), (h.recv_bps, "down", "blue")):
            px, py = _points(xs, series, size)
            if px:
                plt.plot(px, py, label=label, color=color, marker="braille")
        plt = cpu.plt
        size, unit = self.scale.size_axis(_peak(h.rss_bytes))
        plt.title(f"CPU % (left) and memory {unit} (right)")
        px, py = _points(xs, h.cpu_percent, 1.0)
        if px:
            plt.plot(px, py, label="CPU %", color="cyan", marker="braille")
        px, py = _points(xs, h.rss_bytes, size)
        if px:
            plt.plot(px, py, label=unit, color="magenta", marker="braille", yside="right")
        traffic.refresh()
        cpu.refresh()

    # -- actions --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action not in self.state.disabled_actions

    def action_back(self) -> None:
        self.dismiss(None)

    def action_kill(self) -> None:
        if self.process is not None:
            self.post_message(KillRequested(self.process))


def _endpoint(address: str) -> Text:
    return Text(safe_text(address or "?", 80), no_wrap=True, overflow="ellipsis")


def _as_exited(p: ProcessView) -> ProcessView:
    return replace(p, exited=True, sent_bps=None, recv_bps=None, cpu_percent=None)
