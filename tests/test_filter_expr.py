"""The filter expression (nettop_ui/filter_expr.py) on process, connection and host values.

Real traffic through every term is in tests/test_filter_e2e.py; here each term's rules,
its errors, and the values only other parts fill (service, cgroup, remote names).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.tui import GOAL_CPU_MS
from nettop_ui.collector import ConnectionState, ProcessState
from nettop_ui.filter_expr import Filter, FilterError, connections_missing, parse
from nettop_ui.tui.frame import ConnView, ProcessView, RemoteView


def conn(
    remote: str, local: str = "10.0.0.1:40000", protocol: str = "tcp", name: str | None = None
) -> ConnView:
    return ConnView(protocol, local, remote, 0, 0, 0.0, 0.0, remote_name=name)


def proc(pid: int = 100, name: str = "curl", *conns: ConnView, **kw: Any) -> ProcessView:
    return ProcessView(pid=pid, create_time=1.0, name=name, connections=conns, **kw)


def host(address: str, name: str | None = None, **kw: Any) -> RemoteView:
    values: dict[str, Any] = {
        "scope": "remote",
        "name_source": None,
        "sent_bytes": 0,
        "recv_bytes": 0,
        "sent_bps": 0.0,
        "recv_bps": 0.0,
        "connection_count": 1,
        "protocols": ("tcp",),
        "ports": (443,),
        "pids": ((100, "curl"),),
    }
    values.update(kw)
    return RemoteView(address=address, name=name, **values)


def shown(expr: str, *procs: ProcessView) -> list[int]:
    f = parse(expr)
    return [p.pid for p in procs if f.matches_process(p)]


WEB = proc(1, "curl", conn("93.184.216.34:443", name="www.example.com"))
DNS = proc(2, "resolved", conn("[2001:db8::53]:53", "[2001:db8::1]:5353", "udp"))
LOCAL = proc(3, "nginx", conn("127.0.0.1:51000", "127.0.0.1:8080"), user="www-data")
QUIET = proc(4, "sleep", user="alice")  # no connections
ALL = (WEB, DNS, LOCAL, QUIET)


@pytest.mark.parametrize(
    ("expr", "pids"),
    [
        ("", [1, 2, 3, 4]),
        ("port:443", [1]),
        ("port:8080", [3]),  # a local port counts
        ("port:8000-9000", [3]),
        ("port:5000-9000", [2, 3]),
        ("port:domain", [2]),  # a service name from /etc/services
        ("port:https", [1]),
        ("port:443,53", [1, 2]),
        ("host:93.184.216.34", [1]),
        ("host:93.184.216.0/24", [1]),
        ("host:2001:db8::53", [2]),
        ("host:2001:db8::/32", [2]),
        ("host:::ffff:93.184.216.34", [1]),  # an IPv4-mapped address is the IPv4 one
        ("host:example.com", [1]),  # the name and its subdomains
        ("host:ample.com", []),  # not a substring
        ("host:*.EXAMPLE.com", [1]),
        ("host:www.example.com.", [1]),  # a trailing dot is the same name
        ("proto:udp", [2]),
        ("proto:TCP", [1, 3]),
        ("user:alice", [4]),
        ("user:www-*", [3]),
        ("user:www", []),  # exact, not a substring
        ("pid:3", [3]),
        ("curl", [1]),
        ("WWW-DATA", [3]),  # text: the user too, any case
        ("!^(curl|sleep)$", [1, 4]),
        ("-port:443", [2, 3, 4]),
        ("not:curl", [2, 3, 4]),
        ("not:!^s", [1, 2, 3]),
        ("not:-user:alice", [4]),
        ("port:443 curl", [1]),  # every term
        ("port:443 nginx", []),
        ("host:127.0.0.1 port:8080", [3]),  # both on one connection
        ("host:127.0.0.1 port:443", []),
        ('"nginx: worker"', []),
        ("sshd:", []),  # a process title, not a field
    ],
)
def test_terms(expr: str, pids: list[int]) -> None:
    assert shown(expr, *ALL) == pids


def test_connection_terms_are_for_one_connection_and_negated_ones_for_none() -> None:
    two = proc(5, "app", conn("10.0.0.5:443"), conn("10.0.0.6:80"))
    assert shown("host:10.0.0.5 port:443", two) == [5]
    assert shown("host:10.0.0.5 port:80", two) == []
    assert shown("-host:10.0.0.6", two) == []  # one of its connections is there
    assert shown("port:80 -host:10.0.0.5", two) == []


def test_quotes_keep_spaces_and_make_fields_text() -> None:
    worker = proc(6, "nginx", cmdline=("nginx: worker process",))
    odd = proc(7, "tool", cmdline=("tool", "port:443"))
    assert shown('"nginx: worker"', worker, odd) == [6]
    assert shown("nginx: worker", worker, odd) == [6]  # "nginx:" is text, then "worker"
    assert shown('"port:443"', worker, odd) == [7]
    assert shown('port:"443"', worker, odd) == []  # the field stays a field
    assert shown('"!not a regex"', proc(8, "x", cmdline=("!not a regex",))) == [8]
    assert shown('!"^nginx: w"', worker, odd) == [6]  # a regex with a space
    assert shown('"unclosed quote runs', worker) == []  # to the end, as text


def test_service_and_cgroup() -> None:
    web = proc(10, "nginx", service="nginx.service", cgroup="/system.slice/nginx.service")
    pod = proc(
        11,
        "python3",
        service="k8s pod 1a2b/app",
        cgroup="/kubepods.slice/kubepods-pod1a2b.slice/cri-containerd-9f8e.scope",
    )
    unknown = proc(12, "bash")  # service and cgroup None: nothing to match
    everyone = (web, pod, unknown)
    assert shown("service:nginx", *everyone) == [10]
    assert shown("service:NGINX", *everyone) == [10]
    assert shown("service:*.service", *everyone) == [10]
    assert shown("service:k8s*", *everyone) == [11]
    assert shown("cgroup:kubepods", *everyone) == [11]
    assert shown("cgroup:/system.slice/*", *everyone) == [10]
    assert shown("-service:nginx", *everyone) == [11, 12]


def test_hosts() -> None:
    f = parse("host:*.example.com port:443")
    assert f.matches_host(host("93.184.216.34", "www.example.com"))
    assert not f.matches_host(host("93.184.216.34", None))  # no name yet
    assert not f.matches_host(host("93.184.216.34", "www.example.com", ports=(80,)))
    assert parse("host:10.0.0.0/8").matches_host(host("10.1.2.3"))
    assert not parse("host:10.0.0.0/8").matches_host(host("fd00::1"))
    assert parse("proto:udp").matches_host(host("10.1.2.3", protocols=("tcp", "udp")))
    assert parse("pid:100").matches_host(host("10.1.2.3"))
    assert parse("curl").matches_host(host("10.1.2.3"))  # a process talking to it
    assert parse("10.1.2").matches_host(host("10.1.2.3"))
    assert parse("example").matches_host(host("10.1.2.3", "www.example.com"))
    assert not parse("-curl").matches_host(host("10.1.2.3"))
    # user:, service:, cgroup: through the processes talking to it, when given
    alice = proc(100, "curl", user="alice", service="backup.service")
    by_pid = {100: alice}
    assert parse("user:alice").matches_host(host("10.1.2.3"), by_pid)
    assert not parse("user:bob").matches_host(host("10.1.2.3"), by_pid)
    assert parse("service:backup").matches_host(host("10.1.2.3"), by_pid)
    assert not parse("user:alice").matches_host(host("10.1.2.3"))  # not known without them


def test_collector_states_match_like_views() -> None:
    state = ProcessState(pid=20, create_time=1.0, name="rsync", cmdline=["rsync", "-a"])
    c = ConnectionState("tcp", "10.0.0.1:40000", "10.0.0.9:873")
    state.connections[("tcp", c.local, c.remote)] = c
    f = parse("port:873 rsync host:10.0.0.9")
    assert f.matches(state, state.connections.values())
    assert not parse("port:22").matches(state, state.connections.values())


def test_unattributed_row_matches_text_only() -> None:
    label = "(unattributed)"
    assert parse("unattr").matches_label(label)
    assert parse("!^\\(un").matches_label(label)
    assert not parse("port:443").matches_label(label)
    assert parse("-port:443").matches_label(label)
    assert not parse("unattr user:root").matches_label(label)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("foo:1", 'unknown field "foo:" (fields: host, port, proto,'),
        ("foo:1", 'quote it: "foo:1"'),
        ("port:http2x", "port:http2x: not a port (a number 0-65535, a range"),
        ("port:70000", "port:70000: not a port"),
        ("port:9-1", "port:9-1: not a port"),
        ("port:", "port: needs a value, e.g. port:443"),
        ("port:,", "port: needs a value"),
        ("host:10.0.0.0/33", "host:10.0.0.0/33: not a network (an address such as"),
        ("host:10.0.0.300", "host:10.0.0.300: not an address"),
        ("host:fd00::zz", "host:fd00::zz: not an address"),
        ("proto:tpc", "proto:tpc: not a protocol (one of tcp, udp,"),
        ("pid:abc", "pid:abc: not a PID"),
        ("pid:\u0663", "pid:\u0663: not a PID"),  # digits, but not ASCII ones
        ("not:", "not: needs a value"),
        ("ok ![", "bad regex: missing ]"),
        ("!a(?=b)", "regex: no lookaround (RE2 syntax)"),
        ("!(a)\\1", "regex: no backreferences"),
    ],
)
def test_a_bad_term_is_one_clear_line(expr: str, says: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(expr)
    message = str(info.value)
    assert says in message, message
    assert "\n" not in message


def test_connections_missing_names_the_fields_and_the_backends() -> None:
    f = parse("host:10.0.0.5 port:443 curl")
    assert f.needs_connections == ("host", "port")
    assert not parse("user:root curl").needs_connections
    assert connections_missing(f, "psutil", ["ebpf", "sockdiag"]) == (
        "host: port: need a backend with connections (ebpf, sockdiag), not psutil"
    )
    one = connections_missing(parse("-proto:udp"), "nethogs", ["ebpf"])
    assert one.startswith("proto: needs a backend")


def test_2000_processes_with_10000_connections_filter_in_milliseconds() -> None:
    """The filter runs over every process each tick: compiled once, endpoints parsed once."""
    procs = [
        proc(
            pid,
            f"worker{pid}",
            *(conn(f"10.{pid % 250}.{k}.1:{1000 + k}") for k in range(5)),
            user="svc",
            cmdline=(f"worker{pid}", "--serve"),
        )
        for pid in range(1, 2001)
    ]
    f: Filter = parse("user:svc host:10.7.0.0/16 port:1000-1002 serve")
    f.matches_process(procs[0])
    started = time.process_time()
    for _ in range(5):
        matched = [p.pid for p in procs if f.matches_process(p)]
    per_tick_ms = (time.process_time() - started) / 5 * 1000
    assert matched == [p.pid for p in procs if p.pid % 250 == 7]
    # A small share of the whole refresh's goal (docs/benchmarks.md, bench/tui).
    assert per_tick_ms < GOAL_CPU_MS / 4, f"{per_tick_ms:.1f} ms a tick"


def test_a_hostile_glob_cannot_stall_the_filter() -> None:
    """A backtracking glob would take 2**n steps here; fnmatch's patterns do not backtrack."""
    p = proc(30, "x", service="a" * 5000, cgroup="a" * 5000)
    started = time.process_time()
    assert not shown("service:" + "*a" * 30 + "*b", p)
    assert not shown("cgroup:" + "*a" * 30 + "*b", p)
    assert time.process_time() - started < 1.0
