"""A fixture for tests that need only a broker: a real Tansu with the project's topics, one partition each."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from epochscope.broker import TansuBroker, ensure_topics


@pytest.fixture(name="broker")
async def broker_fixture(tmp_path: Path) -> AsyncIterator[str]:
    """The broker's bootstrap servers."""
    tansu = TansuBroker(tmp_path / "broker.log")
    tansu.start()
    try:
        await ensure_topics(tansu.bootstrap_servers, partitions=1)
        yield tansu.bootstrap_servers
    finally:
        tansu.stop()
