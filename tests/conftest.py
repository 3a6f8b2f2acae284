"""Shared fixtures: the real-traffic network (see tests/netenv.py). The session runs
in a mount namespace of its own whose name service is /etc/hosts alone, so nettop-ui's
reverse lookups never reach this machine's DNS servers (tests/dnsenv.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dnsenv import isolate_session
from tests.netenv import Network, network_env


def pytest_configure(config: pytest.Config) -> None:
    isolate_session()  # first, before any test starts a thread or a process


@pytest.fixture(scope="session")
def net() -> Iterator[Network]:
    with network_env() as network:
        yield network
