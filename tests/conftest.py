"""Shared fixtures: the anyio backend and a running simulator."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

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


NOBODY_UID = 65534


@pytest.fixture
def unprivileged() -> Callable[[], AbstractContextManager[None]]:
    """A context in which file permissions apply: as root, the effective user is ``nobody``.

    Root reads anything, so the permission-denied paths would otherwise go untested where CI
    runs as root. Only the effective ids change (and back on exit); use it with
    :func:`open_dir`, which ``nobody`` can traverse, since pytest's ``tmp_path`` is private.
    """

    @contextmanager
    def as_nobody() -> Iterator[None]:
        if os.name != "posix":
            pytest.skip("POSIX permissions only")
        if os.geteuid() != 0:
            yield
            return
        os.setegid(NOBODY_UID)
        os.seteuid(NOBODY_UID)
        try:
            yield
        finally:
            os.seteuid(0)
            os.setegid(0)

    return as_nobody


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh folder every user may enter and read (so only the file's own mode matters)."""
    folder = Path(tempfile.mkdtemp(prefix="batcher-perm-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
