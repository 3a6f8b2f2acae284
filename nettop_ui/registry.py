"""Finds backends through the `nettop_ui.backends` entry-point group and picks one.

Third-party packages add a backend by declaring an entry point in that group that
names a `nettop_ui.core.Backend` subclass.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

from nettop_ui.core import Backend, Probe

ENTRY_POINT_GROUP = "nettop_ui.backends"
log = logging.getLogger(__name__)

# Used only when the package metadata is missing (running from a bare source tree).
_BUILTIN = {
    "ebpf": "backends.ebpf:EbpfBackend",
    "nethogs": "backends.nethogs:NethogsBackend",
    "sockdiag": "backends.sockdiag:SockdiagBackend",
    "nettop": "backends.nettop:NettopBackend",
    "psutil": "backends.psutil_backend:PsutilBackend",
}


@dataclass(frozen=True)
class BackendStatus:
    """A backend class with its probe result here."""

    cls: type[Backend]
    probe: Probe
    platform_ok: bool

    @property
    def usable(self) -> bool:
        return self.probe.available


def _load(target: str) -> type[Backend]:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{target} is not a nettop_ui Backend")
    return cls


def load_backends() -> dict[str, type[Backend]]:
    """All backend classes by name, entry points first, builtins filling gaps."""
    found: dict[str, type[Backend]] = {}
    targets = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, target in _BUILTIN.items():
        targets.setdefault(name, target)
    for name, target in targets.items():
        try:
            found[name] = _load(target)
        except Exception as exc:  # a broken third-party plugin must not break the tool
            log.warning("backend %s (%s) failed to load: %s", name, target, exc)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].accuracy_rank, kv[0])))


def with_connections() -> list[str]:
    """The backends with a per-connection view (what host:, port:, proto: filters need)."""
    return [name for name, cls in load_backends().items() if cls.coverage.per_connection]


def probe_all(platform: str = sys.platform) -> list[BackendStatus]:
    """Every backend with whether it can run here, most accurate first."""
    statuses = []
    for cls in load_backends().values():
        if not cls.supports_platform(platform):
            probe = Probe(False, f"runs on {', '.join(cls.platforms)} only", "")
            statuses.append(BackendStatus(cls, probe, platform_ok=False))
            continue
        try:
            probe = cls.probe()
        except Exception as exc:
            probe = Probe(False, f"probe failed: {exc}", "")
        statuses.append(BackendStatus(cls, probe, platform_ok=True))
    return statuses


def choose(name: str, platform: str = sys.platform) -> tuple[type[Backend], str]:
    """The backend to use and a sentence saying why.

    `auto` takes the most accurate backend that can run on this platform. A named
    backend is used if it can run, whatever the platform (so `--backend nettop`
    can replay captures on Linux); otherwise BackendError-style ValueError.
    """
    if name == "auto":
        skipped: list[str] = []
        for status in probe_all(platform):
            if status.platform_ok and status.usable:
                why = "most accurate backend that can run here"
                if skipped:
                    why += f" (skipped: {'; '.join(skipped)})"
                return status.cls, why
            if status.platform_ok:
                skipped.append(f"{status.cls.name}: {status.probe.reason}")
        raise ValueError("no backend can run here: " + "; ".join(skipped))
    backends = load_backends()
    if name not in backends:
        raise ValueError(f"unknown backend {name!r}; choose from: auto, {', '.join(backends)}")
    cls = backends[name]
    probe = cls.probe()
    if not probe.available:
        fix = f" (fix: {probe.fix})" if probe.fix else ""
        raise ValueError(f"backend {name} cannot run: {probe.reason}{fix}")
    return cls, "chosen with --backend"


def fallbacks_after(cls: type[Backend], platform: str = sys.platform) -> list[type[Backend]]:
    """The backends `auto` would try after `cls`, in order, that can run here now."""
    return [
        st.cls
        for st in probe_all(platform)
        if st.platform_ok and st.usable and st.cls.accuracy_rank > cls.accuracy_rank
    ]


def fallbacks_for(name: str, cls: type[Backend]) -> list[type[Backend]]:
    """What to switch to if `cls` dies: with `auto`, the backends it would try next;
    none for a backend the user named."""
    return fallbacks_after(cls) if name == "auto" else []
