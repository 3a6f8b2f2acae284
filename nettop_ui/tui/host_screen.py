"""The host screen (enter on a remote host): its connections and the processes talking to it.

It updates live from each frame: a title (address, name, local or not), the host's
figures (rates, totals since start, open connections, protocols, ports), every
process's connections whose remote end is this address (PID, PROGRAM, PROTO, LOCAL,
remote PORT, rates and totals), and one row per process with its sums over them.
Enter on either table opens that process's drill-down; `esc` goes back.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nettop_ui.format import Scale
from nettop_ui.remotes import remote_address
from nettop_ui.tui.bindings import HOST_BINDINGS
from nettop_ui.tui.conn_table import (
    ConnColumn,
    ConnRow,
    ConnTable,
    figure,
    host_text,
    plain,
    port_of,
)
from nettop_ui.tui.frame import ConnView, Frame, ProcessView, RemoteView
from nettop_ui.tui.messages import OpenDetail
from nettop_ui.tui.state import ViewState

CONN_COLUMNS = (
    ConnColumn("pid", "PID", 8),
    ConnColumn("program", "PROGRAM", 0),
    ConnColumn("proto", "PROTO", 6, narrow=False),
    ConnColumn("local", "LOCAL", 0, narrow=False),
    ConnColumn("port", "PORT", 7, narrow=False),
    ConnColumn("up", "UP/s", 10, "right"),
    ConnColumn("down", "DOWN/s", 10, "right"),
    ConnColumn("sent", "SENT", 10, "right", narrow=False),
    ConnColumn("recv", "RECV", 10, "right", narrow=False),
)
PROC_COLUMNS = (
    ConnColumn("pid", "PID", 8),
    ConnColumn("program", "PROGRAM", 0),
    ConnColumn("user", "USER", 10, narrow=False),
    ConnColumn("conns", "CONNS", 7, "right", narrow=False),
    ConnColumn("up", "UP/s", 10, "right"),
    ConnColumn("down", "DOWN/s", 10, "right"),
    ConnColumn("sent", "SENT", 10, "right", narrow=False),
    ConnColumn("recv", "RECV", 10, "right", narrow=False),
)

# What a host's name is, by RemoteHostState.name_source.
NAME_SOURCES = {
    "dns": "name: asked for by a process (a DNS answer seen on this machine)",
    "resolver": "name: reverse lookup (PTR record or /etc/hosts)",
}


def host_connections(frame: Frame, address: str) -> list[tuple[ProcessView, ConnView]]:
    """Every process's connections to `address`, busiest first."""
    found = [
        (p, c)
        for p in frame.processes
        for c in p.connections
        if remote_address(c.remote) == address
    ]
    found.sort(key=lambda pc: (-(pc[1].sent_bps + pc[1].recv_bps), pc[0].pid, pc[1].local))
    return found


def _sums(conns: list[ConnView], scale: Scale) -> dict[str, Text]:
    return {
        "up": figure(sum(c.sent_bps for c in conns), scale),
        "down": figure(sum(c.recv_bps for c in conns), scale),
        "sent": figure(sum(c.sent_bytes for c in conns), scale),
        "recv": figure(sum(c.recv_bytes for c in conns), scale),
    }


def connection_rows(found: list[tuple[ProcessView, ConnView]], scale: Scale) -> list[ConnRow]:
    return [
        ConnRow(
            f"{p.key}|{c.protocol}|{c.local}|{c.remote}",
            {
                "pid": Text(str(p.pid)),
                "program": plain(p.name, 40, "bold"),
                "proto": plain(c.protocol, 8),
                "local": plain(c.local or "?"),
                "port": Text(port_of(c.remote)),
                **_sums([c], scale),
            },
        )
        for p, c in found
    ]


