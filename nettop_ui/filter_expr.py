"""Scope filters: the expression of the TUI's `/` box and of `--filter`, parsed once.

An expression is terms separated by spaces; a process is shown when every term holds.

    word           its name, command line, user or PID contains `word` (any case)
    !regex         an RE2 search over those, one per line (any case)
    pid:N          its PID
    user:NAME      its user, exactly, or a glob (user:svc-*)
    service:TEXT   its service (systemd unit, container, pod) contains TEXT, or a glob
    cgroup:TEXT    its cgroup v2 path, the same way
    host:ADDR      a connection's remote address (10.0.0.5, fd00::1), a network
                   (10.0.0.0/24), or the remote host's name: example.com (and its
                   subdomains) or a glob (*.example.com)
    port:N         a connection's local or remote port: 443, a range 8000-8100, a name (https)
    proto:NAME     a connection's protocol: tcp, udp, icmp, sctp, ...

A comma separates alternatives in a field's value (`port:80,443`). `-field:value` or
`not:TERM` turns a term around. Double quotes keep spaces in a term and make it plain
text: `"nginx: worker"`, `"a:b"`; a word that ends in a colon with nothing after it
(a process title such as `sshd:`) is text too. The connection terms (host, port, proto)
must all hold for one connection; connections are known only to the backends with a
per-connection view, so elsewhere those terms match nothing (`needs_connections`).

`parse` raises one `FilterError` with a one-line message for a term it cannot use. The
compiled `Filter` matches processes (a `ProcessView`, or a collector `ProcessState` with
its connections) and remote hosts (a `RemoteView`); the cheap checks run first.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nettop_ui.remotes import ip_of, split_endpoint

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Regex = Any  # a compiled re2 pattern (google-re2 ships no type hints)

# The protocol names the backends give a connection (backends/ebpf.py: IP_PROTOCOLS and
# FAMILIES; an unnamed family is "af<number>").
PROTOCOLS = (
    "tcp", "udp", "udplite", "icmp", "sctp", "mptcp", "raw",
    "packet", "can", "bluetooth", "vsock", "xdp",
)  # fmt: skip
CONNECTION_FIELDS = ("host", "port", "proto")
PROCESS_FIELDS = ("pid", "user", "service", "cgroup")
FIELDS = (*CONNECTION_FIELDS, *PROCESS_FIELDS, "not")
_FIELD = re.compile(r"(-?)([A-Za-z]+):")
_GLOB = frozenset("*?[")
_ENDPOINTS_MAX = 1 << 16  # endpoints remembered per term: 10,000 connections' worth, and more


class FilterError(ValueError):
    """A term the filter cannot use; the message is one line: what is wrong, what works."""


# -- what the filter reads -----------------------------------------------------------------


class ConnLike(Protocol):
    """One connection (a `ConnView`, a collector `ConnectionState`)."""

    @property
    def protocol(self) -> str: ...
    @property
    def local(self) -> str: ...
    @property
    def remote(self) -> str: ...
    @property
    def remote_name(self) -> str | None: ...


class ProcessFacts(Protocol):
    """What the process terms read (a `ProcessView`, a collector `ProcessState`)."""

    @property
    def pid(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def cmdline(self) -> Sequence[str]: ...
    @property
    def user(self) -> str | None: ...
    @property
    def service(self) -> str | None: ...
    @property
    def cgroup(self) -> str | None: ...


class ProcessLike(ProcessFacts, Protocol):
    """A process with its connections at hand (a `ProcessView`)."""

    @property
    def connections(self) -> Sequence[ConnLike]: ...


class HostLike(Protocol):
    """One remote host (a `RemoteView`)."""

    @property
    def address(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def protocols(self) -> Sequence[str]: ...
    @property
    def ports(self) -> Sequence[int]: ...
    @property
    def pids(self) -> Sequence[tuple[int, str]]: ...


def haystack(p: ProcessFacts) -> str:
    """What text and regex terms search: name, command line, user and PID, one per line."""
    return "\n".join((p.name, " ".join(p.cmdline), p.user or "", str(p.pid)))


# -- regexes -----------------------------------------------------------------------------

# Told apart by RE2's message: syntax it leaves out on purpose, to match in linear time.
_UNSUPPORTED = {
    "invalid perl operator: (?=": "lookaround",
    "invalid perl operator: (?!": "lookaround",
    "invalid perl operator: (?<": "lookaround",
    "invalid escape sequence: \\": "backreferences",
}


def compile_regex(pattern: str) -> Regex:
    """`pattern` for RE2 (case-insensitive, `^`/`$` at each line), or a FilterError.

    RE2 rather than `re`: its time is linear in the text, so no pattern, such as
    `(a+)+$` against a long run of a's, can hold the UI for minutes.
    """
    import re2  # here: 4 MB and 15 ms that only a regex filter needs

    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # it would write on the terminal the TUI draws on
    try:
        return re2.compile("(?m)" + pattern, options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    for start, feature in _UNSUPPORTED.items():
        if message.startswith(start) and (feature != "backreferences" or message[-1:].isdigit()):
            raise FilterError(f"regex: no {feature} (RE2 syntax): {message}")
    raise FilterError(f"bad regex: {message}")


def _regex_search(regex: Regex) -> Callable[[str], bool]:
    # RE2 reads bytes; names that are not UTF-8 are searched as the kernel's bytes.
    return lambda text: regex.search(text.encode("utf-8", "surrogateescape")) is not None


# -- terms -------------------------------------------------------------------------------

ConnTest = Callable[[ConnLike], bool]
ProcTest = Callable[[ProcessFacts], bool]
HostTest = Callable[[HostLike, Mapping[int, ProcessFacts] | None], bool]


@dataclass(frozen=True, slots=True)
class _Term:
    """One compiled term: exactly one of `text`, `proc`, `conn` says how a process
    matches it; `host` says how a remote host does."""

    negate: bool
    host: HostTest
    text: Callable[[str], bool] | None = None  # on the haystack
    proc: ProcTest | None = None
    conn: ConnTest | None = None

    def negated(self) -> _Term:
        return _Term(not self.negate, self.host, self.text, self.proc, self.conn)


def _words(value: str) -> Callable[[str | None], bool]:
    """A test of a text field: a case-insensitive substring, or a glob on the whole."""
    if _GLOB & set(value):
        pattern = re.compile(fnmatch.translate(value), re.IGNORECASE | re.DOTALL)
        return lambda text: text is not None and pattern.match(text) is not None
    needle = value.lower()
    return lambda text: text is not None and needle in text.lower()


def _any_process(test: ProcTest) -> HostTest:
    """A process term on a host: one of the processes talking to it matches."""

    def on_host(h: HostLike, procs: Mapping[int, ProcessFacts] | None) -> bool:
        if procs is None:
            return False
        return any(test(p) for pid, _ in h.pids if (p := procs.get(pid)) is not None)

    return on_host


def _pid(value: str) -> _Term:
    if not value.isascii() or not value.isdigit():
        raise FilterError(f"pid:{value}: not a PID (a whole number, e.g. pid:1234)")
    pid = int(value)
    return _Term(
        False,
        host=lambda h, _procs: any(p == pid for p, _ in h.pids),
        proc=lambda p: p.pid == pid,
    )


def _user(value: str) -> _Term:
    if _GLOB & set(value):
        pattern = re.compile(fnmatch.translate(value), re.DOTALL)

        def test(p: ProcessFacts) -> bool:
            return p.user is not None and pattern.match(p.user) is not None

    else:

        def test(p: ProcessFacts) -> bool:
            return p.user == value

    return _Term(False, host=_any_process(test), proc=test)


def _described(get: Callable[[ProcessFacts], str | None]) -> Callable[[str], _Term]:
    """service: and cgroup: (a substring or a glob of what `get` reads)."""

    def parse_value(value: str) -> _Term:
        words = _words(value)

        def test(p: ProcessFacts) -> bool:
            return words(get(p))

        return _Term(False, host=_any_process(test), proc=test)

    return parse_value


_service = _described(lambda p: p.service)
_cgroup = _described(lambda p: p.cgroup)


def _proto(value: str) -> _Term:
    name = value.lower()
    if name not in PROTOCOLS and not re.fullmatch(r"af[0-9]+", name):
        raise FilterError(f"proto:{value}: not a protocol (one of {', '.join(PROTOCOLS)})")
    return _Term(
        False,
        host=lambda h, _procs: name in h.protocols,
        conn=lambda c: c.protocol == name,
    )


def _port_range(value: str) -> tuple[int, int]:
    low, dash, high = value.partition("-")
    if dash and low.isascii() and low.isdigit() and high.isascii() and high.isdigit():
        first, last = int(low), int(high)
    elif value.isascii() and value.isdigit():
        first = last = int(value)
    else:
        for proto in ("tcp", "udp"):
            try:
                port = socket.getservbyname(value.lower(), proto)
            except (OSError, ValueError):  # unknown; a NUL or non-ASCII name
                continue
            return port, port
        first = last = -1
    if not 0 <= first <= last <= 65535:
        raise FilterError(
            f"port:{value}: not a port (a number 0-65535, a range such as 8000-8100, "
            "or a service name such as https)"
        )
    return first, last


def _per_endpoint(test: Callable[[str], bool]) -> Callable[[str], bool]:
    """`test` of an endpoint text, remembered: a tick's connections are mostly the last
    tick's, so each endpoint is parsed and tested once (the memory is bounded)."""
    seen: dict[str, bool] = {}

    def remembered(endpoint: str) -> bool:
        hit = seen.get(endpoint)
        if hit is None:
            if len(seen) >= _ENDPOINTS_MAX:
                seen.clear()
            hit = seen[endpoint] = test(endpoint)
        return hit

    return remembered


