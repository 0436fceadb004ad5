"""Small builders shared by the end-to-end tests (no fixtures: plain functions)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from batcher.api import ClientConfig
from batcher.auth import AccountSet, bearer_account
from batcher.runner import Job, RunConfig, RunSummary
from batcher.simulator import SimulatorConfig, SimulatorServer

TOKEN = "test-token-abc"
FAST_RETRIES: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}


@asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[SimulatorServer]:
    """A simulator on 127.0.0.1:0 accepting TOKEN, with ``overrides`` on its config."""
    settings: dict[str, Any] = {"window_limit": 1_000_000, **overrides}
    config = SimulatorConfig(tokens=frozenset({TOKEN}), **settings)
    async with SimulatorServer(config) as server:
        yield server


def make_job(
    server: SimulatorServer,
    manifest: str | Path,
    results: Path,
    *,
    token: str = TOKEN,
    timeout_s: float = 5.0,
    stdin: io.BytesIO | None = None,
    **config: Any,
) -> Job:
    """A Job against ``server`` with quick retries; ``config`` overrides RunConfig fields."""
    settings = {"concurrency": 8, **FAST_RETRIES, **config}
    return Job(
        manifest=str(manifest),
        results_path=results,
        accounts=AccountSet(default=bearer_account("default", token)),
        client_config=ClientConfig(
            base_url=server.url, max_in_flight=settings["concurrency"], timeout_s=timeout_s
        ),
        config=RunConfig(**settings),
        stdin=stdin,
    )


async def run_manifest(
    server: SimulatorServer, manifest: str | Path, results: Path, **options: Any
) -> RunSummary:
    """Run ``manifest`` into ``results`` against ``server``."""
    return await make_job(server, manifest, results, **options).run()


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every line of a results file, parsed (a torn line fails the test)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def latest_by_key(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest line of every key."""
    return {record["key"]: record for record in records}


def metadata_csv(path: Path, rows: int, *, category: str = "tweet_image", start: int = 0) -> Path:
    """A CSV of ``rows`` metadata-only rows (no files), keys ``k<start>``…"""
    lines = ["key,media_type,total_bytes,media_category,source_id"]
    lines += [f"k{n},image/jpeg,{1000 + n},{category},src-{n}" for n in range(start, start + rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def batcher_command(*args: str) -> list[str]:
    """argv for running the CLI in a subprocess with this interpreter."""
    return [sys.executable, "-m", "batcher", *args]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: no stray X_/BATCHER_ variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("X_", "BATCHER_"))}
    env.update(extra)
    return env


class FakeClock:
    """Epoch seconds that move only when a test says so (set ``now`` or ``advance``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.now += seconds
