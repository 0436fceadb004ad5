"""Resume: the results file is the journal; a second run does only what is left."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from batcher.demo import png_bytes
from batcher.journal import ResumePolicy, Settled, load_journal
from batcher.results import rfc3339_utc
from tests.helpers import latest_by_key, metadata_csv, read_results, run_manifest, serving

pytestmark = pytest.mark.anyio


def append_lines(path: Path, *records: dict[str, Any]) -> None:
    with path.open("ab") as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")


def ok_line(key: str, row: int, *, expires_in_s: float) -> dict[str, Any]:
    return {
        "key": key,
        "row": row,
        "path": None,
        "account": None,
        "status": "ok",
        "media_id": "1",
        "expires_at": rfc3339_utc(time.time() + expires_in_s),
    }


def failed_line(key: str, row: int, *, retryable: bool) -> dict[str, Any]:
    error = {"type": "x", "title": "x", "detail": "x", "retryable": retryable}
    return {
        "key": key,
        "row": row,
        "path": None,
        "account": None,
        "status": "failed",
        "error": error,
    }


async def test_a_second_run_skips_every_settled_row(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 20)
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        first = await run_manifest(server, manifest, results)
        second = await run_manifest(server, manifest, results)
        requests = server.stats().requests
    assert (first.ok, second.ok, second.rows) == (20, 0, 0)
    assert second.skipped == {Settled.OK: 20}
    assert second.exit_code == 0
    assert requests == 20
    assert len(read_results(results)) == 20


async def test_only_the_rows_without_a_line_run(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        await run_manifest(server, metadata_csv(tmp_path / "half.csv", 10), results)
        second = await run_manifest(server, metadata_csv(tmp_path / "all.csv", 25), results)
        assert server.stats().requests == 25
    assert (second.ok, second.skipped) == (15, {Settled.OK: 10})
    assert len({r["key"] for r in read_results(results)}) == 25


@pytest.mark.parametrize(
    ("line", "policy", "runs"),
    [
        pytest.param(ok_line("k0", 1, expires_in_s=86_000), ResumePolicy(), False, id="ok-valid"),
        pytest.param(ok_line("k0", 1, expires_in_s=600), ResumePolicy(), True, id="ok-expiring"),
        pytest.param(
            ok_line("k0", 1, expires_in_s=600),
            ResumePolicy(min_validity_s=60),
            False,
            id="ok-valid-for-a-short-margin",
        ),
        pytest.param(failed_line("k0", 1, retryable=True), ResumePolicy(), True, id="retryable"),
        pytest.param(failed_line("k0", 1, retryable=False), ResumePolicy(), False, id="permanent"),
        pytest.param(
            failed_line("k0", 1, retryable=False),
            ResumePolicy(retry_failed=True),
            True,
            id="permanent-with-retry-failed",
        ),
    ],
)
async def test_what_an_earlier_line_means(
    tmp_path: Path, line: dict[str, Any], policy: ResumePolicy, runs: bool
) -> None:
    results = tmp_path / "r.jsonl"
    append_lines(results, line)
    async with serving() as server:
        summary = await run_manifest(
            server, metadata_csv(tmp_path / "m.csv", 1), results, resume=policy
        )
        assert server.stats().requests == (1 if runs else 0)
    assert summary.ok == (1 if runs else 0)


async def test_the_latest_line_per_key_wins(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    append_lines(
        results, ok_line("k0", 1, expires_in_s=86_000), failed_line("k0", 1, retryable=True)
    )
    async with serving() as server:
        summary = await run_manifest(server, metadata_csv(tmp_path / "m.csv", 1), results)
    assert summary.ok == 1


async def test_an_invalid_row_is_skipped_until_it_is_fixed(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\nmedia/late.png\n")
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        first = await run_manifest(server, manifest, results)
        again = await run_manifest(server, manifest, results)
        (tmp_path / "media").mkdir()
        (tmp_path / "media" / "late.png").write_bytes(png_bytes(300))
        fixed = await run_manifest(server, manifest, results)
    assert (first.invalid, again.invalid, again.skipped) == (1, 0, {Settled.INVALID: 1})
    assert fixed.ok == 1
    assert [r["status"] for r in read_results(results)] == ["invalid", "ok"]


async def test_a_repeated_key_does_not_speak_for_the_first_row(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("key,media_type,total_bytes\na,image/png,10\na,image/png,20\n")
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        first = await run_manifest(server, manifest, results)
        second = await run_manifest(server, manifest, results)
        assert server.stats().requests == 1
    assert (first.ok, first.invalid) == (1, 1)
    assert second.rows == 0
    assert second.skipped == {Settled.OK: 1, Settled.INVALID: 1}


async def test_a_torn_last_line_is_cut_off_and_its_row_runs_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 5)
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        await run_manifest(server, manifest, results)
        lines = results.read_bytes().splitlines(keepends=True)
        results.write_bytes(b"".join(lines[:4]) + lines[4][:25])  # a crash mid-write
        with caplog.at_level(logging.WARNING):
            summary = await run_manifest(server, manifest, results)
    assert "cut off" in caplog.text
    assert (summary.ok, summary.skipped) == (1, {Settled.OK: 4})
    records = read_results(results)  # every line parses: the file stayed appendable
    assert len(records) == 5
    assert {r["status"] for r in latest_by_key(records).values()} == {"ok"}


def test_garbage_lines_in_the_middle_are_ignored(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    append_lines(results, ok_line("a", 1, expires_in_s=86_000))
    with results.open("ab") as handle:
        handle.write(b'not json at all\n{"key": 1}\n')
    append_lines(results, ok_line("b", 2, expires_in_s=86_000))
    journal = load_journal(results, policy=ResumePolicy(), now=time.time())
    assert journal.settled == {"a": Settled.OK, "b": Settled.OK}
    assert journal.unreadable_lines == 2


def test_loading_an_absent_file_gives_an_empty_journal(tmp_path: Path) -> None:
    journal = load_journal(tmp_path / "none.jsonl", policy=ResumePolicy(), now=time.time())
    assert journal.settled == {}
