"""The main screen: header, system panels, the process table, the filter bar, the footer.

`h` swaps the process table for the remote-host table (`hosts.py`; the same widget with
the host columns, keyed by address); each keeps its own rows and cursor.

It draws the `ViewState` the app hands it. Key actions replace the view options
(`set_options`, which redraws from the frame on display; never waiting for sampling);
what needs the app (the drill-down, a signal, the cursor's history) goes up as a message.
"""

from __future__ import annotations

import functools
import itertools
import operator
import time
from dataclasses import replace
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from nettop_ui import registry
from nettop_ui.filter_expr import connections_missing
from nettop_ui.tui.bindings import MAIN_BINDINGS
from nettop_ui.tui.columns import DISK_SIGNAL_COLUMNS, PROFILE_COLUMNS
from nettop_ui.tui.filter_bar import FilterBar
from nettop_ui.tui.frame import Frame
from nettop_ui.tui.header import StatusHeader
from nettop_ui.tui.hosts import (
    HOST_TABLE,
    HostRowCache,
    build_host_rows,
    host_sort,
    hosts_unknown,
)
from nettop_ui.tui.messages import (
    CursorMoved,
    DisplayReady,
    KillRequested,
    OpenDetail,
    OpenHost,
)
from nettop_ui.tui.model import (
    GROUPINGS,
    Matcher,
    RowCache,
    RowData,
    build_rows,
    group_of,
)
from nettop_ui.tui.panels import PANEL_CLASSES, Panel
from nettop_ui.tui.process_table import ProcessTable
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.state import ViewState
from nettop_ui.tui.user_picker import UserPicker

PANEL_IDS = ("cpu", "mem", "net", "disk", "gpu")


