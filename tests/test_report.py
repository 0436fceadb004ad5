"""``batcher report``: latest state per key, and a manifest of the rows still to do."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from batcher.journal import ResumePolicy
from batcher.report import build_report, format_report
from batcher.simulator import Fault
from tests.helpers import read_results, run_manifest, serving

pytestmark = pytest.mark.anyio


def mixed_manifest(path: Path) -> Path:
    path.write_text(
        "key,media_type,total_bytes,media_category,shared,additional_owners,source_id,batch\n"
        "good1,image/png,100,,true,12;34,s1,b1\n"
        "good2,image/png,200,,,,s2,b1\n"
        "bad-size,image/png,lots,,,,s3,b2\n"
        "flaky,image/png,300,,false,,s4,b2\n"
        "amp,video/mp4,400,amplify_video,,,s5,b3\n"
    )
    return path


async def make_results(tmp_path: Path) -> tuple[Path, Path]:
    manifest = mixed_manifest(tmp_path / "m.csv")
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        server.script([Fault.NONE, Fault.NONE, Fault.STATUS_503])  # the third request fails
        await run_manifest(server, manifest, results, concurrency=1, max_attempts=1)
    return manifest, results


async def test_report_counts_the_latest_line_per_key(tmp_path: Path) -> None:
    _, results = await make_results(tmp_path)
    report = build_report(results, expiring_within_s=48 * 3600, policy=ResumePolicy())
    assert report.rows == 5
    assert dict(report.by_status) == {"ok": 3, "failed": 1, "invalid": 1}
    assert report.by_error[("failed", "server-error")] == 1
    assert report.by_error[("invalid", "bad_field")] == 1
    assert len(report.expiring) == 2  # post media lives a day; amplify video fifteen days
    assert report.needs_work == 2
    text = format_report(report, results, expiring_within_s=48 * 3600)
    assert "rows that still need work: 2" in text
    assert "server-error" in text


@pytest.mark.parametrize(
    "suffix", [pytest.param(".jsonl", id="jsonl"), pytest.param(".csv", id="csv")]
)
async def test_failed_manifest_keeps_the_rows_own_columns_and_runs(
    tmp_path: Path, suffix: str
) -> None:
    _, results = await make_results(tmp_path)
    todo = tmp_path / f"todo{suffix}"
    build_report(results, expiring_within_s=0, policy=ResumePolicy(), failed_manifest=todo)
    if suffix == ".csv":
        with todo.open(newline="") as handle:
            rows = {row["key"]: row for row in csv.DictReader(handle)}
        assert rows["bad-size"]["total_bytes"] == "lots"
        assert rows["flaky"]["shared"] == "false"
        assert (rows["flaky"]["source_id"], rows["flaky"]["batch"]) == ("s4", "b2")
    todo_results = tmp_path / "todo-results.jsonl"
    async with serving() as server:
        summary = await run_manifest(server, todo, todo_results)
    by_key = {r["key"]: r for r in read_results(todo_results)}
    assert set(by_key) == {"bad-size", "flaky"}
    assert by_key["flaky"]["status"] == "ok"
    assert by_key["flaky"]["shared"] is False
    assert by_key["flaky"]["meta"] == {"source_id": "s4", "batch": "b2"}
    assert by_key["bad-size"]["status"] == "invalid"
    assert by_key["bad-size"]["meta"] == {"source_id": "s3", "batch": "b2"}
    assert summary.ok == 1


async def test_rows_expiring_soon_need_work(tmp_path: Path) -> None:
    _, results = await make_results(tmp_path)
    later = time.time() + 86_400 - 60  # post media has a minute left
    report = build_report(
        results, expiring_within_s=3600, policy=ResumePolicy(min_validity_s=3600), now=later
    )
    assert report.needs_work == 4  # two expiring post-media rows, the failed and the invalid
