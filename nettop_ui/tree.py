"""One process and its descendants, followed tick by tick through the collector's snapshots.

`TreeTracker.update(snapshot)` finds the tree's members (the root, and with children
every live process whose parent is a member: new descendants join on the tick they are
first seen), keeps each member's last figures after it exits (so its totals stay in
the tree's), and `aggregate` sums the tree (schema.TREE_FIELDS) for the `run`/`attach`
recordings. Members and sums stay typed here; nettop_ui.jsonl makes them the records
of docs/json-schema.md.

Disk bytes: the kernel adds a reaped child's disk I/O to the parent that reaps it
(/proc/PID/io of the parent includes it), so an exited member counts separately only
when it was not reaped by another member (the root, or an orphan adopted by init);
otherwise its bytes are already in its parent's. The same holds for the syscall bytes
(rchar/wchar), but not for page faults: a reaped child's go to the parent's cminflt and
cmajflt, which are not read, so every member's own count is summed. All of these are
counted from the first sample.

Remote hosts: with a per-connection backend the tracker keeps its own
`remotes.RemoteTable`, fed each tick with what the members' connections moved since the
last one, so a recording's `remotes` are the tree's traffic per host (not the machine's);
names and scopes are the collector's.

A sum over members is only as known as its parts: when some member's figure is
unknown (another user's /proc/PID/io, say) the tree's is unknown too, and
`unknown_members` says for how many members it was. GPU figures are the exception:
NVML lists only the processes using a GPU, so a member it does not list uses none.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import psutil

from nettop_ui import procfs
from nettop_ui.collector import ProcessKey, ProcessState, Snapshot
from nettop_ui.core import ConnectionTraffic, sum_known
from nettop_ui.remotes import RemoteTable
from nettop_ui.schema import LAST_SEEN, LIVE_ONLY, TREE_FIELDS, TreeSum

# The sums counted from the first sample on, not from the members' starts.
SINCE_FIRST = tuple(f.name for f in TREE_FIELDS if f.tree in (TreeSum.DISK, TreeSum.COUNT))


@dataclass(slots=True)
class Member:
    """One member's last known figures: a copy of its ProcessState, detached from the
    collector (which goes on changing its own), and how many live children it has."""

    state: ProcessState
    child_count: int = 0


@dataclass(slots=True)
class TreeTotals:
    """The whole tree at one tick: member counts and the sums of schema.TREE_FIELDS."""

    processes: int  # live members
    exited: int
    sums: dict[str, Any]  # by field name, in TREE_FIELDS order; None is unknown
    unknown_members: dict[str, int]  # by field name: members whose figure is unknown


def _forget_live_only(state: ProcessState) -> None:
    for name in LIVE_ONLY:
        setattr(state, name, None)


@dataclass
class TreeTracker:
    """The members of one process tree and their last known figures."""

    root_pid: int
    include_children: bool = True
    root_key: ProcessKey | None = None
    members: dict[ProcessKey, Member] = field(default_factory=dict)
    keys: set[ProcessKey] = field(default_factory=set)  # every member ever seen
    _base: dict[str, int] = field(default_factory=dict)  # SINCE_FIRST sums when first known
    _nic_base: tuple[int, int] | None = None
    remotes: RemoteTable | None = None  # the tree's hosts; None: no per-connection data
    # Per member connection: its byte counts at the last tick.
    _conn_bytes: dict[tuple[ProcessKey, tuple[str, str, str]], tuple[int, int]] = field(
        default_factory=dict
    )
    _reaped: dict[ProcessKey, int] = field(default_factory=dict)  # reaped_ticks, last tick
    # Per live member: CPU ticks of its exited children that ticks already counted.
    _owed: dict[ProcessKey, int] = field(default_factory=dict)
    _unseen_ticks: int = 0  # CPU no tick saw, found in the reaped children's times

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
            # Never read alive: forked and gone between two ticks. Its parent is known only
            # from the collector's scope (the fork was seen), so it may be an exited one.
            flash = [p for p in snap.processes if p.create_time is None and p.ppid is not None]
            changed = True
            while changed:  # descendants: walk down one generation per pass
                changed = False
                member_pids = {k[0] for k in members if k in by_key and not by_key[k].exited}
                for p in live.values():
                    if p.key not in members and p.ppid in member_pids:
                        members.add(p.key)
                        changed = True
                every_pid = {k[0] for k in members}
                for p in flash:
                    if p.key not in members and p.ppid in every_pid:
                        members.add(p.key)
                        changed = True
        self.keys |= members
        return [by_key[k] for k in members if k in by_key]

    def member_keys(self, snap: Snapshot) -> set[ProcessKey]:
        """The identities of the tree's members in `snap` (the TUI's row filter)."""
        return {p.key for p in self._members(snap)}

    def update(self, snap: Snapshot) -> list[Member]:
        """Fold one snapshot in; return every member (exited ones as last seen)."""
        found = self._members(snap)
        self._count_remotes(found, snap)
        self._count_reaped(found)
        for p in found:
            state = replace(p, connections={}, history=None)
            if p.exited:  # keep what was known while it ran; only the totals grow
                old = self.members.get(p.key)
                if old is not None:
                    for name in LAST_SEEN:
                        if getattr(old.state, name):
                            setattr(state, name, getattr(old.state, name))
                _forget_live_only(state)
            self.members[p.key] = Member(state)
        present = {p.key for p in snap.processes}
        for key, member in self.members.items():
            if key not in present and not member.state.exited:
                _forget_live_only(member.state)
                member.state.exited = True
        states = [m.state for m in self.members.values()]
        children = Counter(s.ppid for s in states if not s.exited)
        for member in self.members.values():
            member.child_count = children[member.state.pid]
        return sorted(self.members.values(), key=lambda m: (m.state.create_time or 0, m.state.pid))

    def _count_reaped(self, found: list[ProcessState]) -> None:
        """The CPU time the tree used that no tick saw (`_unseen_ticks`).

        The kernel adds a reaped child's whole CPU time (its own reaped children's
        included) to its parent's cutime/cstime. So what a member's grows by, less what
        the ticks already counted of the members it reaped (their CPU time when last
        read), is CPU the tree used unseen: a child forked and gone between two ticks,
        or a member's last moments after its last tick. Call before `members` changes.
        """
        if not self.include_children:  # the children's CPU is not the top process's
            return
        first = not self.members  # already there: only what they reap from now on counts
        parents = {p.pid: p.key for p in found if not p.exited}
        for p in found:
            old = self.members.get(p.key)
            if p.exited and old is not None and not old.state.exited:
                self._reaped.pop(p.key, None)
                self._owed.pop(p.key, None)  # its unreaped children go to init
                parent = parents.get(p.ppid) if p.ppid is not None else None
                if parent is not None and p.cpu_ticks is not None:
                    counted = p.cpu_ticks + (p.reaped_ticks or 0)
                    self._owed[parent] = self._owed.get(parent, 0) + counted
        unseen = 0
        for p in found:
            if p.exited or p.reaped_ticks is None:
                continue
            before = self._reaped.get(p.key, p.reaped_ticks if first else 0)
            self._reaped[p.key] = p.reaped_ticks
            grown = p.reaped_ticks - before - self._owed.pop(p.key, 0)
            if grown >= 0:
                unseen += grown
            else:  # counted, not reaped yet: it is when the parent next waits
                self._owed[p.key] = -grown
        self._unseen_ticks = unseen

    def _count_remotes(self, members: list[ProcessState], snap: Snapshot) -> None:
        """Add what the members' connections moved since the last tick to `remotes`."""
        if snap.remotes is None:
            return
        if self.remotes is None:
            self.remotes = RemoteTable()
        moved: list[ConnectionTraffic] = []
        counts: dict[tuple[ProcessKey, tuple[str, str, str]], tuple[int, int]] = {}
        for p in members:
            for ckey, c in p.connections.items():
                sent, recv = self._conn_bytes.get((p.key, ckey), (0, 0))
                counts[(p.key, ckey)] = (c.sent_bytes, c.recv_bytes)
                ds, dr = c.sent_bytes - sent, c.recv_bytes - recv
                if ds or dr:
                    moved.append(ConnectionTraffic(p.pid, c.protocol, c.local, c.remote, ds, dr))
        self._conn_bytes = counts  # a connection the collector forgot starts again from 0
        self.remotes.apply(moved, snap.interval_s, snap.ts)
        self.remotes.refresh((p.pid, p.name, p.connections.values()) for p in members)
        known = {h.address: h for h in snap.remotes}
        for host in self.remotes.hosts.values():
            if (h := known.get(host.address)) is not None:
                host.name, host.name_source, host.scope = h.name, h.name_source, h.scope

    def not_running_yet(self, pid: int, name: str) -> None:
        """Member `pid` is a held command: its CPU, memory and rates so far are those of
        nettop-ui's trampoline waiting to become it, so they are unknown, and its name is
        the command's. Call after `update`, before the records and `aggregate`."""
        for member in self.members.values():
            if member.state.pid == pid and not member.state.exited:
                _forget_live_only(member.state)
                member.state.name = name

    @property
    def alive(self) -> bool:
        return any(not m.state.exited for m in self.members.values())

    def aggregate(self, snap: Snapshot) -> TreeTotals:
        """The whole tree in one object; call after `update` for the same snapshot."""
        members = [m.state for m in self.members.values()]
        live = [s for s in members if not s.exited]
        member_pids = {s.pid for s in members}
        over = {
            TreeSum.LIVE: live,
            TreeSum.ALL: members,
            TreeSum.USED: live,
            # Counted on their own: live members, and exited ones no member reaped.
            TreeSum.DISK: [s for s in members if not s.exited or s.ppid not in member_pids],
            TreeSum.COUNT: members,
        }
        sums: dict[str, Any] = {}
        unknown: dict[str, int] = {}
        # The disk sums first: unknown_members has always listed them first.
        for kind in sorted(over, key=lambda kind: kind is not TreeSum.DISK):
            for f in (f for f in TREE_FIELDS if f.tree is kind):
                values = [getattr(s, f.name) for s in over[kind]]
                if kind is TreeSum.USED:  # a member NVML does not list uses no GPU
                    sums[f.name] = sum_known(values)
                    continue
                missing = values.count(None)
                if missing:
                    unknown[f.name] = missing
                sums[f.name] = None if missing or not values else sum(values)
        cpu = sums.get("cpu_percent")
        if cpu is not None and self._unseen_ticks and snap.interval_s > 0:
            unseen_s = self._unseen_ticks / procfs.CLK_TCK
            sums["cpu_percent"] = cpu + 100.0 * unseen_s / snap.interval_s
        for name in SINCE_FIRST:  # counted from the first sample that knows them
            if sums[name] is not None:
                base = self._base.setdefault(name, sums[name])
                sums[name] = max(sums[name] - base, 0)
        return TreeTotals(len(live), len(members) - len(live), sums, unknown)

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
    """Bytes sent and received on every interface but loopback (wire frames, since boot):
    the snapshot's, or read here when it has no machine-wide figures (`watch`'s collector
    samples none: the tree's recording needs only these)."""
    if snap.system is not None:
        stats = snap.system.interfaces.items()
        nics = [(i.sent_bytes, i.recv_bytes) for n, i in stats if n != "lo"]
    else:
        try:
            counters = psutil.net_io_counters(pernic=True)
        except OSError:
            return None
        nics = [(c.bytes_sent, c.bytes_recv) for n, c in counters.items() if n != "lo"]
    return sum(n[0] for n in nics), sum(n[1] for n in nics)
