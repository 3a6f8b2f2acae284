"""Every key of the app, each with a binding id so it can be remapped.

Remap with `App.set_keymap({"sort_sent": "x"})`, or a keymap file read by `run_tui`
(see `nettop_ui.tui.keymap`). Footer labels are short; `HELP` has the long form.
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

# Active everywhere, even in dialogs; hidden from the footer (the screens show their own).
APP_BINDINGS: list[BindingType] = [
    Binding("question_mark,f1", "help", "Help", show=False, id="help"),
    Binding("q,f10", "quit", "Quit", show=False, id="quit"),
    # Textual binds ctrl+c to a "press ctrl+q" hint; here it quits, like in htop.
    Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit_ctrl_c"),
]

_COMMON: list[BindingType] = [
    Binding("question_mark,f1", "app.help", "Help", id="help"),
    Binding("q,f10", "app.quit", "Quit", id="quit"),
]

# The footer lists the keys with show=True; at 160 columns all of them must fit (the
# sort-by-column keys are in `?` and the column headers are clickable).
MAIN_BINDINGS: list[BindingType] = [
    *_COMMON,
    Binding("slash,backslash,f3,f4", "filter", "Filter", id="filter"),
    Binding("delete", "clear_filter", "Clear filter", show=False, id="clear_filter"),
    Binding("u", "pick_user", "User", id="pick_user"),
    Binding("k,f9", "kill", "Kill", id="kill"),
    Binding("t,f5", "tree", "Tree", id="tree"),
    Binding("U", "group_user", "Users", id="group_user"),
    Binding("S", "group_service", "Services", id="group_service"),
    Binding("h", "remote_hosts", "Hosts", id="remote_hosts"),
    Binding("L", "show_local", "Local hosts", show=False, id="show_local"),
    Binding("n", "numeric", "Numeric", show=False, id="numeric"),
    Binding("space,Z", "app.pause", "Pause", key_display="space", id="pause"),
    Binding("m", "rates_totals", "Totals", id="rates_totals"),
    Binding("b", "bits", "Bits", id="bits"),
    Binding("D", "disk_columns", "Disk signals", show=False, id="disk_columns"),
    Binding("O", "profile_columns", "Profile", show=False, id="profile_columns"),
    Binding("i", "units", "Units", show=False, id="units"),
    Binding("a", "only_active", "Active", id="only_active"),
    Binding("s", "sort('up')", "Sent", show=False, id="sort_sent"),
    Binding("r", "sort('down')", "Recv", show=False, id="sort_recv"),
    Binding("B", "sort('total')", "Total", show=False, id="sort_total"),
    Binding("P", "sort('cpu')", "CPU", show=False, id="sort_cpu"),
    Binding("M", "sort('mem')", "Mem", show=False, id="sort_mem"),
    Binding("N", "sort('pid')", "PID", show=False, id="sort_pid"),
    Binding("I", "invert_sort", "Invert", id="sort_invert"),
    Binding("less_than_sign", "move_sort(-1)", "Sort ←", id="sort_left"),
    Binding("greater_than_sign,f6", "move_sort(1)", "Sort →", id="sort_right"),
    Binding("plus", "expand", "Expand", id="expand"),
    Binding("minus", "collapse", "Fold", id="collapse"),
    Binding("1", "toggle_panel('cpu')", "CPU panel", show=False, id="panel_cpu"),
    Binding("2", "toggle_panel('mem')", "Mem panel", show=False, id="panel_mem"),
    Binding("3", "toggle_panel('net')", "Net panel", show=False, id="panel_net"),
    Binding("4", "toggle_panel('disk')", "Disk panel", show=False, id="panel_disk"),
    Binding("5", "toggle_panel('gpu')", "GPU panel", show=False, id="panel_gpu"),
]

# The process table (a DataTable: its own arrows, page keys and ctrl+home/end stay).
# DataTable's home/end scroll sideways, which a table without horizontal scroll never
# needs: here they go to the first and last row, as in htop.
TABLE_BINDINGS: list[BindingType] = [
    Binding("enter", "open_process", "Open", id="open_process"),
    Binding("home", "scroll_top", "First row", show=False, id="cursor_first"),
    Binding("end", "scroll_bottom", "Last row", show=False, id="cursor_last"),
]

# The filter box's text field (nettop_ui.tui.filter_bar).
FILTER_INPUT_BINDINGS: list[BindingType] = [
    Binding("delete", "clear_filter", "Clear filter", show=False, id="filter_clear"),
    Binding("escape", "close_filter", "Close filter", show=False, id="filter_close"),
]

# `u`'s list of users (nettop_ui.tui.user_picker); enter picks.
USER_PICKER_BINDINGS: list[BindingType] = [
    Binding("escape", "cancel", "Cancel", id="user_cancel"),
]

HELP_SCREEN_BINDINGS: list[BindingType] = [
    Binding("escape,question_mark,f1,q", "close", "Close", id="help_close"),
]

KILL_DIALOG_BINDINGS: list[BindingType] = [
    Binding("escape", "cancel", "Cancel", id="kill_cancel"),
]

DETAIL_BINDINGS: list[BindingType] = [
    Binding("escape", "back", "Back", id="detail_back"),
    *_COMMON,
    Binding("k,f9", "kill", "Kill", id="kill"),
    Binding("space,Z", "app.pause", "Pause", key_display="space", id="pause"),
]

# The host screen (enter on a remote host): its connections and processes.
HOST_BINDINGS: list[BindingType] = [
    Binding("escape", "back", "Back", id="host_back"),
    *_COMMON,
    Binding("space,Z", "app.pause", "Pause", key_display="space", id="pause"),
]

# `nettop-ui replay` only (nettop_ui.tui.replay.ReplayApp): the timeline. Priority, so
# the table does not take left/right/home/end; the app hands them on while typing.
REPLAY_BINDINGS: list[BindingType] = [
    Binding("left", "replay_step(-1)", "Back", priority=True, id="replay_back"),
    Binding("right", "replay_step(1)", "Fwd", priority=True, id="replay_forward"),
    Binding("home", "replay_first", "First", show=False, priority=True, id="replay_first"),
    Binding("end", "replay_last", "Last", show=False, priority=True, id="replay_last"),
    Binding("space", "replay_play", "Play", priority=True, id="replay_play"),
]

# The live app only (nettop_ui.tui.live.LiveApp): the history view, whose timeline keys
# are REPLAY_BINDINGS (inactive on the live frames).
LIVE_BINDINGS: list[BindingType] = [
    Binding("H", "history", "History", show=False, id="history"),
]

BINDING_IDS: frozenset[str] = frozenset(
    b.id
    for group in (
        APP_BINDINGS,
        MAIN_BINDINGS,
        TABLE_BINDINGS,
        FILTER_INPUT_BINDINGS,
        USER_PICKER_BINDINGS,
        HELP_SCREEN_BINDINGS,
        KILL_DIALOG_BINDINGS,
        DETAIL_BINDINGS,
        HOST_BINDINGS,
        REPLAY_BINDINGS,
        LIVE_BINDINGS,
    )
    for b in group
    if isinstance(b, Binding) and b.id is not None
)  # every id a keymap may name

# The long form of each binding, by id, for `?`.
HELP: dict[str, str] = {
    "open_process": "open the selected process (child tree, connections, charts) or host",
    "help": "this help",
    "quit": "quit (also ctrl+c)",
    "filter": (
        "filter; every term must hold: words match name, cmdline, user or PID; !regex (RE2); "
        "host: (10.0.0.5, 10.0.0.0/24, *.example.com), port: (443, 8000-8100), proto:udp, "
        'user:, service:, cgroup:, pid:; -port:22 excludes; "a b" keeps the space'
    ),
    "clear_filter": "clear the filter",
    "pick_user": "show only one user's processes (a list of users; 'all users' clears it)",
    "cursor_first": "go to the first row",
    "cursor_last": "go to the last row",
    "kill": "send a signal to the selected process (SIGTERM, SIGINT, SIGHUP, SIGKILL)",
    "tree": "process tree; each row's traffic includes its children's",
    "group_user": "group processes by user",
    "group_service": "group processes by service: systemd unit, container or pod",
    "remote_hosts": "switch the table between processes and remote hosts (enter opens a host)",
    "show_local": "host view: also loopback and this machine's own addresses (marked local)",
    "numeric": "host view: addresses only, no names",
    "pause": "pause the display; sampling continues",
    "rates_totals": "switch between rates and cumulative totals since start",
    "bits": "switch between bytes and bits",
    "disk_columns": (
        "show or hide the columns SYS RD, SYS WR (bytes through read/write calls, page cache"
        " hits included), MINFLT, MAJFLT (page faults): totals since the process started"
    ),
    "profile_columns": (
        "show or hide the columns OFF-CPU% (time blocked, % of the interval; threads add"
        " up) and SYSC/s (syscalls per second): with --profile, else unknown (-)"
    ),
    "units": "switch between binary units (KiB, MiB) and decimal ones (kB, MB, Mbit/s)",
    "only_active": "only processes that moved traffic since start",
    "sort_sent": "sort by sent (UP)",
    "sort_recv": "sort by received (DOWN)",
    "sort_total": "sort by total bandwidth (the default)",
    "sort_cpu": "sort by CPU %",
    "sort_mem": "sort by memory",
    "sort_pid": "sort by PID",
    "sort_invert": "invert the sort order",
    "sort_left": "sort on the column to the left",
    "sort_right": "sort on the column to the right",
    "expand": "tree / groups: open the selected row",
    "collapse": "tree / groups: fold the selected row",
    "panel_cpu": "show or hide the CPU panel",
    "panel_mem": "show or hide the memory panel",
    "panel_net": "show or hide the network panel",
    "panel_disk": "show or hide the disk panel",
    "panel_gpu": "show or hide the GPU panel",
    "detail_back": "back to the table: same row, sort and filter",
    "host_back": "back to the host table",
    "replay_back": "replay: one sample back",
    "replay_forward": "replay: one sample forward",
    "replay_first": "replay: jump to the first sample",
    "replay_last": "replay: jump to the last sample",
    "replay_play": "replay: play (one sample per recorded interval) or pause",
    "history": (
        "switch to the history (`nettop-ui record`'s database, the last 24 h, minute by"
        " minute; the replay keys move through it) and back to live"
    ),
}

HELP_NOTES = (
    "Click a column header to sort on it; click again to reverse.",
    "In the filter box esc keeps the filter and delete clears it.",
    "Narrow terminals hide the least important columns; widen to see them all.",
    "- means unknown (the backend cannot measure it), never zero.",
    'Remap keys by id in ~/.config/nettop-ui/keymap.toml:  [keys]  sort_sent = "x"',
)
