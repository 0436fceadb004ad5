"""Faults on the wire and their breakers: soak, failure rate, refused credentials."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest

from batcher.runner import Job, RunSummary
from batcher.simulator import FaultRates
from tests.helpers import latest_by_key, make_job, metadata_csv, read_results, run_manifest, serving

pytestmark = pytest.mark.anyio


async def run_into(job: Job, summaries: list[RunSummary]) -> None:
    summaries.append(await job.run())


@pytest.mark.slow
async def test_fault_soak_every_row_ends_ok_with_ids_the_server_issued(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 5000)
    results = tmp_path / "r.jsonl"
    rates = FaultRates(fail_5xx_rate=0.10, reset_rate=0.02, hang_rate=0.01, garbage_rate=0.01)
    async with serving(seed=7, hang_s=30, faults=rates) as server:
        with anyio.fail_after(120):
            summary = await run_manifest(
                server, manifest, results, concurrency=64, timeout_s=0.5, max_attempts=10
            )
        issued = set(server.issued)
        faults = server.stats().faults
    assert summary.ok == 5000
    assert sum(faults.values()) > 500  # the soak really was faulty
    records = read_results(results)
    assert len(records) == 5000
    media_ids = [r["media_id"] for r in records]
    assert len(set(media_ids)) == 5000, "an id was given to two rows"
    assert set(media_ids) <= issued
    assert max(r["attempts"] for r in records) > 1


async def test_failure_rate_breaker_stops_the_run(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 2000)
    results = tmp_path / "r.jsonl"
    async with serving(latency_s=0.005) as server:
        job = make_job(
            server,
            manifest,
            results,
            max_attempts=1,
            max_failure_rate=0.5,
            failure_rate_min_rows=50,
        )
        summaries: list[RunSummary] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_into, job, summaries)
            while job.tally.ok < 100:
                await anyio.sleep(0.01)
            server.set_faults(FaultRates(fail_5xx_rate=1.0))  # the server starts failing
    (summary,) = summaries
    assert summary.stop_reason is not None
    assert "failure rate" in summary.stop_reason
    assert summary.exit_code == 3
    assert summary.rows < 2000


async def test_refused_credentials_stop_their_account_and_leave_rows_resumable(
    tmp_path: Path,
) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 300)
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        refused = await run_manifest(
            server, manifest, results, token="revoked", concurrency=4, auth_failure_limit=5
        )
        records = read_results(results)
        assert refused.stopped_accounts == ("default",)
        assert refused.exit_code == 4
        assert 5 <= refused.failed <= 5 + 4  # the breaker, plus what was in flight
        assert refused.failed == len(records)
        assert all(r["error"]["retryable"] for r in records)
        fixed = await run_manifest(server, manifest, results)
    assert fixed.ok == 300
    assert fixed.skipped == {}
    latest = latest_by_key(read_results(results))
    assert Counter(r["status"] for r in latest.values()) == {"ok": 300}


async def test_a_server_recovering_mid_run_loses_nothing(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 600)
    results = tmp_path / "r.jsonl"
    async with serving(latency_s=0.002) as server:
        job = make_job(server, manifest, results, max_attempts=30, backoff_cap_s=0.2)
        summaries: list[RunSummary] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_into, job, summaries)
            while job.tally.ok < 100:
                await anyio.sleep(0.01)
            server.set_faults(FaultRates(fail_5xx_rate=1.0))
            await anyio.sleep(0.5)
            server.set_faults()
    (summary,) = summaries
    assert (summary.ok, summary.failed) == (600, 0)
    assert len(read_results(results)) == 600
