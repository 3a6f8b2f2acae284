"""Shared fixtures: the real-traffic network (see tests/netenv.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.netenv import Network, network_env


@pytest.fixture(scope="session")
def net() -> Iterator[Network]:
    with network_env() as network:
        yield network
