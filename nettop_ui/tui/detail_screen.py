"""The drill-down (enter): one process, its child tree, its connections, its history.

Everything updates live from each frame: tree labels in place (own and subtree
rates), the connections of the process and all its descendants grouped by remote host
(a host row with the name and sums, then its connections with their PIDs: a parent
whose children do the talking does not look idle), and two plotext charts (up/down
traffic; CPU % and resident memory) over the recorded history. Enter on a child in the
tree opens that child; enter on a host row opens the host. It reads the app's
`ViewState` and asks for the rest with messages (`OpenDetail`, `OpenHost`,
`KillRequested`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, Tree
from textual.widgets.tree import TreeNode, UnknownNodeID

from nettop_ui.core import sum_known
from nettop_ui.format import Scale
from nettop_ui.profile import ProcessProfile
from nettop_ui.remotes import remote_address
from nettop_ui.services import NO_SERVICE
from nettop_ui.tui.bindings import DETAIL_BINDINGS
from nettop_ui.tui.cells import NOTE_MARK
from nettop_ui.tui.conn_table import ConnColumn, ConnRow, ConnTable, figure, host_text, plain
from nettop_ui.tui.frame import ConnView, Frame, HistoryView, ProcessView
from nettop_ui.tui.messages import KillRequested, OpenDetail, OpenHost
from nettop_ui.tui.model import parent_index
from nettop_ui.tui.safe import command_line, safe_text
from nettop_ui.tui.state import ViewState

HOST_ROW = "host:"  # key prefix of a host's heading row in the connections table

CONN_COLUMNS = (
    ConnColumn("remote", "REMOTE", 0),
    ConnColumn("pid", "PID", 8),
    ConnColumn("proto", "PROTO", 6, narrow=False),
    ConnColumn("local", "LOCAL", 0, narrow=False),
    ConnColumn("up", "UP/s", 10, "right"),
    ConnColumn("down", "DOWN/s", 10, "right"),
)


def connection_rows(conns: list[tuple[int, ConnView]], scale: Scale) -> list[ConnRow]:
    """(pid, connection) pairs grouped by remote host, busiest host first: a heading row
    per host (name, address, how many connections, summed rates), then its connections."""
    groups: dict[str, list[tuple[int, ConnView]]] = {}
    for pid, c in conns:
        groups.setdefault(remote_address(c.remote), []).append((pid, c))

    def rate(pc: tuple[int, ConnView]) -> float:
        return pc[1].sent_bps + pc[1].recv_bps

    ordered = sorted(groups.items(), key=lambda g: (-sum(rate(pc) for pc in g[1]), g[0]))
    rows: list[ConnRow] = []
    for address, members in ordered:
        first = members[0][1]
        count = f"{len(members)} connection" + ("" if len(members) == 1 else "s")
        if not first.protocol:  # the history's: bytes per host, no connections
            count = "per host"
        heading = {
            "remote": host_text(address, first.remote_name, first.remote_scope),
            "local": plain(count, style="dim"),
            "up": figure(sum(c.sent_bps for _, c in members), scale),
            "down": figure(sum(c.recv_bps for _, c in members), scale),
        }
        rows.append(ConnRow(HOST_ROW + address, heading))
        for pid, c in sorted(members, key=lambda pc: (-rate(pc), pc[0], pc[1].local)):
            cells = {
                "remote": plain("  " + (c.remote or "?")),
                "pid": Text(str(pid)),
                "proto": plain(c.protocol, 8),
                "local": plain(c.local or ("?" if c.protocol else "")),
                "up": figure(c.sent_bps, scale),
                "down": figure(c.recv_bps, scale),
            }
            rows.append(ConnRow(f"{pid}|{c.protocol}|{c.local}|{c.remote}", cells))
    return rows


def axis_unit(step_s: float) -> tuple[int, str]:
    """The charts' time axis in the samples' step: seconds live, minutes (hours, days)
    in the history."""
    for per, unit in ((86400, "days"), (3600, "hours"), (60, "minutes")):
        if step_s >= per:
            return per, unit
    return 1, "seconds"


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


def _count(value: int | None) -> str:
    return str(value) if value is not None else "-"


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
        # The history keeps each process's hosts but no connections: listed per host.
        self.per_host = not state.source.per_connection and state.source.per_host
        self.per_connection = state.source.per_connection or self.per_host
        self.backend_name = state.source.backend_name
        self.process: ProcessView | None = None
        self._node_of: dict[str, TreeNode[str]] = {}
        self._conns: list[tuple[int, ConnView]] = []  # the subtree's, with their pids
        self._with_children = False
        self._mounted = False  # frames that come before on_mount wait for it
        self._history: HistoryView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        yield Static(id="detail-cmd")
        yield Static(id="detail-cgroup")
        yield Static(id="detail-stats")
        yield Static(id="detail-profile")
        with Horizontal(id="detail-top"):
            tree: Tree[str] = Tree(Text("…"), data=self.process_key, id="detail-tree")
            tree.border_title = "process tree (own · with children)"
            yield tree
            with Vertical(id="detail-conns-box") as box:
                box.border_title = "connections"
                if self.per_connection:
                    yield ConnTable(CONN_COLUMNS, id="detail-conns")
                else:
                    yield Static(
                        Text(
                            f"the {self.backend_name} backend does not see individual "
                            "connections (the ebpf backend does)",
                            style="dim",
                        ),
                        id="detail-noconns",
                    )
        from textual_plotext import PlotextPlot  # plotext loads with a drill-down, not at start

        with Horizontal(id="detail-charts"):
            yield PlotextPlot(id="chart-traffic")
            yield PlotextPlot(id="chart-cpu")
        yield Footer()

    def on_mount(self) -> None:
        self._mounted = True
        self.query_one("#detail-tree", Tree).focus()
        self.call_after_refresh(self.on_resize)
        if self.initial is not None:
            self.show_frame(self.initial, self.scale)
            self.initial = None

    # -- updates --------------------------------------------------------------------

    def show_frame(self, frame: Frame, scale: Scale) -> None:
        if not self._mounted:  # pushed, not composed yet: on_mount draws this one
            self.initial, self.scale = frame, scale
            return
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
            self._conns = [
                (q.pid, c)
                for k in tree_of
                if (q := procs.get(k) or (self.process if k == self.process_key else None))
                for c in q.connections
            ]
            self._with_children = len(tree_of) > 1
            self._show_connections()
        history = frame.histories.get(self.process_key)
        if history is not None:
            self._history = history
        self._show_charts(frame.ts, frame.interval_s)

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
        # denet's other two disk signals, since the process started (docs/disk.md)
        stats.append("  syscalls ", style="dim").append(
            f"R {scale.size(p.syscall_read_bytes)} W {scale.size(p.syscall_write_bytes)}"
        )
        stats.append("  faults ", style="dim").append(
            f"{_count(p.page_faults_cached)} cached {_count(p.page_faults_disk)} disk"
        )
        stats.append("  conns ", style="dim").append(_count(p.connection_count))
        if p.gpu_memory_bytes is not None:
            stats.append("  GPU ", style="dim").append(scale.size(p.gpu_memory_bytes))
        self.query_one("#detail-stats", Static).update(stats)
        profile = self.query_one("#detail-profile", Static)
        profile.display = p.ebpf is not None
        if p.ebpf is not None:
            profile.update(profile_text(p.ebpf))

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

    def on_resize(self) -> None:
        if self.per_connection and self.process is not None:
            self._show_connections()

    def _show_connections(self) -> None:
        box = self.query_one("#detail-conns-box")
        conns = self._conns
        hosts = len({remote_address(c.remote) for _, c in conns})
        whose = "with children: " if self._with_children else ""
        if self.per_host:
            box.border_title = f"remote hosts ({whose}{hosts})" if conns else "remote hosts (none)"
        else:
            box.border_title = (
                f"connections ({whose}{len(conns)} to {hosts} host{'' if hosts == 1 else 's'})"
                if conns
                else "connections (none seen)"
            )
        self.query_one("#detail-conns", ConnTable).show(connection_rows(conns, self.scale))

    def _show_charts(self, now: float, step_s: float) -> None:
        from textual_plotext import PlotextPlot

        h = self._history
        traffic = self.query_one("#chart-traffic", PlotextPlot)
        cpu = self.query_one("#chart-cpu", PlotextPlot)
        per, unit = axis_unit(step_s)
        for plot in (traffic, cpu):
            plot.plt.clear_figure()
            plot.plt.xlabel(unit)
        if h is None or not h.ts:
            traffic.plt.title("traffic: history from the next sample")
            cpu.plt.title("CPU and memory: history from the next sample")
            traffic.refresh()
            cpu.refresh()
            return
        xs = [(t - now) / per for t in h.ts]
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

    def on_screen_resume(self) -> None:
        """Back from a child's drill-down or a host: draw the frame on display now."""
        if self._mounted and self.state.shown is not None and self.process is not None:
            self.show_frame(self.state.shown, self.state.opts.scale)

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        key = event.node.data
        if key is not None and key != self.process_key:
            self.post_message(OpenDetail(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is not None and key.startswith(HOST_ROW):
            self.post_message(OpenHost(key.removeprefix(HOST_ROW)))

    def action_kill(self) -> None:
        if self.process is not None:
            self.post_message(KillRequested(self.process))


CATEGORY_STYLES = {
    "file_io": "blue",
    "memory": "magenta",
    "process": "yellow",
    "network": "green",
    "time": "cyan",
    "ipc": "red",
    "signal": "bright_red",
    "security": "bright_magenta",
    "system": "bright_yellow",
    "other": "grey50",
}
BAR_WIDTH = 40


def category_bar(by_category: dict[str, int], width: int = BAR_WIDTH) -> Text:
    """The syscall categories as one bar, each its share of the width, then a legend."""
    total = sum(by_category.values())
    text = Text()
    if not total:
        return text.append("no syscalls yet", style="dim")
    shares = sorted(((n, c) for c, n in by_category.items() if n), reverse=True)
    used = 0
    for n, cat in shares:
        cells = max(1, round(width * n / total))
        cells = min(cells, width - used)
        text.append("█" * cells, style=CATEGORY_STYLES.get(cat, ""))
        used += cells
    text.append(" " * (width - used))
    for n, cat in shares:
        text.append(f" {cat} ", style=CATEGORY_STYLES.get(cat, "")).append(
            f"{100 * n / total:.0f}%", style="dim"
        )
    return text


def profile_text(e: ProcessProfile) -> Text:
    """`--profile`'s section: off-CPU time, the threads blocked longest, the syscall
    categories as a bar and the top syscalls. Detail (threads, syscalls by name) counts
    from when the drill-down opened, unless the kernel keeps it for every process."""
    text = Text(no_wrap=True, overflow="ellipsis")
    now = f"{e.offcpu_percent:.1f}%" if e.offcpu_percent is not None else "-"
    text.append("off-CPU ", style="bold").append(f"{e.offcpu_ns / 1e9:.3f} s")
    text.append(f" in {e.offcpu_events} waits", style="dim")
    text.append("  mean ", style="dim").append(f"{e.offcpu_avg_ns / 1e6:.1f} ms")
    text.append("  longest ", style="dim").append(f"{e.offcpu_max_ns / 1e6:.1f} ms")
    text.append("  now ", style="dim").append(now)
    waits = (
        ("disk", e.offcpu_disk_ns),
        ("file", e.offcpu_file_ns),
        ("network", e.offcpu_network_ns),
        ("sleep", e.offcpu_sleep_ns),
    )
    text.append("  waiting on", style="dim")
    for name, ns in waits:
        text.append(f" {name} ", style="dim").append(f"{ns / 1e9:.2f} s")
    threads = e.top_threads()
    text.append("\nblocking threads ", style="bold")
    if threads is None:
        text.append("-", style="dim")
    elif not threads:
        text.append("none yet", style="dim")
    for t, share in (threads or [])[:5]:
        text.append(f" {t.tid} ", style="cyan").append(f"{t.time_ns / 1e6:.1f} ms {share:.0f}%")
    rate = f"{e.syscalls_per_s:.0f}/s" if e.syscalls_per_s is not None else "-/s"
    text.append("\nsyscalls ", style="bold").append(f"{e.syscalls} ").append(rate, style="dim")
    by_category = e.by_category()
    text.append("  ")
    text.append_text(category_bar(by_category) if by_category is not None else Text("-"))
    top = e.top_syscalls()
    text.append("\ntop syscalls ", style="bold")
    text.append(", ".join(f"{name} {n}" for name, n in top) if top else "-")
    return text


def _as_exited(p: ProcessView) -> ProcessView:
    return replace(p, exited=True, sent_bps=None, recv_bps=None, cpu_percent=None)