def process_rows(found: list[tuple[ProcessView, ConnView]], scale: Scale) -> list[ConnRow]:
    """One row per process, its connections to the host summed; the order of `found`."""
    by_process: dict[str, tuple[ProcessView, list[ConnView]]] = {}
    for p, c in found:
        by_process.setdefault(p.key, (p, []))[1].append(c)
    return [
        ConnRow(
            key,
            {
                "pid": Text(str(p.pid)),
                "program": plain(p.name, 40, "bold"),
                "user": plain(p.user or "-", 9),
                "conns": Text(str(len(conns)), justify="right"),
                **_sums(conns, scale),
            },
        )
        for key, (p, conns) in by_process.items()
    ]


class HostScreen(Screen[None]):
    """One remote host in depth. `esc` goes back to the host table."""

    BINDINGS: ClassVar[list[BindingType]] = HOST_BINDINGS

    def __init__(self, address: str, state: ViewState) -> None:
        super().__init__()
        self.address = address
        self.state = state
        self.host: RemoteView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="host-title")
        yield Static(id="host-stats")
        with Vertical(id="host-conns-box") as box:
            box.border_title = "connections"
            yield ConnTable(CONN_COLUMNS, id="host-conns")
        with Vertical(id="host-procs-box") as box:
            box.border_title = "processes"
            yield ConnTable(PROC_COLUMNS, id="host-procs")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#host-conns", ConnTable).focus()
        self.call_after_refresh(self.redraw)

    def redraw(self) -> None:
        if self.state.shown is not None:
            self.show_frame(self.state.shown, self.state.opts.scale)

    def on_resize(self) -> None:
        self.redraw()

    def on_screen_resume(self) -> None:
        self.redraw()

    def show_frame(self, frame: Frame, scale: Scale) -> None:
        if not self.is_mounted:  # pushed, not composed yet: on_mount draws the frame shown
            return
        host = next((h for h in frame.remotes or () if h.address == self.address), None)
        if host is not None:
            self.host = host
        self._show_text(scale, listed=host is not None)
        found = host_connections(frame, self.address)
        conns_box = self.query_one("#host-conns-box")
        conns_box.border_title = (
            f"connections ({len(found)})" if found else "connections (none open)"
        )
        self.query_one("#host-conns", ConnTable).show(connection_rows(found, scale))
        procs = process_rows(found, scale)
        self.query_one("#host-procs-box").border_title = f"processes talking to it ({len(procs)})"
        self.query_one("#host-procs", ConnTable).show(procs)

    def _show_text(self, scale: Scale, listed: bool) -> None:
        h = self.host
        numeric = self.state.opts.numeric
        title = Text("HOST ", style="bold")
        if h is None:
            title.append_text(host_text(self.address, None, "remote"))
        else:
            title.append_text(host_text(h.address, h.name, h.scope, numeric))
            if h.name and not numeric and h.name_source:
                title.append(f"  {NAME_SOURCES.get(h.name_source, h.name_source)}", style="dim")
        if not listed:
            title.append("  no longer listed (folded or gone)", style="bold red")
        self.query_one("#host-title", Static).update(title)
        stats = Text()
        if h is not None:
            stats.append("↑ ", style="bold green").append(scale.traffic_rate(h.sent_bps))
            stats.append("  ↓ ", style="bold blue").append(scale.traffic_rate(h.recv_bps))
            stats.append("  since start ", style="dim").append(
                f"↑{scale.traffic(h.sent_bytes)} ↓{scale.traffic(h.recv_bytes)}"
            )
            stats.append("  open connections ", style="dim").append(
                "-" if h.connection_count is None else str(h.connection_count)
            )
            if h.protocols:
                stats.append("  ", style="dim").append(",".join(h.protocols))
            if h.ports:
                stats.append("  ports ", style="dim").append(",".join(map(str, h.ports[:20])))
                if len(h.ports) > 20:
                    stats.append(f" +{len(h.ports) - 20}")
        self.query_one("#host-stats", Static).update(stats)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is not None:
            self.post_message(OpenDetail(key.split("|", 1)[0]))

    def action_back(self) -> None:
        self.dismiss(None)
