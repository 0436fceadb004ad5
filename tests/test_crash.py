"""kill -9 at random moments, again and again: resuming loses no row and repeats almost none."""

from __future__ import annotations

import itertools
import random
import signal
from collections import Counter
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from tests.helpers import TOKEN, batcher_command, cli_env, metadata_csv, read_results, serving

pytestmark = pytest.mark.anyio

ROWS = 5000
CONCURRENCY = 16
KILLS = 10


def count_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


async def wait_for_growth(results: Path, before: int, process: Process) -> None:
    while count_lines(results) <= before and process.returncode is None:
        await anyio.sleep(0.01)


@pytest.mark.slow
async def test_repeated_kill_9_then_resume_loses_nothing(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", ROWS)
    results = tmp_path / "r.jsonl"
    chance = random.Random(20261201)
    command = batcher_command(
        "run", str(manifest), "-o", str(results), "--no-progress",
        "--concurrency", str(CONCURRENCY), "--fsync-every", "50",
    )  # fmt: skip
    kills = 0
    lines_after_each_kill: list[int] = []
    async with serving(latency_s=0.01, latency_jitter_s=0.01) as server:
        env = cli_env(X_ACCESS_TOKEN=TOKEN, X_API_BASE_URL=server.url)
        with anyio.fail_after(240):
            while kills < KILLS:
                process = await anyio.open_process(command, env=env)
                before = count_lines(results)
                # A random moment of the run itself: once it has written something (start-up
                # time varies with the machine's load), then a random while longer.
                await wait_for_growth(results, before, process)
                await anyio.sleep(chance.uniform(0.0, 0.4))
                if process.returncode is not None:
                    break  # it finished first: nothing left to kill
                process.send_signal(signal.SIGKILL)
                await process.wait()
                kills += 1
                lines_after_each_kill.append(count_lines(results))
            final = await anyio.run_process(command, env=env, check=False)
            assert final.returncode == 0, final.stderr.decode()
        initialized = server.stats().initialized
        issued = set(server.issued)

    assert kills == KILLS
    # Every kill landed mid-run: after some progress and before the end.
    progress = [b - a for a, b in itertools.pairwise([0, *lines_after_each_kill])]
    assert all(step > 0 for step in progress)
    assert lines_after_each_kill[-1] < ROWS
    records = read_results(results)
    latest = {record["key"]: record for record in records}
    assert len(latest) == ROWS, "a row is missing"
    assert {record["status"] for record in latest.values()} == {"ok"}
    ok_per_key_and_run = Counter((r["key"], r["run"]) for r in records if r["status"] == "ok")
    assert max(ok_per_key_and_run.values()) == 1
    assert {r["media_id"] for r in records if r["status"] == "ok"} <= issued
    assert ROWS <= initialized <= ROWS + kills * CONCURRENCY