def _address(text: str) -> IPAddress | None:
    """An address as an object (a zone, `%eth0`, set aside); an IPv4-mapped IPv6 one as
    IPv4; None if none."""
    return ip_of(text.split("%", 1)[0])


def _port(value: str) -> _Term:
    first, last = _port_range(value)

    def in_range(endpoint: str) -> bool:
        port = split_endpoint(endpoint)[1]
        return port is not None and first <= port <= last

    at = _per_endpoint(in_range)

    def on_conn(c: ConnLike) -> bool:
        return at(c.local) or at(c.remote)

    return _Term(
        False,
        host=lambda h, _procs: any(first <= port <= last for port in h.ports),
        conn=on_conn,
    )


_HOST_HELP = "an address such as 10.0.0.5, a network such as 10.0.0.0/24, or a name glob"


def _host(value: str) -> _Term:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    address = _address(value)
    if "/" in value:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise FilterError(f"host:{value}: not a network ({_HOST_HELP})") from None
    elif address is None and (":" in value or re.fullmatch(r"[0-9.]+", value)):
        raise FilterError(f"host:{value}: not an address ({_HOST_HELP})")
    by_address = network is not None or address is not None
    name = value.lower().rstrip(".")
    glob = re.compile(fnmatch.translate(name), re.DOTALL) if _GLOB & set(name) else None

    def at(endpoint: str) -> bool:
        ip = _address(split_endpoint(endpoint)[0])
        if network is not None:
            return ip is not None and ip in network
        return ip == address

    at_remote = _per_endpoint(at)

    def named(host_name: str | None) -> bool:
        if host_name is None:
            return False
        host_name = host_name.lower().rstrip(".")
        if glob is not None:
            return glob.match(host_name) is not None
        return host_name == name or host_name.endswith("." + name)  # and its subdomains

    def on_conn(c: ConnLike) -> bool:
        return at_remote(c.remote) if by_address else named(c.remote_name)

    def on_host(h: HostLike, _procs: Mapping[int, ProcessFacts] | None) -> bool:
        return at_remote(h.address) if by_address else named(h.name)

    return _Term(False, host=on_host, conn=on_conn)


