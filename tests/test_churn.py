"""Process churn: 300 short-lived processes a second, each moving a few KB, for 120 s.

nettop-ui (ebpf) must get through it without an exception, still attribute every byte
(the kernel captures each process's comm, so one that exits inside an interval is still
named), and keep its memory flat once the exited list has reached its cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.netenv import require_root

RATE, SECONDS, BYTES = 300, 120, 4096
WARM_UP_S = 90
NAME = "ntu-churn-kid"
CHURN = [sys.executable, "-m", "tests.churn", "--name", NAME]


def test_churn_is_attributed_and_memory_stays_flat(tmp_path: Path) -> None:
    require_root()
    out = tmp_path / "churn.jsonl"
    monitor = subprocess.Popen(
        [sys.executable, "-m", "nettop_ui", "--json", "--backend", "ebpf", "--interval", "1"],
        stdout=out.open("w"),
        stderr=subprocess.PIPE,
        text=True,
    )
    churn: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 120
        while out.read_text().count("\n") < 2:  # meta + a first sample: the probe is attached
            assert monitor.poll() is None and time.monotonic() < deadline, "monitor did not start"
            time.sleep(0.5)
        churn = subprocess.Popen(
            [*CHURN, "--rate", str(RATE), "--seconds", str(SECONDS), "--bytes", str(BYTES)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        rss: dict[int, int] = {}
        start = time.monotonic()
        while churn.poll() is None:
            time.sleep(1)
            rss[int(time.monotonic() - start)] = psutil.Process(monitor.pid).memory_info().rss
        result = json.loads(churn.communicate(timeout=60)[0])
        time.sleep(3)  # two more intervals: the last children's bytes reach a sample
        rss_after = psutil.Process(monitor.pid).memory_info().rss
        monitor.send_signal(2)
        _, err = monitor.communicate(timeout=30)
    finally:
        for proc in (monitor, churn):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert monitor.returncode == 0 and "Traceback" not in err, err
    # The generator (C) paces itself at RATE: on 2 cores, beside nettop-ui, it made all
    # 18,000. A machine too busy to keep within 3% of the rate fails here, not later.
    assert result["failed"] == 0 and result["children"] >= 0.97 * RATE * SECONDS, result
    assert result["server_recv"] == result["child_sent"]

    last = json.loads(out.read_text().splitlines()[-1])
    # A child is named NAME by the kernel once it has called prctl; one that /proc showed
    # between fork and prctl keeps the parent's name: its ppid says whose it is.
    kids = [
        p
        for p in last["processes"]
        if p["pid"] != result["pid"] and (p["name"] == NAME or p["ppid"] == result["pid"])
    ]
    folded = last.get("exited_folded") or {"sent_bytes": 0, "processes": 0}
    # Each child still listed carries exactly its own payload, under its own pid and name.
    assert len(kids) >= 1000 and all(p["sent_bytes"] == BYTES for p in kids), kids[:3]
    # No byte lost: the children listed plus the exited processes folded into one total
    # (these children, and whatever else exited on the machine meanwhile) cover them all.
    attributed = sum(p["sent_bytes"] for p in kids) + folded["sent_bytes"]
    assert attributed >= result["child_sent"], (attributed, result["child_sent"])
    assert len(kids) <= 2000 and folded["processes"] >= result["children"] - 2000
    server = next(p for p in last["processes"] if p["pid"] == result["pid"])
    assert server["recv_bytes"] == result["server_recv"]

    # Memory: the exited list reaches its cap of 2,000 after ~7 s, but RSS still climbs
    # for a while after (heap fragmentation settling as pids, ports and objects turn
    # over; 68 -> 92 MB over the first 85 s once bcc/LLVM left the process, which had
    # hidden it in a 10% margin). Measured at 300/s: 87-93 MB from 85 s to 185 s. So
    # after WARM_UP_S, RSS stays within 10%, and once the churn stops it must not grow.
    warm = rss[min(k for k in rss if k >= WARM_UP_S)]
    during = max(v for k, v in rss.items() if k >= WARM_UP_S)
    assert during <= warm * 1.10, (warm, during, rss)
    assert rss_after <= during * 1.02, (rss_after, during)
