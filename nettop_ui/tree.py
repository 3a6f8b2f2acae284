"""One process and its descendants, followed tick by tick through the collector's snapshots.

`TreeTracker.update(snapshot)` finds the tree's members (the root, and with children
every live process whose parent is a member: new descendants join on the tick they are
first seen), keeps the last record of each member after it exits (so its totals stay
in the tree's), and sums the tree into one `tree` object for the `run`/`attach`
recordings (docs/json-schema.md).

Disk bytes: the kernel adds a reaped child's disk I/O to the parent that reaps it
(/proc/PID/io of the parent includes it), so an exited member counts separately only
when it was not reaped by another member (the root, or an orphan adopted by init);
otherwise its bytes are already in its parent's.

A sum over members is only as known as its parts: when some member's figure is
unknown (another user's /proc/PID/io, say) the tree's is unknown too, and
`unknown_members` says for how many members it was. GPU figures are the exception:
NVML lists only the processes using a GPU, so a member it does not list uses none.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nettop_ui.collector import ProcessKey, ProcessState, Snapshot
from nettop_ui.core import sum_known
from nettop_ui.jsonl import process_record, round_rate

# What an exited member no longer has: unknown from then on, never zero.
ONLY_WHILE_ALIVE = dict.fromkeys(
    ("cpu_percent", "rss_bytes", "vms_bytes", "threads", "gpu_memory_bytes", "gpu_sm_percent")
)


@dataclass
class TreeTracker:
    """The members of one process tree and their last known records."""

    root_pid: int
    include_children: bool = True
    root_key: ProcessKey | None = None
    records: dict[ProcessKey, dict[str, Any]] = field(default_factory=dict)
    keys: set[ProcessKey] = field(default_factory=set)  # every member ever seen
    _disk_base: tuple[int, int] | None = None
    _nic_base: tuple[int, int] | None = None

    def _members(self, snap: Snapshot) -> list[ProcessState]:
        live = {p.pid: p for p in snap.processes if not p.exited}
        if self.root_key is None:
            root = live.get(self.root_pid)
            if root is None:
                return []
            self.root_key = root.key
        by_key = {p.key: p for p in snap.processes}
        members = {k for k in self.keys if k in by_key} | {self.root_key}
        if self.include_children:
            changed = True
            while changed:  # descendants: walk down one generation per pass
                changed = False
                member_pids = {k[0] for k in members if k in by_key and not by_key[k].exited}
                for p in live.values():
                    if p.key not in members and p.ppid in member_pids:
                        members.add(p.key)
                        changed = True
        self.keys |= members
        return [by_key[k] for k in members if k in by_key]

    def member_keys(self, snap: Snapshot) -> set[ProcessKey]:
        """The identities of the tree's members in `snap` (the TUI's row filter)."""
        return {p.key for p in self._members(snap)}

    def update(self, snap: Snapshot) -> list[dict[str, Any]]:
        """Fold one snapshot in; return every member's record (exited ones last seen)."""
        for p in self._members(snap):
            record = process_record(p, with_connections=False)
            record["gpu_memory_bytes"] = p.gpu_memory_bytes
            record["gpu_sm_percent"] = p.gpu_sm_percent
            if p.exited:  # keep what was known while it ran; only the totals grow
                old = self.records.get(p.key)
                if old is not None:
                    record.update(
                        {k: old[k] for k in ("ppid", "name", "cmdline", "user") if old.get(k)}
                    )
                record.update(ONLY_WHILE_ALIVE)
            self.records[p.key] = record
        present = {p.key for p in snap.processes}
        for key, record in self.records.items():
            if key not in present and not record["exited"]:
                record.update(ONLY_WHILE_ALIVE, exited=True)
        children = Counter(r["ppid"] for r in self.records.values() if not r["exited"])
        for record in self.records.values():
            record["child_count"] = children[record["pid"]]
        return sorted(self.records.values(), key=lambda r: (r["start_time"] or 0, r["pid"]))

    @property
    def alive(self) -> bool:
        return any(not r["exited"] for r in self.records.values())

    def aggregate(self, snap: Snapshot) -> dict[str, Any]:
        """The whole tree in one object; call after `update` for the same snapshot."""
        records = list(self.records.values())
        live = [r for r in records if not r["exited"]]
        member_pids = {r["pid"] for r in records}
        # Counted on their own: live members, and exited ones no member reaped.
        disk = [r for r in records if not r["exited"] or r["ppid"] not in member_pids]
        unknown: dict[str, int] = {}

        def total(key: str, over: list[dict[str, Any]]) -> Any:
            """The sum of `key` over `over`; None if any of them is unknown (counted)."""
            values = [r[key] for r in over]
            missing = values.count(None)
            if missing:
                unknown[key] = missing
            return None if missing or not values else sum(values)

        read, write = total("read_bytes", disk), total("write_bytes", disk)
        if read is not None and write is not None and self._disk_base is None:
            self._disk_base = (read, write)
        rb, wb = self._disk_base or (0, 0)
        return {
            "processes": len(live),
            "exited": len(records) - len(live),
            "cpu_percent": round_rate(total("cpu_percent", live)),
            "rss_bytes": total("rss_bytes", live),
            "vms_bytes": total("vms_bytes", live),
            "threads": total("threads", live),
            "read_bytes": None if read is None else max(read - rb, 0),
            "write_bytes": None if write is None else max(write - wb, 0),
            "sent_bytes": total("sent_bytes", records),
            "recv_bytes": total("recv_bytes", records),
            "sent_bps": round_rate(total("sent_bps", records)),
            "recv_bps": round_rate(total("recv_bps", records)),
            "gpu_memory_bytes": sum_known([r["gpu_memory_bytes"] for r in live]),
            "gpu_sm_percent": round_rate(sum_known([r["gpu_sm_percent"] for r in live])),
            "unknown_members": unknown,
        }

    def interfaces(self, snap: Snapshot) -> dict[str, int | None]:
        """Namespace-wide interface bytes (not the tree's) since the first sample."""
        nics = interface_totals(snap)
        if nics is not None and self._nic_base is None:
            self._nic_base = nics
        nb = self._nic_base or (0, 0)
        return {
            "interfaces_sent_bytes": None if nics is None else nics[0] - nb[0],
            "interfaces_recv_bytes": None if nics is None else nics[1] - nb[1],
        }


def interface_totals(snap: Snapshot) -> tuple[int, int] | None:
    """Bytes sent and received on every interface but loopback (wire frames, since boot)."""
    if snap.system is None:
        return None
    nics = [i for name, i in snap.system.interfaces.items() if name != "lo"]
    return sum(i.sent_bytes for i in nics), sum(i.recv_bytes for i in nics)
