"""kill -9 at random moments, again and again: resuming loses no row and repeats almost none."""

from __future__ import annotations

import itertools
import random
import signal
from collections import Counter
from pathlib import Path

import anyio
import pytest

from tests.helpers import TOKEN, batcher_command, cli_env, metadata_csv, read_results, serving

pytestmark = pytest.mark.anyio

ROWS = 5000
CONCURRENCY = 16
KILLS = 10


def count_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


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
            while True:
                process = await anyio.open_process(command, env=env)
                finished = False
                if kills < KILLS:
                    with anyio.move_on_after(chance.uniform(0.4, 1.2)):
                        await process.wait()
                        finished = True
                    if not finished:
                        process.send_signal(signal.SIGKILL)
                        await process.wait()
                        kills += 1
                        lines_after_each_kill.append(count_lines(results))
                        continue
                else:
                    await process.wait()
                    finished = True
                assert process.returncode in (0, None) or process.returncode == 0
                break
        initialized = server.stats().initialized
        issued = set(server.issued)

    assert kills == KILLS
    # The kills landed mid-run: most of them after some progress and before the end.
    progress = [b - a for a, b in itertools.pairwise([0, *lines_after_each_kill])]
    assert sum(step > 0 for step in progress) >= KILLS // 2
    assert lines_after_each_kill[-1] < ROWS
    records = read_results(results)
    latest = {record["key"]: record for record in records}
    assert len(latest) == ROWS, "a row is missing"
    assert {record["status"] for record in latest.values()} == {"ok"}
    ok_per_key_and_run = Counter((r["key"], r["run"]) for r in records if r["status"] == "ok")
    assert max(ok_per_key_and_run.values()) == 1
    assert {r["media_id"] for r in records if r["status"] == "ok"} <= issued
    assert ROWS <= initialized <= ROWS + kills * CONCURRENCY
