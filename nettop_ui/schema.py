"""The process schema: every per-process field, named once.

`ProcessState` (nettop_ui.collector) holds these fields under `name`; `ProcessView`
(nettop_ui.tui.frame) freezes the ones the TUI shows; the process records of the JSON
stream and of the `run`/`attach` recordings (docs/json-schema.md) carry them under
`key`, in this order. The code that copies a process field by field, away from the
hot path, walks `FIELDS` instead of naming them: `jsonl.process_record`, the replay's
reading of a record, what a tree member keeps once it exits and how the tree sums it.
tests/test_schema.py checks that ProcessState and ProcessView agree with this table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AfterExit(enum.Enum):
    """What becomes of a field's value once its process has exited."""

    KEPT = "kept"  # stays as it was (totals, identity); byte totals may still grow
    LIVE_ONLY = "live-only"  # gone with the process: unknown (None), never zero
    LAST_SEEN = "last-seen"  # an exited process may read as empty: keep what it had alive


class TreeSum(enum.Enum):
    """How a process tree (nettop_ui.tree) sums a field over its members.

    A float sum is rounded to one decimal. In the tree object the sums come in this
    order of kinds, each kind in table order.
    """

    LIVE = "live"  # over the live members; unknown when one of them is unknown
    DISK = "disk"  # over the members not reaped by another member, since the first sample
    # over every member, exited ones too, since the first sample: counts the kernel does
    # not add to the reaping parent's (page faults: those go to its cminflt/cmajflt)
    COUNT = "count"
    ALL = "all"  # over every member, exited ones too; unknown when one is unknown
    USED = "used"  # over the live members that report it (NVML lists only GPU users)


@dataclass(frozen=True, slots=True)
class Field:
    """One per-process field."""

    name: str  # the attribute of ProcessState (and ProcessView)
    type: type  # int, float, str, bool, or list (of str)
    json_key: str = ""  # the key in JSON records, when it is not `name`
    nullable: bool = True  # None is unknown, never zero
    rounded: bool = False  # a rate: one decimal in records
    after_exit: AfterExit = AfterExit.KEPT
    stream: bool = True  # in the live JSON stream; False: in recordings only
    tree: TreeSum | None = None  # summed into the tree object of a recording

    @property
    def key(self) -> str:
        return self.json_key or self.name


_LIVE, _LAST = AfterExit.LIVE_ONLY, AfterExit.LAST_SEEN

FIELDS: tuple[Field, ...] = (
    Field("pid", int, nullable=False),
    Field("ppid", int, after_exit=_LAST),
    Field("create_time", float, json_key="start_time"),
    Field("name", str, nullable=False, after_exit=_LAST),
    Field("cmdline", list, nullable=False, after_exit=_LAST),
    Field("user", str, after_exit=_LAST),
    Field("cgroup", str, after_exit=_LAST),  # the cgroup v2 path
    Field("service", str, after_exit=_LAST),  # systemd unit, container or pod (services.py)
    Field("sent_bytes", int, tree=TreeSum.ALL),
    Field("recv_bytes", int, tree=TreeSum.ALL),
    Field("sent_bps", float, rounded=True, tree=TreeSum.ALL),
    Field("recv_bps", float, rounded=True, tree=TreeSum.ALL),
    Field("cpu_percent", float, after_exit=_LIVE, tree=TreeSum.LIVE),
    Field("cpu_user_s", float),
    Field("cpu_system_s", float),
    Field("rss_bytes", int, after_exit=_LIVE, tree=TreeSum.LIVE),
    Field("vms_bytes", int, after_exit=_LIVE, tree=TreeSum.LIVE),
    Field("read_bytes", int, tree=TreeSum.DISK),
    Field("write_bytes", int, tree=TreeSum.DISK),
    Field("read_bps", float, rounded=True, after_exit=_LIVE),
    Field("write_bps", float, rounded=True, after_exit=_LIVE),
    # rchar/wchar: what read(2)/write(2) moved, page cache hits included (docs/disk.md)
    Field("syscall_read_bytes", int, tree=TreeSum.DISK),
    Field("syscall_write_bytes", int, tree=TreeSum.DISK),
    Field("page_faults_cached", int, tree=TreeSum.COUNT),  # minflt
    Field("page_faults_disk", int, tree=TreeSum.COUNT),  # majflt
    Field("threads", int, after_exit=_LIVE, tree=TreeSum.LIVE),
    Field("connection_count", int),
    Field("exited", bool, nullable=False),
    Field("note", str),  # what the backend knows it got wrong about the bytes
    Field("gpu_memory_bytes", int, after_exit=_LIVE, stream=False, tree=TreeSum.USED),
    Field("gpu_sm_percent", float, after_exit=_LIVE, stream=False, tree=TreeSum.USED),
)

FIELD = {f.name: f for f in FIELDS}
STREAM_FIELDS = tuple(f for f in FIELDS if f.stream)
LIVE_ONLY = tuple(f.name for f in FIELDS if f.after_exit is AfterExit.LIVE_ONLY)
LAST_SEEN = tuple(f.name for f in FIELDS if f.after_exit is AfterExit.LAST_SEEN)
# The tree object's sums: by kind (TreeSum's order), then in table order.
TREE_FIELDS = tuple(f for kind in TreeSum for f in FIELDS if f.tree is kind)