class KeysFooter(Footer):
    """Textual's footer, mounting its keys anew (up to 40 widgets, and the screen laid
    out again: ~50 ms at 2,000 processes) only when the keys it shows change, and not
    while keys are being typed: `/`, the filter, Enter change the focus twice and
    mostly end where they began, and the typing should not wait for the footer."""

    def __init__(self, state: ViewState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._shown: tuple[object, ...] | None = None
        self._later: Timer | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if self._later is not None:
            self._later.stop()
            self._later = None
        wait = self.state.source.typing_for()
        if wait > 0 and self._shown is not None:
            self._later = self.set_timer(wait, lambda: self.bindings_changed(screen))
            return
        shown = tuple(
            (b.key, b.action, b.description, enabled, tip)
            for _, b, enabled, tip in screen.active_bindings.values()
            if b.show
        )
        if shown == self._shown:
            return
        super().bindings_changed(screen)
        if screen.app.app_focus and self.is_attached and screen is self.screen:  # recomposed
            self._shown = shown


_with_connections = functools.cache(registry.with_connections)  # loads every backend: once
PROCESS_OF = operator.attrgetter("process")  # a row's process: counted in a C loop
HEADER_EVERY_S = 1.0  # the header's uptime: shown afresh at least this often
WIDE_MIN = (120, 34)  # columns, rows from which panels become boxes side by side


class MainScreen(Screen[None]):
    """Everything at a glance; see `nettop_ui.tui.bindings` for the keys."""

    BINDINGS: ClassVar[list[BindingType]] = MAIN_BINDINGS

    def __init__(self, state: ViewState) -> None:
        super().__init__(id="main")
        self.state = state
        self._layout_for: tuple[int, int, bool, bool, frozenset[str]] | None = None
        self.rows: list[RowData] = []
        self._row_cache = RowCache()
        self._host_cache = HostRowCache()
        self._return_to: str | None = None  # row to select when this screen resumes
        # Drawn every tick: kept, not looked up (a query walks the DOM: ~0.5 ms each)
        self._panels: list[Panel] = []
        self._header_at = float("-inf")  # when the header was last shown (monotonic)

    def compose(self) -> ComposeResult:
        state = self.state
        yield StatusHeader(
            host=state.host,
            backend=state.source.backend_name,
            layer=state.source.layer,
            interval_s=state.source.interval_s,
            id="header",
        )
        yield Static(id="banner")
        with Container(id="panels"):
            self._panels = [
                cls(state.system_history, id=f"panel-{panel_id}")
                for panel_id, cls in zip(PANEL_IDS, PANEL_CLASSES, strict=True)
            ]
            yield from self._panels
        yield ProcessTable(id="processes")
        yield ProcessTable(HOST_TABLE, id="hosts", classes="-hidden")
        yield Static(id="hosts-none", classes="-hidden")
        yield FilterBar(id="filter")
        yield KeysFooter(state, compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action not in self.state.disabled_actions

    def on_mount(self) -> None:
        self.table.focus()
        self.post_message(DisplayReady())

    # -- drawing --------------------------------------------------------------------

    @property
    def hosts_view(self) -> bool:
        return self.state.opts.view == "hosts"

    @property
    def table(self) -> ProcessTable:
        """The table on display: processes, or remote hosts."""
        return self.query_one("#hosts" if self.hosts_view else "#processes", ProcessTable)

    def _ensure_layout(self) -> bool:
        width, height = self.size
        frame = self.state.shown
        has_gpu = bool(frame and frame.gpu and frame.gpu.devices)
        numeric, extra = self.state.opts.numeric, self.state.opts.extra_columns
        wanted = (width, height, has_gpu, numeric, extra)
        if wanted == self._layout_for or width == 0:
            return False
        self._layout_for = wanted
        self.set_class(width >= WIDE_MIN[0] and height >= WIDE_MIN[1], "-wide")
        # Without per-process bytes, open connections are the network figure to keep.
        keep = () if self.state.source.per_process else ("conns",)
        procs = self.query_one("#processes", ProcessTable)
        changed = procs.layout_columns(width - 1, has_gpu, keep, extra=extra)  # 1: the scrollbar
        hosts = self.query_one("#hosts", ProcessTable)
        omit = ("name",) if numeric else ()
        return hosts.layout_columns(width - 1, False, omit=omit) or changed

    def on_resize(self, _event: Resize) -> None:
        if self._ensure_layout():
            self.refresh_view()

    def on_screen_resume(self) -> None:
        self.redraw()
        key = self._return_to
        if key is not None:
            self.table.select_key(key)
            self._return_to = None

    def set_options(self, **changes: Any) -> None:
        """The one place the view options change: a new `ViewOptions`, then a redraw."""
        old = self.state.opts
        self.state.opts = replace(old, **changes)
        if self.state.opts.scale != old.scale:  # units: the panels and header too
            self.redraw()
        else:
            self.refresh_view()

    def redraw(self) -> None:
        """Draw the frame on display, everything (after a tick, a resume, a key)."""
        state = self.state
        frame = state.shown
        header = self.query_one(StatusHeader)
        header.backend, header.backend_layer = state.source.backend_name, state.source.layer
        if frame is None:
            self._show_state(header)
            return  # (else refresh_view shows the state, once the rows are counted)
        self._show_banner(frame)
        has_gpu = bool(frame.gpu and frame.gpu.devices)
        self.query_one("#panel-gpu").set_class(not has_gpu, "-none")
        for panel in self._panels:
            panel.show_frame(frame, state.opts.scale)
        self.refresh_view()

    def refresh_view(self) -> None:
        """Re-derive the rows (sort, filter, grouping changed) and update the table."""
        opts, frame = self.state.opts, self.state.shown
        if frame is None:
            return
        self._ensure_layout()
        self._show_view()
        bar = self.query_one(FilterBar)
        if self.hosts_view:
            self.rows = build_host_rows(frame, opts, self._host_cache)
            sort, descending = host_sort(opts)
            self.table.show(self.rows, replace(opts, sort=sort, descending=descending))
            shown = sum(1 for r in self.rows if r.host is not None)
            total = sum(1 for h in frame.remotes or () if opts.show_local or h.scope != "local")
        else:
            self.rows = build_rows(frame, opts, self._row_cache)
            self.table.show(self.rows, opts)
            shown = sum(map(operator.is_not, map(PROCESS_OF, self.rows), itertools.repeat(None)))
            total = len(frame.processes)
        matcher = Matcher(opts.filter_text)
        bar.set_status(matcher.error, shown, total, self._unmatchable(matcher))
        if not bar.editing:
            bar.show_idle(opts.filter_text)
        self._show_state(self.query_one(StatusHeader))

    def _unmatchable(self, matcher: Matcher) -> str | None:
        """What to say when the filter has connection terms this backend cannot match."""
        f, source = matcher.filter, self.state.source
        if f is None or not f.needs_connections or source.per_connection:
            return None
        if source.per_host and f.needs_connections == ("host",):  # each process's hosts
            return None
        return connections_missing(f, source.backend_name, _with_connections())

    def _show_view(self) -> None:
        """The table of the view on display; in the host view without per-connection
        data, the line that says so instead."""
        frame = self.state.shown
        hosts = self.hosts_view
        unknown = hosts and frame is not None and frame.remotes is None
        self.query_one("#processes").set_class(hosts, "-hidden")
        self.query_one("#hosts").set_class(not hosts or unknown, "-hidden")
        note = self.query_one("#hosts-none", Static)
        note.set_class(not unknown, "-hidden")
        if unknown:
            source = self.state.source
            line = hosts_unknown(source.backend_name) if not source.per_connection else None
            note.update(Text(line or "no connection seen yet", style="bold"))

    def _show_state(self, header: StatusHeader) -> None:
        state = self.state
        header.position = state.position
        header.set_state(state.shown, state.opts, state.elapsed_s(), state.paused)
        self._header_at = time.monotonic()

    def _show_banner(self, frame: Frame) -> None:
        banner = self.query_one("#banner", Static)
        failure = frame.failure
        if failure is None and self.state.source_error is None:
            banner.set_class(False, "-shown")
            return
        if failure is not None:
            text = Text(f"⚠ backend {safe_text(failure.backend, 40)} failed: ", style="bold")
            text.append(safe_text(failure.message, 300))
            if failure.fallback is not None:
                text.append(f" · continuing with {safe_text(failure.fallback, 40)}", style="bold")
                text.append("; totals so far are kept")
            else:
                text.append(
                    " · per-process traffic is unknown from here on; the rest keeps updating"
                )
        else:
            text = Text("⚠ " + safe_text(self.state.source_error, 300), style="bold")
        banner.update(text)
        banner.set_class(True, "-shown")

    def tick_header(self, at_once: bool = False) -> None:
        """The uptime, once a second: unless a frame showed it less than a second ago
        (at one frame a second, the frames keep it; a second repaint would cost as much).
        `at_once`: whenever, as after a pause."""
        if not at_once and time.monotonic() - self._header_at < HEADER_EVERY_S:
            return
        for header in self.query(StatusHeader):  # none while the app is shutting down
            self._show_state(header)

    # -- events ---------------------------------------------------------------------

    def on_process_table_open_requested(self, event: ProcessTable.OpenRequested) -> None:
        row = self.table.selected_row
        if row is None or row.key != event.key:
            return
        if row.host is not None:
            self._return_to = row.key
            self.post_message(OpenHost(row.host.address))
        elif row.kind == "folded":
            self.notify("hosts idle longest, folded into one total", timeout=3)
        elif row.kind == "group":
            self._toggle_group(row.key)
        elif row.kind == "unattributed":
            self.notify("bytes the backend could not tie to any process", timeout=3)
        else:
            self._return_to = row.key
            self.post_message(OpenDetail(row.key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # A click on the row under the cursor (the table's own enter is remapped).
        if event.data_table is self.table and event.row_key.value is not None:
            self.on_process_table_open_requested(ProcessTable.OpenRequested(event.row_key.value))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.table and not self.hosts_view:
            self.post_message(CursorMoved(event.row_key.value))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if event.data_table is not self.table or key is None:
            return
        if not self.table.column_set.by_key[key].sortable:
            return
        if self._sort_now()[0] == key:
            self.action_invert_sort()
        else:
            self.action_sort(key)

    def on_filter_bar_changed(self, event: FilterBar.Changed) -> None:
        self.set_options(filter_text=event.text)

    def on_filter_bar_closed(self, _event: FilterBar.Closed) -> None:
        self.table.focus()
        self.query_one(FilterBar).show_idle(self.state.opts.filter_text)

    def on_filter_bar_cleared(self, _event: FilterBar.Cleared) -> None:
        self.action_clear_filter()

    # -- actions --------------------------------------------------------------------

    def _sort_now(self) -> tuple[str, bool]:
        """The column and direction the table on display is sorted on."""
        opts = self.state.opts
        return host_sort(opts) if self.hosts_view else (opts.sort, opts.descending)

    def action_sort(self, column: str) -> None:
        col = self.table.column_set.by_key.get(column)
        if col is None:
            self.notify(f"the host view has no {column} column", timeout=3)
            return
        self.set_options(sort=column, descending=col.descending)

    def action_invert_sort(self) -> None:
        sort, descending = self._sort_now()
        self.set_options(sort=sort, descending=not descending)

    def action_move_sort(self, step: int) -> None:
        sort = self._sort_now()[0]
        by_key = self.table.column_set.by_key
        keys = [k for k in self.table.column_keys if by_key[k].sortable]
        index = keys.index(sort) if sort in keys else 0
        self.action_sort(keys[(index + step) % len(keys)])

    def action_filter(self) -> None:
        self.query_one(FilterBar).open(self.state.opts.filter_text)

    def action_pick_user(self) -> None:
        frame = self.state.shown
        counts: dict[str, int] = {}
        for p in frame.processes if frame else ():
            if p.user is not None:
                counts[p.user] = counts.get(p.user, 0) + 1

        def picked(choice: tuple[str | None] | None) -> None:
            if choice is not None:
                self.set_options(user=choice[0])

        self.app.push_screen(UserPicker(counts, self.state.opts.user), picked)

    def action_clear_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.show_idle("")
        self.table.focus()
        self.set_options(filter_text="")

    def action_tree(self) -> None:
        self.set_options(mode="flat" if self.state.opts.mode == "tree" else "tree")

    def action_group_user(self) -> None:
        self.set_options(mode="flat" if self.state.opts.mode == "user" else "user")

    def action_group_service(self) -> None:
        self.set_options(mode="flat" if self.state.opts.mode == "service" else "service")

    def _toggle_group(self, key: str) -> None:
        self.set_options(expanded_groups=self.state.opts.expanded_groups ^ {key})

    def _fold(self, expand: bool) -> None:
        opts = self.state.opts
        row = self.table.selected_row
        if row is None:
            return
        if opts.mode == "tree" and row.children:
            if expand:
                self.set_options(collapsed=opts.collapsed - {row.key})
            else:
                self.set_options(collapsed=opts.collapsed | {row.key})
        elif opts.mode in GROUPINGS:
            group = (
                row.key
                if row.kind == "group"
                else group_of(opts.mode, row.process)[0]
                if row.process
                else None
            )
            if group is None:
                return
            if expand:
                self.set_options(expanded_groups=opts.expanded_groups | {group})
            else:
                self.set_options(expanded_groups=opts.expanded_groups - {group})
                self.table.select_key(group)

    def action_expand(self) -> None:
        self._fold(True)

    def action_collapse(self) -> None:
        self._fold(False)

    def action_only_active(self) -> None:
        only_active = not self.state.opts.only_active
        frame = self.state.shown
        if only_active and frame and all(p.sent_bytes is None for p in frame.processes):
            self.notify(
                "this backend has no per-process bytes: showing processes with open connections",
                timeout=4,
            )
        self.set_options(only_active=only_active)

    def action_remote_hosts(self) -> None:
        self.set_options(view="processes" if self.hosts_view else "hosts")
        self.table.focus()

    def action_show_local(self) -> None:
        self.set_options(show_local=not self.state.opts.show_local)

    def action_numeric(self) -> None:
        self.set_options(numeric=not self.state.opts.numeric)

    def action_rates_totals(self) -> None:
        self.set_options(totals=not self.state.opts.totals)

    def action_disk_columns(self) -> None:
        """Show or hide the syscall byte and page fault columns, all four at once."""
        self._toggle_columns(DISK_SIGNAL_COLUMNS)

    def action_profile_columns(self) -> None:
        """Show or hide OFF-CPU% and SYSC/s (`--profile`)."""
        self._toggle_columns(PROFILE_COLUMNS)

    def _toggle_columns(self, group: frozenset[str]) -> None:
        extra = self.state.opts.extra_columns
        self.set_options(extra_columns=extra - group if extra >= group else extra | group)

    def action_bits(self) -> None:
        self.set_options(bits=not self.state.opts.bits)

    def action_units(self) -> None:
        self.set_options(units="si" if self.state.opts.units == "iec" else "iec")

    def action_toggle_panel(self, panel_id: str) -> None:
        panel = self.query_one(f"#panel-{panel_id}", Panel)
        panel.display = not panel.display
        shown = any(p.display for p in self.query(Panel))
        self.query_one("#panels").display = shown

    def action_kill(self) -> None:
        row = self.table.selected_row
        if row is None or row.process is None:
            self.notify("select a process first", severity="warning", timeout=3)
            return
        self.post_message(KillRequested(row.process))
