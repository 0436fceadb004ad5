"""Shared fixtures: the anyio backend and a running simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from batcher.simulator import SimulatorConfig, SimulatorServer

SIMULATOR_TOKEN = "test-token"


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp and aiolimiter are asyncio-only."""
    return "asyncio"


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """A simulator on ``127.0.0.1:0`` with the real limits, accepting the bearer ``test-token``."""
    config = SimulatorConfig(tokens=frozenset({SIMULATOR_TOKEN}))
    async with SimulatorServer(config) as server:
        yield server
