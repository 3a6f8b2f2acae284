"""The main screen: header, system panels, the process table, the filter bar, the footer.

Key actions change the app's `ViewOptions` and redraw from the frame on display;
they never wait for sampling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nettop_ui.tui.bindings import MAIN_BINDINGS
from nettop_ui.tui.filter_bar import FilterBar
from nettop_ui.tui.frame import Frame
from nettop_ui.tui.header import StatusHeader
from nettop_ui.tui.model import COLUMN_BY_KEY, Matcher, RowCache, RowData, build_rows
from nettop_ui.tui.panels import PANEL_CLASSES, Panel
from nettop_ui.tui.process_table import ProcessTable
from nettop_ui.tui.safe import safe_text
from nettop_ui.tui.user_picker import UserPicker

if TYPE_CHECKING:
    from nettop_ui.tui.app import NettopApp

PANEL_IDS = ("cpu", "mem", "net", "disk", "gpu")
WIDE_MIN = (120, 34)  # columns, rows from which panels become boxes side by side


class MainScreen(Screen[None]):
    """Everything at a glance; see `nettop_ui.tui.bindings` for the keys."""

    BINDINGS: ClassVar[list[BindingType]] = MAIN_BINDINGS

    def __init__(self) -> None:
        super().__init__(id="main")
        self._layout_for: tuple[int, int, bool] | None = None
        self.rows: list[RowData] = []
        self._row_cache = RowCache()

    @property
    def nettop(self) -> NettopApp:
        return cast("NettopApp", self.app)

    def compose(self) -> ComposeResult:
        app = self.nettop
        yield StatusHeader(
            host=app.host,
            backend=app.source.backend_name,
            layer=app.source.layer,
            interval_s=app.source.interval_s,
            id="header",
        )
        yield Static(id="banner")
        with Container(id="panels"):
            for panel_id, cls in zip(PANEL_IDS, PANEL_CLASSES, strict=True):
                yield cls(app.system_history, id=f"panel-{panel_id}")
        yield ProcessTable(id="processes")
        yield FilterBar(id="filter")
        yield Footer(compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.nettop.offers(action)

    def on_mount(self) -> None:
        self.query_one(ProcessTable).focus()
        self.nettop.start_source()

    # -- drawing --------------------------------------------------------------------

    @property
    def table(self) -> ProcessTable:
        return self.query_one(ProcessTable)

    def _ensure_layout(self) -> bool:
        width, height = self.size
        frame = self.nettop.shown
        has_gpu = bool(frame and frame.gpu and frame.gpu.devices)
        wanted = (width, height, has_gpu)
        if wanted == self._layout_for or width == 0:
            return False
        self._layout_for = wanted
        self.set_class(width >= WIDE_MIN[0] and height >= WIDE_MIN[1], "-wide")
        # Without per-process bytes, open connections are the network figure to keep.
        keep = () if self.nettop.source.per_process else ("conns",)
        changed = self.table.layout_columns(width - 1, has_gpu, keep)  # 1: the scrollbar
        return changed

    def on_resize(self, _event: Resize) -> None:
        if self._ensure_layout():
            self.refresh_view()

    def on_screen_resume(self) -> None:
        self.redraw()
        key = self.nettop.return_to
        if key is not None:
            self.table.select_key(key)
            self.nettop.return_to = None

    def redraw(self) -> None:
        """Draw the frame on display, everything (after a tick, a resume, a key)."""
        app = self.nettop
        frame = app.shown
        header = self.query_one(StatusHeader)
        header.backend, header.backend_layer = app.source.backend_name, app.source.layer
        header.set_state(frame, app.opts, app.elapsed_s(), app.paused)
        if frame is None:
            return
        self._show_banner(frame)
        has_gpu = bool(frame.gpu and frame.gpu.devices)
        self.query_one("#panel-gpu").set_class(not has_gpu, "-none")
        for panel in self.query(Panel):
            panel.show_frame(frame, app.opts.bits)
        self.refresh_view()

    def refresh_view(self) -> None:
        """Re-derive the rows (sort, filter, grouping changed) and update the table."""
        app = self.nettop
        frame = app.shown
        if frame is None:
            return
        self._ensure_layout()
        self.rows = build_rows(frame, app.opts, self._row_cache)
        self.table.show(self.rows, app.opts)
        bar = self.query_one(FilterBar)
        shown = sum(1 for r in self.rows if r.process is not None)
        bar.set_status(Matcher(app.opts.filter_text).error, shown, len(frame.processes))
        if not bar.editing:
            bar.show_idle(app.opts.filter_text)
        self.query_one(StatusHeader).set_state(frame, app.opts, app.elapsed_s(), app.paused)

    def _show_banner(self, frame: Frame) -> None:
        banner = self.query_one("#banner", Static)
        failure = frame.failure
        if failure is None and self.nettop.source_error is None:
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
            text = Text("⚠ " + safe_text(self.nettop.source_error, 300), style="bold")
        banner.update(text)
        banner.set_class(True, "-shown")

    def tick_header(self) -> None:
        app = self.nettop
        for header in self.query(StatusHeader):  # none while the app is shutting down
            header.set_state(app.shown, app.opts, app.elapsed_s(), app.paused)

    # -- events ---------------------------------------------------------------------

    def on_process_table_open_requested(self, event: ProcessTable.OpenRequested) -> None:
        row = self.table.selected_row
        if row is None or row.key != event.key:
            return
        if row.kind == "group":
            self._toggle_group(row.key)
        elif row.kind == "unattributed":
            self.notify("bytes the backend could not tie to any process", timeout=3)
        else:
            self.nettop.open_detail(row.key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # A click on the row under the cursor (the table's own enter is remapped).
        if event.data_table is self.table and event.row_key.value is not None:
            self.on_process_table_open_requested(ProcessTable.OpenRequested(event.row_key.value))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.table:
            self.nettop.watch_selected(event.row_key.value)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key is None or not COLUMN_BY_KEY[key].sortable:
            return
        opts = self.nettop.opts
        if opts.sort == key:
            opts.descending = not opts.descending
        else:
            opts.sort, opts.descending = key, COLUMN_BY_KEY[key].descending
        self.refresh_view()

    def on_filter_bar_changed(self, event: FilterBar.Changed) -> None:
        self.nettop.opts.filter_text = event.text
        self.refresh_view()

    def on_filter_bar_closed(self, _event: FilterBar.Closed) -> None:
        self.table.focus()
        self.query_one(FilterBar).show_idle(self.nettop.opts.filter_text)

    def on_filter_bar_cleared(self, _event: FilterBar.Cleared) -> None:
        self.action_clear_filter()

    # -- actions --------------------------------------------------------------------

    def action_sort(self, column: str) -> None:
        opts = self.nettop.opts
        opts.sort, opts.descending = column, COLUMN_BY_KEY[column].descending
        self.refresh_view()

    def action_invert_sort(self) -> None:
        self.nettop.opts.descending = not self.nettop.opts.descending
        self.refresh_view()

    def action_move_sort(self, step: int) -> None:
        opts = self.nettop.opts
        keys = [k for k in self.table.column_keys if COLUMN_BY_KEY[k].sortable]
        index = keys.index(opts.sort) if opts.sort in keys else 0
        column = keys[(index + step) % len(keys)]
        opts.sort, opts.descending = column, COLUMN_BY_KEY[column].descending
        self.refresh_view()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open(self.nettop.opts.filter_text)

    def action_pick_user(self) -> None:
        frame = self.nettop.shown
        counts: dict[str, int] = {}
        for p in frame.processes if frame else ():
            if p.user is not None:
                counts[p.user] = counts.get(p.user, 0) + 1

        def picked(choice: tuple[str | None] | None) -> None:
            if choice is not None:
                self.nettop.opts.user = choice[0]
                self.refresh_view()

        self.app.push_screen(UserPicker(counts, self.nettop.opts.user), picked)

    def action_clear_filter(self) -> None:
        self.nettop.opts.filter_text = ""
        bar = self.query_one(FilterBar)
        bar.show_idle("")
        self.table.focus()
        self.refresh_view()

    def action_tree(self) -> None:
        opts = self.nettop.opts
        opts.mode = "flat" if opts.mode == "tree" else "tree"
        self.refresh_view()

    def action_group_user(self) -> None:
        opts = self.nettop.opts
        opts.mode = "flat" if opts.mode == "user" else "user"
        self.refresh_view()

    def _toggle_group(self, key: str) -> None:
        groups = self.nettop.opts.expanded_groups
        if key in groups:
            groups.discard(key)
        else:
            groups.add(key)
        self.refresh_view()

    def _fold(self, expand: bool) -> None:
        opts = self.nettop.opts
        row = self.table.selected_row
        if row is None:
            return
        if opts.mode == "tree" and row.children:
            if expand:
                opts.collapsed.discard(row.key)
            else:
                opts.collapsed.add(row.key)
        elif opts.mode == "user":
            group = (
                row.key
                if row.kind == "group"
                else f"user:{row.process.user or '?'}"
                if row.process
                else None
            )
            if group is None:
                return
            if expand:
                opts.expanded_groups.add(group)
            else:
                opts.expanded_groups.discard(group)
                self.refresh_view()
                self.table.select_key(group)
                return
        else:
            return
        self.refresh_view()

    def action_expand(self) -> None:
        self._fold(True)

    def action_collapse(self) -> None:
        self._fold(False)

    def action_only_active(self) -> None:
        opts = self.nettop.opts
        opts.only_active = not opts.only_active
        frame = self.nettop.shown
        if opts.only_active and frame and all(p.sent_bytes is None for p in frame.processes):
            self.notify(
                "this backend has no per-process bytes: showing processes with open connections",
                timeout=4,
            )
        self.refresh_view()

    def action_rates_totals(self) -> None:
        opts = self.nettop.opts
        opts.totals = not opts.totals
        self.refresh_view()

    def action_bits(self) -> None:
        opts = self.nettop.opts
        opts.bits = not opts.bits
        self.redraw()

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
        self.nettop.open_kill_dialog(row.process)
