"""``batcher demo``: the whole job, end to end, on generated media and the built-in simulator.

The simulator runs in-process with a short rate-limit window, so the user sees the limiter
pause and resume; a handful of planted bad rows show what an invalid row looks like.
"""

from __future__ import annotations

import csv
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from batcher.api import ClientConfig
from batcher.auth import AccountSet, bearer_account
from batcher.runner import Job, RunConfig, RunSummary
from batcher.simulator import SimulatorConfig, SimulatorServer

DEMO_TOKEN: Final = "demo-token-not-a-secret"
DEMO_WINDOW_SECS: Final = 4
DEMO_WINDOW_LIMIT: Final = 40
DEMO_CONCURRENCY: Final = 16
MANIFEST_COLUMNS: Final = (
    "path",
    "key",
    "media_type",
    "media_category",
    "total_bytes",
    "source_id",
)


def png_bytes(size: int) -> bytes:
    """A PNG signature and IHDR chunk, padded to ``size`` bytes."""
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return _pad(b"\x89PNG\r\n\x1a\n" + chunk, size)


def jpeg_bytes(size: int) -> bytes:
    """A JPEG start-of-image and JFIF marker, padded."""
    return _pad(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", size)


def gif_bytes(size: int) -> bytes:
    """A GIF89a header, padded."""
    return _pad(b"GIF89a\x10\x00\x10\x00\x80\x00\x00", size)


def mp4_bytes(size: int) -> bytes:
    """An ``ftyp`` box with the ``isom`` brand, padded."""
    return _pad(struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2", size)


def webp_bytes(size: int) -> bytes:
    """A RIFF/WEBP header, padded."""
    return _pad(b"RIFF" + struct.pack("<I", size - 8) + b"WEBPVP8 ", size)


def srt_bytes(size: int) -> bytes:
    """One SubRip cue, padded with further cues' worth of spaces."""
    return _pad(b"1\n00:00:01,000 --> 00:00:02,500\nHello from batcher\n\n", size, filler=b" ")


def _pad(head: bytes, size: int, *, filler: bytes = b"\x00") -> bytes:
    return head + filler * max(0, size - len(head))


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of demo file."""

    suffix: str
    make: Callable[[int], bytes]


KINDS: Final = (
    Kind(".png", png_bytes),
    Kind(".jpg", jpeg_bytes),
    Kind(".gif", gif_bytes),
    Kind(".mp4", mp4_bytes),
    Kind(".webp", webp_bytes),
    Kind(".srt", srt_bytes),
)


def write_media(media_dir: Path, count: int) -> Iterator[dict[str, str]]:
    """Create ``count`` small files of every kind; yield their manifest rows."""
    media_dir.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        kind = KINDS[number % len(KINDS)]
        path = media_dir / f"item-{number:04d}{kind.suffix}"
        path.write_bytes(kind.make(2048 + 97 * number))
        yield {"path": f"media/{path.name}", "source_id": f"legacy-{number}"}


def planted_bad_rows(media_dir: Path) -> list[dict[str, str]]:
    """Rows that must come out ``invalid``, one of each common mistake."""
    liar = media_dir / "really-a-jpeg.png"
    liar.write_bytes(jpeg_bytes(4096))
    (media_dir / "empty.gif").write_bytes(b"")
    return [
        {"path": "media/does-not-exist.png", "source_id": "bad-missing"},
        {"path": "media/really-a-jpeg.png", "media_type": "image/png", "source_id": "bad-mismatch"},
        {"path": "media/empty.gif", "source_id": "bad-empty"},
        {
            "key": "remote-1",
            "media_type": "image/jpeg",
            "total_bytes": "lots",
            "source_id": "bad-size",
        },
        {
            "key": "remote-2",
            "media_type": "image/jpeg",
            "total_bytes": str(9 * 1024 * 1024),
            "media_category": "tweet_image",
            "source_id": "bad-too-large",
        },
        {"path": "media/item-0000.png", "source_id": "bad-duplicate"},
    ]


def write_manifest(demo_dir: Path, rows: int) -> tuple[Path, int, int]:
    """The demo manifest: generated media, a few metadata-only rows, the planted bad rows."""
    media_dir = demo_dir / "media"
    good = list(write_media(media_dir, rows))
    good.append(
        {
            "key": "remote-video-1",
            "media_type": "video/mp4",
            "total_bytes": "10485760",
            "media_category": "amplify_video",
            "source_id": "stored-elsewhere",
        }
    )
    bad = planted_bad_rows(media_dir)
    manifest = demo_dir / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in good[: len(good) // 2] + bad + good[len(good) // 2 :]:
            writer.writerow(row)
    return manifest, len(good), len(bad)


async def run_demo_job(manifest: Path, results: Path, *, progress: bool) -> RunSummary:
    """Serve the simulator in-process and run the job against it."""
    from batcher.cli import run_job

    config = SimulatorConfig(
        tokens=frozenset({DEMO_TOKEN}),
        window_secs=DEMO_WINDOW_SECS,
        window_limit=DEMO_WINDOW_LIMIT,
        latency_s=0.02,
        latency_jitter_s=0.01,
    )
    async with SimulatorServer(config) as server:
        job = Job(
            manifest=str(manifest),
            results_path=results,
            accounts=AccountSet(default=bearer_account("default", DEMO_TOKEN)),
            client_config=ClientConfig(base_url=server.url, max_in_flight=DEMO_CONCURRENCY),
            config=RunConfig(concurrency=DEMO_CONCURRENCY),
        )
        return await run_job(job, progress=progress)


def run_demo(demo_dir: Path, *, rows: int, progress: bool) -> int:
    """Generate, run, explain; exit 0 when every good row got an id and every bad one was caught."""
    demo_dir.mkdir(parents=True, exist_ok=True)
    manifest, good, bad = write_manifest(demo_dir, rows)
    results = demo_dir / "results.jsonl"
    results.unlink(missing_ok=True)
    sys.stderr.write(
        f"batcher demo: {good} media rows and {bad} planted bad rows in {manifest}\n"
        f"batcher demo: simulator window {DEMO_WINDOW_LIMIT} calls / {DEMO_WINDOW_SECS} s, "
        "so the run pauses for rate-limit resets\n"
    )
    summary = anyio.run(lambda: run_demo_job(manifest, results, progress=progress))
    print(explain(results, manifest))
    return 0 if (summary.ok, summary.invalid, summary.failed) == (good, bad, 0) else 1


def explain(results: Path, manifest: Path) -> str:
    """Where the results are and how to do the same on real data."""
    return "\n".join(
        [
            f"Results: {results}  (one JSON line per manifest row)",
            f'  ok rows:      grep \'"status":"ok"\' {results}',
            f'  invalid rows: grep \'"status":"invalid"\' {results}   (each says what to fix)',
            "",
            "On real data:",
            "  export X_ACCESS_TOKEN=...   # OAuth 2.0 user token with the media.write scope",
            f"  batcher run {manifest.name} -o results.jsonl",
        ]
    )