def _host_text(test: Callable[[str], bool]) -> HostTest:
    """A text or regex term on a host: its address, its name or a talking process's name."""

    def on_host(h: HostLike, _procs: Mapping[int, ProcessFacts] | None) -> bool:
        return test("\n".join((h.address, h.name or "", *(name for _, name in h.pids))))

    return on_host


def _text(value: str) -> _Term:
    needle = value.lower()

    def test(text: str) -> bool:
        return needle in text.lower()

    return _Term(False, host=_host_text(test), text=test)


def _regex(pattern: str) -> _Term:
    test = _regex_search(compile_regex(pattern))
    return _Term(False, host=_host_text(test), text=test)


def _either(terms: list[_Term]) -> _Term:
    """`a,b`: one of the alternatives (all of one kind: they come from one field)."""
    if len(terms) == 1:
        return terms[0]
    first = terms[0]

    def host(h: HostLike, procs: Mapping[int, ProcessFacts] | None) -> bool:
        return any(t.host(h, procs) for t in terms)

    if first.conn is not None:
        conns = [t.conn for t in terms if t.conn is not None]
        return _Term(False, host=host, conn=lambda c: any(test(c) for test in conns))
    procs = [t.proc for t in terms if t.proc is not None]
    return _Term(False, host=host, proc=lambda p: any(test(p) for test in procs))


