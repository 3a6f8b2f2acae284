"""`--format denet`: `run`/`attach` recordings in denet's JSON Lines schema.

denet (https://pypi.org/project/denet/, read from version 0.10.3 and its own
recordings) writes a `metadata` line, a `child` line when a process joins the tree,
and one `tree` line per sample: `parent` (the top process's metrics), `children`
(`pid`, `command`, `metrics`) and `aggregated` (the tree, with `process_count`).
Metrics use denet's names and units (`cpu_usage` in percent of one core,
`mem_rss_kb`, `disk_read_bytes`, `sys_net_rx_bytes`, ...); denet's three disk signals
sit under its names: `disk_read_bytes`/`disk_write_bytes` (block layer),
`syscall_read_bytes`/`syscall_write_bytes` (rchar/wchar) and `page_faults_cached`/
`page_faults_disk` (minor/major). Figures nettop-ui does not measure (PSI), and those
unknown at a sample, are left out, not zeroed. Per-process
network bytes go where denet puts its own eBPF ones (`ebpf.network`: `rx_bytes`,
`tx_bytes`, and `per_pid` in `aggregated`) and, named for what they are, under
`nettop` (`sent_bytes`, `recv_bytes`, `backend`, `layer`). With `--profile`, the
off-CPU time and syscalls go where denet writes its own, `ebpf.offcpu` and
`ebpf.syscalls`, in each process's metrics and in `aggregated`. The run ends with an
`exit` line (`pid`, `exit_code`), which denet's loader skips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Record = dict[str, Any]


def _kb(value: int | None) -> int | None:
    return None if value is None else value // 1024


def _ms(ts: float) -> int:
    return int(ts * 1000)


def _drop_none(d: Record) -> Record:
    return {k: v for k, v in d.items() if v is not None}


class DenetConverter:
    """Turns the records of nettop_ui.watch into denet's, one call per record."""

    def __init__(self, write: Callable[[Record], None]) -> None:
        self.write = write
        self.meta: Record = {}
        self.known: set[tuple[int, float | None]] = set()

    def __call__(self, record: Record) -> None:
        kind = record["type"]
        if kind == "meta":
            self.meta = record
            self.write(self._metadata(record))
        elif kind == "sample":
            for line in self._tree(record):
                self.write(line)
        elif kind == "end":
            self.write(
                {
                    "kind": "exit",
                    "ts_ms": _ms(record["ended"]),
                    "pid": self.meta.get("pid"),
                    "exit_code": record["exit_code"],
                    "reason": record["reason"],
                }
            )

    def _metadata(self, meta: Record) -> Record:
        return {
            "kind": "metadata",
            "pid": meta["pid"],
            "cmd": meta["cmdline"],
            "executable": meta["executable"],
            "t0_ms": _ms(meta["started"]),
            "capabilities": {},
            "nettop": {
                "backend": meta["backend"],
                "layer": meta["layer"],
                "interval_s": meta["interval_s"],
                "max_interval_s": meta["max_interval_s"],
                "children": meta["children"],
                "mode": meta["mode"],
            },
        }

    def _metrics(self, ts: float, p: Record, sample: Record) -> Record:
        start = p.get("start_time")
        m: Record = {
            **_usage(ts, p, sample),
            "uptime_secs": None if start is None else max(int(ts - start), 0),
        }
        if p["sent_bytes"] is not None:
            m["ebpf"] = {"network": {"rx_bytes": p["recv_bytes"], "tx_bytes": p["sent_bytes"]}}
            m["nettop"] = {"sent_bytes": p["sent_bytes"], "recv_bytes": p["recv_bytes"]}
        _add_profile(m, p.get("ebpf"))
        return _drop_none(m)

    def _tree(self, sample: Record) -> list[Record]:
        ts, root_pid = sample["ts"], self.meta.get("pid")
        lines: list[Record] = []
        live = [p for p in sample["processes"] if not p["exited"]]
        for p in sample["processes"]:
            if (p["pid"], p["start_time"]) not in self.known and p["pid"] != root_pid:
                self.known.add((p["pid"], p["start_time"]))
                child = {"ts_ms": _ms(ts), "pid": p["pid"], "ppid": p["ppid"], "cmd": p["cmdline"]}
                lines.append({"kind": "child", **child})
        root = next((p for p in live if p["pid"] == root_pid), None)
        t = sample["tree"]
        aggregated: Record = {**_usage(ts, t, sample), "process_count": t["processes"]}
        if t["sent_bytes"] is not None:
            per_pid = {
                str(p["pid"]): {"rx_bytes": p["recv_bytes"], "tx_bytes": p["sent_bytes"]}
                for p in sample["processes"]
                if p["sent_bytes"] or p["recv_bytes"]
            }
            network = {"rx_bytes": t["recv_bytes"], "tx_bytes": t["sent_bytes"], "per_pid": per_pid}
            aggregated["ebpf"] = {"network": network}
            aggregated["nettop"] = {
                "sent_bytes": t["sent_bytes"],
                "recv_bytes": t["recv_bytes"],
                "backend": self.meta.get("backend"),
                "layer": self.meta.get("layer"),
            }
        _add_profile(aggregated, t.get("ebpf"))
        gpu = t.get("gpu_memory_bytes")
        if gpu is not None:
            aggregated["nettop_gpu_memory_bytes"] = gpu
        lines.append(
            {
                "kind": "tree",
                "ts_ms": _ms(ts),
                "parent": self._metrics(ts, root, sample) if root else None,
                "children": [
                    {"pid": p["pid"], "command": p["name"], "metrics": self._metrics(ts, p, sample)}
                    for p in live
                    if p["pid"] != root_pid
                ],
                "aggregated": _drop_none(aggregated),
            }
        )
        return lines


def _add_profile(metrics: Record, ebpf: Record | None) -> None:
    """`--profile`: denet's `ebpf.offcpu` and `ebpf.syscalls` (its keys only; the parts we
    do not know, such as the minimum and a process without detail, left out); what is
    ours, `bound_by` and the off-CPU time by what it waited on, under `nettop_profile`."""
    if not ebpf:
        return
    offcpu = {k: v for k, v in ebpf["offcpu"].items() if k != "wait_ns" and v is not None}
    syscalls = _drop_none(ebpf["syscalls"])
    metrics["ebpf"] = {**metrics.get("ebpf", {}), "offcpu": offcpu, "syscalls": syscalls}
    metrics["nettop_profile"] = {
        "bound_by": ebpf["bound_by"],
        "wait_ns": ebpf["offcpu"]["wait_ns"],
    }


def _usage(ts: float, p: Record, sample: Record) -> Record:
    """denet's usage fields from one of our process (or tree) records."""
    return {
        "ts_ms": _ms(ts),
        "cpu_usage": p["cpu_percent"] or 0.0,
        "mem_rss_kb": _kb(p["rss_bytes"]) or 0,
        "mem_vms_kb": _kb(p["vms_bytes"]) or 0,
        "disk_read_bytes": p["read_bytes"],
        "disk_write_bytes": p["write_bytes"],
        "syscall_read_bytes": p.get("syscall_read_bytes"),
        "syscall_write_bytes": p.get("syscall_write_bytes"),
        "page_faults_cached": p.get("page_faults_cached"),
        "page_faults_disk": p.get("page_faults_disk"),
        "sys_net_rx_bytes": sample["interfaces_recv_bytes"],
        "sys_net_tx_bytes": sample["interfaces_sent_bytes"],
        "thread_count": p["threads"] or 0,
    }
