"""Inputs the benchmarks generate (once, then reused): manifests, media files, results files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

import orjson

# Minimal heads the sniffer recognises, padded to a few hundred bytes.
HEADS: Final = (
    (".png", b"\x89PNG\r\n\x1a\n"),
    (".jpg", b"\xff\xd8\xff\xe0"),
    (".gif", b"GIF89a"),
    (".mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"),
)
PADDING: Final = b"\x00" * 200
FILES_PER_DIR: Final = 1000


def write_metadata_manifest(workdir: Path, rows: int) -> Path:
    """A CSV of ``rows`` rows that name no file (``key,media_type,total_bytes``)."""
    path = workdir / f"manifest-meta-{rows}.csv"
    if path.exists():
        return path
    partial = path.with_suffix(".part")
    with partial.open("wb") as handle:
        handle.write(b"key,media_type,media_category,total_bytes\n")
        for start in range(0, rows, 10_000):
            handle.write(
                b"".join(
                    b"row-%d,image/png,tweet_image,%d\n" % (n, 1000 + n)
                    for n in range(start, min(rows, start + 10_000))
                )
            )
    partial.rename(path)
    return path


def write_files_folder(workdir: Path, rows: int) -> Path:
    """A folder of ``rows`` small media files in sub-folders of 1,000."""
    path = workdir / f"files-{rows}"
    if (path / ".complete").exists():
        return path
    for n in range(rows):
        suffix, head = HEADS[n % len(HEADS)]
        folder = path / f"{n // FILES_PER_DIR:04d}"
        if n % FILES_PER_DIR == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{n:07d}{suffix}").write_bytes(head + PADDING)
    (path / ".complete").write_bytes(b"")
    return path


def write_results_file(workdir: Path, lines: int) -> Path:
    """A results file of ``lines`` ``ok`` lines, as ``batcher run`` writes them."""
    path = workdir / f"results-{lines}.jsonl"
    if path.exists():
        return path
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86_400))
    partial = path.with_suffix(".part")
    with partial.open("wb") as handle:
        for start in range(0, lines, 10_000):
            handle.write(
                b"".join(
                    orjson.dumps(_ok_line(n, expires_at), option=orjson.OPT_APPEND_NEWLINE)
                    for n in range(start, min(lines, start + 10_000))
                )
            )
    partial.rename(path)
    return path


def _ok_line(n: int, expires_at: str) -> dict[str, object]:
    media_id = str(10**18 + n)
    return {
        "key": f"row-{n}",
        "row": n + 1,
        "path": None,
        "account": "default",
        "status": "ok",
        "media_id": media_id,
        "media_key": f"3_{media_id}",
        "expires_after_secs": 86400,
        "expires_at": expires_at,
        "media_type": "image/png",
        "media_category": "tweet_image",
        "total_bytes": 1000 + n,
        "attempts": 1,
        "http_status": 200,
    }
