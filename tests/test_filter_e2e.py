"""Each filter term against real traffic, as a user runs it.

Four named clients move real bytes for the whole module: TCP over IPv4 and over IPv6
(that one as `nobody`) to the test namespace, TCP over loopback, and UDP over IPv4.
`nettop-ui --json --connections --filter EXPR` (sockdiag; ebpf for UDP, which sockdiag
does not see) must list exactly the clients the term selects, and every process it lists
must satisfy the term by its own listed connections and facts. The TUI's `/` box is
driven the same way over the real ebpf collector (Pilot), a bad term is one clear line
(CLI) or a red hint (TUI), and the one-shot table honours `--units si`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backends.ebpf import EbpfBackend
from nettop_ui.format import human_rate
from nettop_ui.remotes import split_endpoint
from nettop_ui.tui import MonitorSource, NettopApp
from nettop_ui.tui.filter_bar import FilterBar
from tests.netenv import Client, Network, require, require_root
from tests.test_cli import run as run_cli
from tests.test_ebpf import require_ebpf
from tests.tui_fixtures import wait_for

RATE = 150_000  # bytes/s each TCP client uploads
SECONDS = 300  # longer than the module runs; the clients are killed at its end
Record = dict[str, Any]


@pytest.fixture(scope="module")
def talkers(net: Network) -> Iterator[dict[str, Client]]:
    require_root()
    require(shutil.which("setpriv") is not None, "needs setpriv (util-linux)")
    up = RATE * SECONDS
    clients = {
        "tcp4": net.client("ntf-tcp4", "tcp", "v4", up=up, rate=RATE),
        "tcp6": net.client("ntf-tcp6", "tcp", "v6", up=up, rate=RATE, as_nobody=True),
        "lo": net.client("ntf-lo", "tcp", "lo", up=up, rate=RATE),
        "udp4": net.client("ntf-udp4", "udp", "v4", datagrams=SECONDS * 20, pace=0.05),
    }
    try:
        yield clients
    finally:
        for c in clients.values():
            c.proc.kill()
            c.proc.wait()


def stream(backend: str, expr: str, count: int = 4) -> list[Record]:
    """Every process record of a `--json --connections --filter EXPR` run."""
    res = run_cli(
        *("--json", "--connections", "--backend", backend, "--interval", "0.5"),
        *("--count", str(count), "--filter", expr),
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["type"] for r in lines] == ["meta"] + ["sample"] * count
    return [p for r in lines[2:] for p in r["processes"]]  # after the first interval


def remote_ip(c: Record) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = split_endpoint(c["remote"])[0]
    return ipaddress.ip_address(host) if host else None


def ip(c: Record) -> str:
    return str(remote_ip(c))


def ports(c: Record) -> set[int | None]:
    return {split_endpoint(c["local"])[1], split_endpoint(c["remote"])[1]}


Check = Callable[[Record], bool]  # what every listed process must show to be there


def terms(net: Network, t: dict[str, Client]) -> dict[str, tuple[str, set[str], Check]]:
    """By name: (expression, which of the clients it selects, what each listed process
    shows). The UDP client sends on an unconnected socket: no remote address to match."""
    v4 = ipaddress.ip_network(f"{net.ns_v4}/24", strict=False)
    v6 = ipaddress.ip_network(f"{net.ns_v6}/64", strict=False)
    p4, p6 = net.ports["tcp4"], net.ports["tcp6"]

    def conn(test: Callable[[Record], bool]) -> Check:
        return lambda p: any(test(c) for c in p["connections"])

    return {
        "port": (f"port:{p4}", {"tcp4"}, conn(lambda c: p4 in ports(c))),
        "port-range": (f"port:{p4 - 1}-{p4 + 1}", {"tcp4"}, conn(lambda c: p4 in ports(c))),
        "host-v4": (f"host:{net.ns_v4}", {"tcp4"}, conn(lambda c: ip(c) == net.ns_v4)),
        "host-v4-net": (f"host:{v4}", {"tcp4"}, conn(lambda c: remote_ip(c) in v4)),
        "host-v6": (f"host:{net.ns_v6}", {"tcp6"}, conn(lambda c: ip(c) == net.ns_v6)),
        "host-v6-net": (f"host:{v6}", {"tcp6"}, conn(lambda c: remote_ip(c) in v6)),
        "user": ("user:nobody", {"tcp6"}, lambda p: p["user"] == "nobody"),
        "not-user": (
            f"port:{p4},{p6} -user:nobody",
            {"tcp4"},
            lambda p: p["user"] != "nobody" and conn(lambda c: bool({p4, p6} & ports(c)))(p),
        ),
        "proto-host": (
            "proto:tcp host:127.0.0.1",
            {"lo"},
            conn(lambda c: c["protocol"] == "tcp" and ip(c) == "127.0.0.1"),
        ),
        "pid": (f"pid:{t['lo'].proc.pid}", {"lo"}, lambda p: p["pid"] == t["lo"].proc.pid),
        "text": ("ntf-lo", {"lo"}, lambda p: "ntf-lo" in p["name"] + " ".join(p["cmdline"])),
        "regex": (
            "!^ntf-(lo|tcp4)$",
            {"lo", "tcp4"},
            lambda p: p["name"] in ("ntf-lo", "ntf-tcp4"),
        ),
        "proto-udp": ("proto:udp", {"udp4"}, conn(lambda c: c["protocol"] == "udp")),
    }


SOCKDIAG_TERMS = [
    "port", "port-range", "host-v4", "host-v4-net", "host-v6", "host-v6-net",
    "user", "not-user", "proto-host", "pid", "text", "regex",
]  # fmt: skip


def check_term(
    records: list[Record], t: dict[str, Client], expected: set[str], check: Check
) -> None:
    ours = {c.proc.pid: key for key, c in t.items()}
    selected = {ours[p["pid"]] for p in records if p["pid"] in ours}
    assert selected == expected, (selected, expected)
    for p in records:
        assert check(p), p  # nothing that fails the term is listed


@pytest.mark.parametrize("name", SOCKDIAG_TERMS)
def test_json_filter_terms_on_sockdiag(net: Network, talkers: dict[str, Client], name: str) -> None:
    expr, expected, check = terms(net, talkers)[name]
    check_term(stream("sockdiag", expr), talkers, expected, check)


def test_json_filter_udp_on_ebpf(net: Network, talkers: dict[str, Client]) -> None:
    require_ebpf()
    expr, expected, check = terms(net, talkers)["proto-udp"]
    check_term(stream("ebpf", expr, count=5), talkers, expected, check)


def test_filter_needing_connections_on_psutil_says_so_once() -> None:
    res = run_cli(
        *("--json", "--backend", "psutil", "--interval", "0.3", "--count", "2"),
        *("--filter", "port:22 python"),
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [
        "nettop-ui: warning: port: needs a backend with connections (ebpf, sockdiag), not psutil"
    ]
    samples = [json.loads(line) for line in res.stdout.splitlines()[1:]]
    assert samples and all(s["processes"] == [] for s in samples)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("foo:1", 'unknown field "foo:"'),
        ("port:http2x", "port:http2x: not a port (a number 0-65535"),
        ("host:10.0.0.0/33", "host:10.0.0.0/33: not a network"),
        ("proto:tpc", "proto:tpc: not a protocol (one of tcp, udp"),
        ("!a(?=b)", "regex: no lookaround"),
    ],
)
@pytest.mark.parametrize("mode", [["--json"], []])  # the stream, the one-shot table
def test_a_bad_term_is_one_line_and_exit_2(expr: str, says: str, mode: list[str]) -> None:
    res = run_cli(*mode, "--backend", "psutil", "--count", "1", "--filter", expr)
    assert res.returncode == 2
    assert res.stdout == ""
    err = res.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("nettop-ui: error: argument --filter: "), err
    assert says in err[0], err


def test_one_shot_table_in_si_units(net: Network, talkers: dict[str, Client]) -> None:
    """`--units si` off a terminal: the one-shot table in kB/s, the filter applied."""
    lo = talkers["lo"].proc.pid
    res = run_cli(
        *("--backend", "sockdiag", "--interval", "1", "--units", "si", "--filter", f"pid:{lo}"),
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == [lo]  # only the process asked for
    up = rows[0][2]
    assert re.fullmatch(r"[0-9.]+kB/s", up), up  # 150 kB/s: decimal units
    value = float(up[:-4]) * 1000
    assert 0.5 * RATE < value < 1.5 * RATE, up  # one interval of a paced upload
    assert human_rate(value, units="si") == up


async def test_tui_filter_box_on_real_traffic(net: Network, talkers: dict[str, Client]) -> None:
    """Every term typed into the `/` box over the real ebpf collector."""
    require_ebpf()
    app = NettopApp(MonitorSource(EbpfBackend(), 0.5), host="test")
    ours = {c.proc.pid: key for key, c in talkers.items()}

    def shown() -> set[str]:
        return {ours[r.value("pid")] for r in app.main.rows if r.value("pid") in ours}

    def next_frame(seen: int) -> Callable[[], bool]:
        return lambda: app.frames_received > seen

    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(  # past the first look (no connections yet): a sample's frame
            pilot,
            lambda: shown() == set(ours.values()) and app.frames_received >= 2,
            "every client, sampled",
            90,
        )
        bar = app.main.query_one(FilterBar)
        for expr, expected, _check in terms(net, talkers).values():
            await pilot.press("delete", "slash", *expr, "escape")
            await pilot.pause()
            assert app.opts.filter_text == expr and not bar.has_class("-error")
            assert shown() == expected, (expr, shown())
            await wait_for(pilot, next_frame(app.frames_received), "the next frame", 10)
            assert shown() == expected, (expr, "a tick later", shown())
        await pilot.press("delete", "slash", *"port:http2x")
        await pilot.pause()
        assert bar.has_class("-error")
        assert "port:http2x: not a port" in str(bar.query_one("#filter-hint").render())
        assert shown() == set(ours.values())  # a bad term filters nothing