# -- parsing -----------------------------------------------------------------------------


def _tokens(text: str) -> list[tuple[str, int]]:
    """Split on spaces outside double quotes: (term without its quotes, how many of its
    first characters were outside quotes, where field names and `!` count)."""
    out: list[tuple[str, int]] = []
    buf: list[str] = []
    plain: int | None = None
    quoted = started = False
    for ch in text:
        if ch == '"':
            quoted, started = not quoted, True
            if plain is None:
                plain = len(buf)
        elif ch.isspace() and not quoted:
            if started:
                out.append(("".join(buf), len(buf) if plain is None else plain))
            buf, plain, started = [], None, False
        else:
            buf.append(ch)
            started = True
    if started:  # an unclosed quote runs to the end: the user may still be typing
        out.append(("".join(buf), len(buf) if plain is None else plain))
    return [(term, plain) for term, plain in out if term]


def _term(token: str, plain: int) -> tuple[_Term, str | None]:
    """One term, and the field it names (None for text and regex terms)."""
    m = _FIELD.match(token)
    if m is None or m.end() > plain:
        if token.startswith("!") and plain > 0:
            return _regex(token[1:]), None
        return _text(token), None
    negate, field, value = bool(m[1]), m[2].lower(), token[m.end() :]
    if field not in FIELDS:
        if not value:
            return _text(token), None  # "sshd:", "nginx:": a process title
        raise FilterError(
            f'unknown field "{field}:" (fields: {", ".join(FIELDS)}; '
            f'to search for the text, quote it: "{token}")'
        )
    if not value:
        raise FilterError(f"{field}: needs a value, e.g. {_EXAMPLES[field]}")
    if field == "not":
        term, named = _term(value, max(0, plain - m.end()))
        return (term if negate else term.negated()), named
    parsers: dict[str, Callable[[str], _Term]] = {
        "pid": _pid,
        "user": _user,
        "service": _service,
        "cgroup": _cgroup,
        "proto": _proto,
        "port": _port,
        "host": _host,
    }
    alternatives = [parsers[field](v) for v in value.split(",") if v]
    if not alternatives:
        raise FilterError(f"{field}: needs a value, e.g. {_EXAMPLES[field]}")
    term = _either(alternatives)
    return (term.negated() if negate else term), field


