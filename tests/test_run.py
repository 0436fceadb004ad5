"""End to end through the library: manifest in, results out, against the simulator on loopback."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from batcher.demo import gif_bytes, jpeg_bytes, mp4_bytes, png_bytes
from batcher.simulator import Fault
from tests.helpers import latest_by_key, metadata_csv, read_results, run_manifest, serving

pytestmark = pytest.mark.anyio


def make_media(folder: Path, count: int) -> list[Path]:
    """``count`` small files cycling through PNG, JPEG, GIF and MP4."""
    makers = [(".png", png_bytes), (".jpg", jpeg_bytes), (".gif", gif_bytes), (".mp4", mp4_bytes)]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        suffix, make = makers[number % len(makers)]
        path = folder / f"m{number:05d}{suffix}"
        path.write_bytes(make(1000 + number))
        paths.append(path)
    return paths


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    make_media(folder, 8)
    return folder


# --- every manifest format ---------------------------------------------------------------


def csv_manifest(tmp_path: Path, media: Path) -> Path:
    manifest = tmp_path / "m.csv"
    rows = ["path,key,source_id"] + [
        f"media/{p.name},{p.stem},legacy-{i}" for i, p in enumerate(sorted(media.iterdir()))
    ]
    manifest.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    return manifest


def jsonl_manifest(tmp_path: Path, media: Path) -> Path:
    manifest = tmp_path / "m.jsonl"
    lines = [
        orjson.dumps({"path": f"media/{p.name}", "key": p.stem, "source_id": f"legacy-{i}"})
        for i, p in enumerate(sorted(media.iterdir()))
    ]
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest


def paths_manifest(tmp_path: Path, media: Path) -> Path:
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(f"media/{p.name}" for p in sorted(media.iterdir())) + "\n")
    return manifest


@pytest.mark.parametrize(
    "make_manifest",
    [
        pytest.param(csv_manifest, id="csv-bom-crlf"),
        pytest.param(jsonl_manifest, id="jsonl"),
        pytest.param(paths_manifest, id="paths"),
        pytest.param(lambda tmp, media: media, id="directory"),
    ],
)
async def test_every_file_format_initializes_every_row(
    tmp_path: Path, media_dir: Path, make_manifest: Any
) -> None:
    manifest = make_manifest(tmp_path, media_dir)
    async with serving() as server:
        summary = await run_manifest(server, manifest, tmp_path / "out.jsonl")
    records = read_results(tmp_path / "out.jsonl")
    assert (summary.ok, summary.failed, summary.invalid) == (8, 0, 0)
    assert {r["status"] for r in records} == {"ok"}
    assert {r["media_id"] for r in records} == set(server.issued)
    assert sorted(r["row"] for r in records) == list(range(1, 9))


async def test_stdin_manifest(tmp_path: Path, media_dir: Path) -> None:
    lines = "\n".join(str(p) for p in sorted(media_dir.iterdir())) + "\n"
    async with serving() as server:
        summary = await run_manifest(
            server, "-", tmp_path / "out.jsonl", stdin=io.BytesIO(lines.encode())
        )
    assert summary.ok == 8


async def test_result_line_carries_the_contract_fields(tmp_path: Path, media_dir: Path) -> None:
    manifest = csv_manifest(tmp_path, media_dir)
    async with serving() as server:
        await run_manifest(server, manifest, tmp_path / "out.jsonl")
    record = latest_by_key(read_results(tmp_path / "out.jsonl"))["m00000"]
    assert record["status"] == "ok"
    assert record["path"] == "media/m00000.png"
    assert record["account"] is None
    assert record["media_type"] == "image/png"
    assert record["media_category"] == "tweet_image"
    assert record["total_bytes"] == 1000
    assert record["attempts"] == 1
    assert record["http_status"] == 200
    assert record["media_key"] == f"3_{record['media_id']}"
    assert record["expires_after_secs"] == 86400
    assert record["expires_at"].endswith("Z")
    assert record["meta"] == {"source_id": "legacy-0"}


async def test_amplify_video_expiry_is_fifteen_days(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    row = {
        "key": "v",
        "media_type": "video/mp4",
        "total_bytes": 5000,
        "media_category": "amplify_video",
    }
    manifest.write_bytes(orjson.dumps(row) + b"\n")
    async with serving() as server:
        await run_manifest(server, manifest, tmp_path / "out.jsonl")
    (record,) = read_results(tmp_path / "out.jsonl")
    assert record["expires_after_secs"] == 1295999


# --- invalid rows: one record each, no request, the run goes on ----------------------------


async def test_invalid_rows_are_recorded_and_never_sent(tmp_path: Path, media_dir: Path) -> None:
    (media_dir / "liar.png").write_bytes(jpeg_bytes(500))
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,key,media_type,total_bytes,media_category,account\n"
        "media/m00000.png,good,,,,\n"
        "media/nope.png,missing,,,,\n"
        "media/liar.png,mismatch,image/png,,,\n"
        ",no-size,image/png,,,\n"
        ",bad-size,image/png,12x,,\n"
        ",too-big,image/png,9000000,tweet_image,\n"
        "media/m00001.jpg,good,,,,\n"
        "media/m00002.gif,stranger,,,,mallory\n"
    )
    async with serving() as server:
        summary = await run_manifest(server, manifest, tmp_path / "out.jsonl")
        stats = server.stats()
    records = read_results(tmp_path / "out.jsonl")
    assert len(records) == 8
    invalid = {r["row"]: r for r in records if r["status"] == "invalid"}
    assert sorted(invalid) == [2, 3, 4, 5, 6, 7, 8]
    assert (summary.ok, summary.invalid) == (1, 7)
    assert stats.requests == 1
    assert invalid[7]["error"]["type"] == "duplicate_key"
    assert invalid[8]["error"]["type"] == "unknown_account"
    for record in invalid.values():
        assert record["error"]["detail"].startswith(f"row {record['row']}")
        assert record["error"]["retryable"] is False
        assert record["attempts"] == 0


# --- answers from the server ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "attempts"),
    [
        pytest.param([Fault.STATUS_429], 2, id="429-then-ok"),
        pytest.param([Fault.STATUS_503], 2, id="503-then-ok"),
        pytest.param([Fault.STATUS_502, Fault.STATUS_500], 3, id="502-500-then-ok"),
        pytest.param([Fault.GARBAGE], 2, id="non-json-200-then-ok"),
        pytest.param([Fault.TRUNCATED], 2, id="truncated-then-ok"),
        pytest.param([Fault.NO_ID], 2, id="no-id-then-ok"),
        pytest.param([Fault.RESET], 2, id="reset-then-ok"),
        pytest.param([Fault.HANG], 2, id="hang-hits-timeout-then-ok"),
    ],
)
async def test_retryable_answers_are_retried(
    tmp_path: Path, faults: list[Fault], attempts: int
) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 1)
    # A short window: a 429 rightly holds the row until the window it names has reset.
    async with serving(window_secs=1) as server:
        server.script(faults)
        summary = await run_manifest(
            server, manifest, tmp_path / "out.jsonl", concurrency=1, timeout_s=0.5
        )
    (record,) = read_results(tmp_path / "out.jsonl")
    assert summary.ok == 1
    assert record["status"] == "ok"
    assert record["attempts"] == attempts
    assert record["media_id"] in server.issued


async def test_retries_stop_at_max_attempts_and_stay_retryable(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 1)
    async with serving() as server:
        server.script([Fault.STATUS_503] * 10)
        summary = await run_manifest(server, manifest, tmp_path / "out.jsonl", max_attempts=3)
        assert server.stats().requests == 3
    (record,) = read_results(tmp_path / "out.jsonl")
    assert summary.failed == 1
    assert record["status"] == "failed"
    assert record["attempts"] == 3
    assert record["http_status"] == 503
    assert record["error"]["retryable"] is True


async def test_refused_token_fails_once_and_stays_retryable_for_a_later_run(
    tmp_path: Path,
) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 3)
    async with serving() as server:
        summary = await run_manifest(server, manifest, tmp_path / "out.jsonl", token="wrong-token")
        assert server.stats().requests == 3
    records = read_results(tmp_path / "out.jsonl")
    assert summary.failed == 3
    for record in records:
        assert (record["http_status"], record["attempts"]) == (401, 1)
        assert record["error"]["type"] == "unauthorized"
        assert record["error"]["retryable"] is True  # fixing the credentials fixes the row
    assert "wrong-token" not in (tmp_path / "out.jsonl").read_text()


async def test_window_is_respected_without_429(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 30)
    async with serving(window_secs=1, window_limit=10) as server:
        summary = await run_manifest(server, manifest, tmp_path / "out.jsonl", concurrency=8)
        stats = server.stats()
    assert summary.ok == 30
    assert stats.rate_limited == 0
    assert summary.rate_limited == 0


async def test_ten_thousand_rows_match_the_simulator_one_to_one(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 10_000)
    async with serving(window_limit=100_000) as server:
        summary = await run_manifest(server, manifest, tmp_path / "out.jsonl", concurrency=64)
        issued = dict(server.issued)
        stats = server.stats()
    records = read_results(tmp_path / "out.jsonl")
    assert summary.ok == 10_000
    assert len(records) == 10_000
    assert len({r["key"] for r in records}) == 10_000
    media_ids = [r["media_id"] for r in records]
    assert len(set(media_ids)) == 10_000
    assert set(media_ids) == set(issued)
    assert stats.requests == 10_000
    for record in records:
        assert issued[record["media_id"]].body["total_bytes"] == record["total_bytes"]


async def test_ok_line_carries_the_optional_request_fields(tmp_path: Path) -> None:
    manifest = tmp_path / "owners.csv"
    manifest.write_text(
        "key,media_type,media_category,total_bytes,additional_owners,shared\n"
        "plain,image/png,tweet_image,10,,\n"
        "owned,image/png,tweet_image,11,12;34,true\n"
    )
    async with serving() as server:
        await run_manifest(server, manifest, tmp_path / "out.jsonl")
    records = latest_by_key(read_results(tmp_path / "out.jsonl"))
    assert records["owned"]["status"] == "ok"
    assert records["owned"]["additional_owners"] == ["12", "34"]
    assert records["owned"]["shared"] is True
    assert records["owned"]["total_bytes"] == 11
    assert records["plain"]["status"] == "ok"
    assert "additional_owners" not in records["plain"]
    assert "shared" not in records["plain"]
