"""Shared fixtures: the real-traffic network (see tests/netenv.py). The session runs
in a mount namespace of its own whose name service is /etc/hosts alone, so nettop-ui's
reverse lookups never reach this machine's DNS servers (tests/dnsenv.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.dnsenv import isolate_session
from tests.netenv import Network, network_env


def pytest_configure(config: pytest.Config) -> None:
    isolate_session()  # first, before any test starts a thread or a process
    # The session's own compiled-eBPF cache (backends/bpfcache.py), not the machine's.
    os.environ.setdefault("NETTOP_UI_BPF_CACHE", tempfile.mkdtemp(prefix="nettop-ui-bpf-"))


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = os.environ.get("NETTOP_UI_BPF_CACHE", "")
    if os.path.basename(cache).startswith("nettop-ui-bpf-"):
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def net() -> Iterator[Network]:
    with network_env() as network:
        yield network