_EXAMPLES = {
    "pid": "pid:1234",
    "user": "user:alice",
    "service": "service:nginx",
    "cgroup": "cgroup:system.slice",
    "proto": "proto:udp",
    "port": "port:443",
    "host": "host:10.0.0.5",
    "not": "not:port:22",
}


def parse(text: str) -> Filter:
    """Compile a filter expression; a FilterError says what is wrong with which term."""
    terms: list[_Term] = []
    fields: set[str] = set()
    for token, plain in _tokens(text):
        term, field = _term(token, plain)
        terms.append(term)
        if field is not None:
            fields.add(field)
    return Filter(text, terms, frozenset(fields))


def _all_of(tests: list[ConnTest]) -> ConnTest | None:
    """One test that all of `tests` hold (None: there are none)."""
    if len(tests) <= 1:
        return tests[0] if tests else None
    return lambda c: all(test(c) for test in tests)


class Filter:
    """A compiled expression: `matches_process`, `matches`, `matches_host`."""

    def __init__(self, text: str, terms: list[_Term], fields: frozenset[str]) -> None:
        self.text = text
        self.fields = fields  # the field names it uses
        self.active = bool(terms)
        self._terms = tuple(terms)
        # Cheap attribute checks first, then the text, then the connections.
        self._proc = tuple((t.proc, t.negate) for t in terms if t.proc is not None)
        self._text = tuple((t.text, t.negate) for t in terms if t.text is not None)
        # Every term about connections that must hold must hold for one connection;
        # one that is turned around must hold for none.
        self._conn_one = _all_of([t.conn for t in terms if t.conn is not None and not t.negate])
        self._conn_none = tuple(t.conn for t in terms if t.conn is not None and t.negate)

    @property
    def needs_connections(self) -> tuple[str, ...]:
        """The fields it uses that only a per-connection backend can match."""
        return tuple(f for f in CONNECTION_FIELDS if f in self.fields)

    def matches_process(self, p: ProcessLike) -> bool:
        """Whether process `p` (a `ProcessView`) passes every term."""
        return self.matches(p, p.connections)

    def matches(self, p: ProcessFacts, connections: Iterable[ConnLike]) -> bool:
        """Whether process `p`, whose connections are `connections`, passes every term."""
        for test, negate in self._proc:
            if test(p) == negate:
                return False
        if self._text:
            hay = haystack(p)
            for text_test, negate in self._text:
                if text_test(hay) == negate:
                    return False
        if self._conn_one is None and not self._conn_none:
            return True
        conns = connections if isinstance(connections, Sequence) else list(connections)
        if self._conn_one is not None and not any(map(self._conn_one, conns)):
            return False
        return not any(any(map(test, conns)) for test in self._conn_none)

    def matches_host(
        self, h: HostLike, processes: Mapping[int, ProcessFacts] | None = None
    ) -> bool:
        """Whether remote host `h` passes every term. Text matches its address, name and
        the names of the processes talking to it; pid: one of those processes; user:,
        service:, cgroup: one of them in `processes` (by PID; without it, none)."""
        return all(t.host(h, processes) != t.negate for t in self._terms)

    def matches_label(self, label: str) -> bool:
        """Whether a row that is no process (the unattributed bytes), known only by its
        label, passes: text terms search the label; a field holds for it only turned around."""
        for t in self._terms:
            held = t.text(label) if t.text is not None else False
            if held == t.negate:
                return False
        return True


def connections_missing(f: Filter, backend: str, with_connections: Sequence[str]) -> str:
    """Why `f`'s connection terms match nothing under `backend`, which has no
    per-connection view (`with_connections`: the backends that have one)."""
    fields = " ".join(f"{name}:" for name in f.needs_connections)
    need = "needs" if len(f.needs_connections) == 1 else "need"
    return (
        f"{fields} {need} a backend with connections ({', '.join(with_connections)}), not {backend}"
    )
