"""Sniffing, category rules and row inspection (``batcher.media``).

Files are built in ``tmp_path`` from the few header bytes each format needs: no binary fixtures.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from batcher.contract import MEDIA_CATEGORIES, MEDIA_TYPES, TOTAL_BYTES_MAX
from batcher.errors import ConfigError
from batcher.media import (
    CATEGORY_SIZE_LIMITS,
    INVALID_TYPES,
    MIB,
    categories_for,
    infer_category,
    inspect_record,
    media_type_from_extension,
    sniff_media_type,
)
from batcher.models import InvalidRow, ManifestRecord, WorkItem

# --- minimal headers -----------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00"
SRT = b"1\r\n00:00:01,000 --> 00:00:04,000\r\nHello\r\n"
VTT = b"WEBVTT\n\n00:01.000 --> 00:04.000\nHello\n"
GLB = b"glTF\x02\x00\x00\x00\x40\x00\x00\x00"
UNKNOWN = b"just some text that is no media format at all\n"


def webp() -> bytes:
    return b"RIFF" + (64).to_bytes(4, "little") + b"WEBPVP8 " + bytes(16)


def bmp(info_header_size: int = 40) -> bytes:
    file_header = b"BM" + (70).to_bytes(4, "little") + bytes(4) + (54).to_bytes(4, "little")
    return file_header + info_header_size.to_bytes(4, "little") + bytes(16)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + bytes(4) + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


def ebml(doctype: bytes) -> bytes:
    elements = b"\x42\x86\x81\x01" + b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(elements)]) + elements + b"\x18\x53\x80\x67"


def mpeg_ts(packets: int = 3) -> bytes:
    return b"".join(b"\x47" + bytes(187) for _ in range(packets))


def zip_with(first_entry: bytes) -> bytes:
    header = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(first_entry), 0)
    return header + first_entry + b"#usda 1.0\n"


# --- sniffing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param(JPEG, "image/jpeg", id="jpeg-by-magic"),
        pytest.param(PNG, "image/png", id="png-by-magic"),
        pytest.param(b"GIF87a\x01\x00", "image/gif", id="gif87a"),
        pytest.param(GIF, "image/gif", id="gif89a"),
        pytest.param(webp(), "image/webp", id="webp-riff"),
        pytest.param(bmp(), "image/bmp", id="bmp-info-header"),
        pytest.param(bmp(12), "image/bmp", id="bmp-core-header"),
        pytest.param(b"II*\x00\x08\x00\x00\x00", "image/tiff", id="tiff-little-endian"),
        pytest.param(b"MM\x00*\x00\x00\x00\x08", "image/tiff", id="tiff-big-endian"),
        pytest.param(ftyp(b"isom", b"isom", b"avc1"), "video/mp4", id="mp4-isom"),
        pytest.param(ftyp(b"mp42", b"mp41"), "video/mp4", id="mp4-mp42"),
        pytest.param(ftyp(b"avc1"), "video/mp4", id="mp4-avc1"),
        pytest.param(ftyp(b"dash", b"iso6"), "video/mp4", id="mp4-dash"),
        pytest.param(ftyp(b"M4V ", b"M4V "), "video/mp4", id="mp4-m4v"),
        pytest.param(ftyp(b"abcd", b"mp42"), "video/mp4", id="mp4-by-compatible-brand"),
        pytest.param(ftyp(b"qt  ", b"qt  "), "video/quicktime", id="mov-qt-brand"),
        pytest.param(ftyp(b"abcd", b"qt  "), "video/quicktime", id="mov-by-compatible-brand"),
        pytest.param(ebml(b"webm"), "video/webm", id="webm-doctype"),
        pytest.param(mpeg_ts(3), "video/mp2t", id="mpeg-ts-three-packets"),
        pytest.param(mpeg_ts(2), "video/mp2t", id="mpeg-ts-two-packets"),
        pytest.param(SRT, "text/srt", id="srt"),
        pytest.param(b"\xef\xbb\xbf" + SRT, "text/srt", id="srt-with-bom"),
        pytest.param(b"\n1\n00:00:01.5 --> 00:00:02.5\nx\n", "text/srt", id="srt-lf-dot-millis"),
        pytest.param(VTT, "text/vtt", id="vtt"),
        pytest.param(b"\xef\xbb\xbf" + VTT, "text/vtt", id="vtt-with-bom"),
        pytest.param(b"WEBVTT", "text/vtt", id="vtt-header-only"),
        pytest.param(GLB, "model/gltf-binary", id="glb"),
        pytest.param(zip_with(b"scene.usdc"), "model/vnd.usdz+zip", id="usdz-usdc-first"),
        pytest.param(zip_with(b"Scene.USDA"), "model/vnd.usdz+zip", id="usdz-usda-first"),
    ],
)
def test_sniff_media_type_finds(head: bytes, expected: str) -> None:
    assert sniff_media_type(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"", id="empty"),
        pytest.param(UNKNOWN, id="plain-text"),
        pytest.param(b"BMW owners club, minutes of the meeting\n", id="text-starting-bm"),
        pytest.param(ebml(b"matroska"), id="matroska-not-webm"),
        pytest.param(b"\x1a\x45\xdf\xa3\x80", id="ebml-without-doctype"),
        pytest.param(ftyp(b"heic", b"mif1", b"heic"), id="heic-still"),
        pytest.param(ftyp(b"avif", b"avif", b"mif1", b"iso8"), id="avif-with-iso-brand"),
        pytest.param(ftyp(b"M4A ", b"isom"), id="m4a-audio"),
        pytest.param(ftyp(b"abcd", b"efgh"), id="iso-unknown-brands"),
        pytest.param(zip_with(b"word/document.xml"), id="zip-not-usd"),
        pytest.param(mpeg_ts(1), id="mpeg-ts-one-packet-unproven"),
        pytest.param(mpeg_ts(2) + b"\x00" + bytes(200), id="mpeg-ts-third-sync-missing"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt ", id="riff-wave"),
        pytest.param(b"WEBVTTX\n", id="webvtt-lookalike"),
        pytest.param(b"12\nnot a timing line\n", id="srt-lookalike"),
    ],
)
def test_sniff_media_type_refuses(head: bytes) -> None:
    assert sniff_media_type(head) is None


def test_sniff_never_says_pjpeg() -> None:
    assert sniff_media_type(JPEG) == "image/jpeg"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("a.jpg", "image/jpeg", id="jpg"),
        pytest.param("dir.v2/A.JPEG", "image/jpeg", id="jpeg-upper-case"),
        pytest.param("a.png", "image/png", id="png"),
        pytest.param("a.gif", "image/gif", id="gif"),
        pytest.param("a.webp", "image/webp", id="webp"),
        pytest.param("a.bmp", "image/bmp", id="bmp"),
        pytest.param("a.tif", "image/tiff", id="tif"),
        pytest.param("a.mp4", "video/mp4", id="mp4"),
        pytest.param("a.m4v", "video/mp4", id="m4v"),
        pytest.param("a.mov", "video/quicktime", id="mov"),
        pytest.param("a.webm", "video/webm", id="webm"),
        pytest.param("a.ts", "video/mp2t", id="ts"),
        pytest.param("a.srt", "text/srt", id="srt"),
        pytest.param("a.vtt", "text/vtt", id="vtt"),
        pytest.param("a.glb", "model/gltf-binary", id="glb"),
        pytest.param("a.usdz", "model/vnd.usdz+zip", id="usdz"),
        pytest.param("a.mkv", None, id="mkv-unknown"),
        pytest.param("README", None, id="no-extension"),
        pytest.param(".png", None, id="hidden-name-is-not-extension"),
    ],
)
def test_media_type_from_extension(path: str, expected: str | None) -> None:
    assert media_type_from_extension(path) == expected


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        pytest.param("image/png", "tweet_image", id="image"),
        pytest.param("image/pjpeg", "tweet_image", id="pjpeg"),
        pytest.param("image/gif", "tweet_gif", id="gif"),
        pytest.param("video/mp4", "tweet_video", id="video"),
        pytest.param("video/mp2t", "tweet_video", id="mpeg-ts"),
        pytest.param("text/srt", "subtitles", id="srt"),
        pytest.param("text/vtt", "subtitles", id="vtt"),
        pytest.param("model/gltf-binary", None, id="model-has-none"),
        pytest.param("audio/mpeg", None, id="outside-contract"),
    ],
)
def test_infer_category(media_type: str, expected: str | None) -> None:
    assert infer_category(media_type) == expected


def test_every_contract_type_has_categories_and_limits_are_known() -> None:
    for media_type in MEDIA_TYPES:
        assert categories_for(media_type) <= MEDIA_CATEGORIES
        assert categories_for(media_type)
        inferred = infer_category(media_type)
        assert inferred is None or inferred in categories_for(media_type)
    assert set(CATEGORY_SIZE_LIMITS) <= MEDIA_CATEGORIES
    assert categories_for("image/gif") >= {"tweet_gif", "dm_gif", "tweet_image"}
    assert categories_for("video/mp4") == {"tweet_video", "dm_video", "amplify_video"}


# --- inspecting rows ------------------------------------------------------------------------

Files = dict[str, bytes | int]
"""File name → content, or an int: a sparse file of that size that starts with PNG bytes."""


def make_files(base: Path, files: Files) -> None:
    for name, content in files.items():
        target = base / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            if isinstance(content, int):
                out.write(GIF if name.endswith(".gif") else PNG)
                out.truncate(content)
            else:
                out.write(content)


def inspect(
    tmp_path: Path, files: Files, fields: dict[str, object], default: str | None = None
) -> WorkItem | InvalidRow:
    make_files(tmp_path, files)
    record = ManifestRecord(row=7, **fields)  # type: ignore[arg-type]
    return inspect_record(record, base_dir=tmp_path, default_category=default)


@pytest.mark.parametrize(
    ("files", "fields", "default", "expected"),
    [
        pytest.param(
            {"cat.png": PNG},
            {"path": "cat.png"},
            None,
            ("image/png", "tweet_image", len(PNG), (), None),
            id="png-path-only-infers-all",
        ),
        pytest.param(
            {"a/b.mp4": ftyp(b"isom")},
            {"path": "a/b.mp4", "total_bytes": str(len(ftyp(b"isom")))},
            None,
            ("video/mp4", "tweet_video", len(ftyp(b"isom")), (), None),
            id="declared-size-matches-file",
        ),
        pytest.param(
            {"old.jpg": JPEG},
            {"path": "old.jpg", "media_type": "image/pjpeg"},
            None,
            ("image/pjpeg", "tweet_image", len(JPEG), (), None),
            id="declared-pjpeg-on-jpeg-bytes",
        ),
        pytest.param(
            {"clip.mov": ftyp(b"qt  ")},
            {"path": "clip.mov", "media_type": "video/mp4"},
            None,
            ("video/mp4", "tweet_video", len(ftyp(b"qt  ")), (), None),
            id="mp4-declared-on-quicktime-bytes-is-lenient",
        ),
        pytest.param(
            {"blob.bin": UNKNOWN},
            {"path": "blob.bin", "media_type": " IMAGE/PNG "},
            None,
            ("image/png", "tweet_image", len(UNKNOWN), (), None),
            id="declared-type-when-sniff-fails",
        ),
        pytest.param(
            {"movie.m2ts": UNKNOWN},
            {"path": "movie.m2ts"},
            None,
            ("video/mp2t", "tweet_video", len(UNKNOWN), (), None),
            id="extension-fallback-when-sniff-fails",
        ),
        pytest.param(
            {"anim.gif": GIF},
            {"path": "anim.gif", "media_category": "tweet_image"},
            None,
            ("image/gif", "tweet_image", len(GIF), (), None),
            id="gif-may-use-image-category",
        ),
        pytest.param(
            {"a.png": PNG},
            {"path": "a.png", "additional_owners": "12; 34  56", "shared": " Yes "},
            None,
            ("image/png", "tweet_image", len(PNG), ("12", "34", "56"), True),
            id="csv-style-owners-and-shared",
        ),
        pytest.param(
            {"a.png": PNG},
            {"path": "a.png", "additional_owners": ["12", "34"], "shared": False},
            None,
            ("image/png", "tweet_image", len(PNG), ("12", "34"), False),
            id="json-style-owners-and-shared",
        ),
        pytest.param(
            {},
            {"key": "k1", "media_type": "video/mp4", "total_bytes": 1000.0},
            None,
            ("video/mp4", "tweet_video", 1000, (), None),
            id="no-path-row-with-integral-float",
        ),
        pytest.param(
            {"a.png": PNG},
            {"path": "a.png"},
            "dm_image",
            ("image/png", "dm_image", len(PNG), (), None),
            id="default-category",
        ),
        pytest.param(
            {"a.png": PNG},
            {"path": "a.png", "media_category": "Tweet_Image"},
            "dm_image",
            ("image/png", "tweet_image", len(PNG), (), None),
            id="row-category-beats-default",
        ),
        pytest.param(
            {"m.glb": GLB},
            {"path": "m.glb", "media_category": "tweet_image"},
            None,
            ("model/gltf-binary", "tweet_image", len(GLB), (), None),
            id="model-with-category-is-lenient",
        ),
        pytest.param(
            {"s.vtt": VTT},
            {"path": "s.vtt"},
            None,
            ("text/vtt", "subtitles", len(VTT), (), None),
            id="subtitles",
        ),
        pytest.param(
            {"big.png": 5 * MIB},
            {"path": "big.png"},
            None,
            ("image/png", "tweet_image", 5 * MIB, (), None),
            id="image-exactly-at-limit",
        ),
    ],
)
def test_inspect_record_builds_request(
    tmp_path: Path,
    files: Files,
    fields: dict[str, object],
    default: str | None,
    expected: tuple[str, str, int, tuple[str, ...], bool | None],
) -> None:
    item = inspect(tmp_path, files, {"account": "acct", "meta": {"id": 3}, **fields}, default)
    assert isinstance(item, WorkItem), item
    request = item.request
    got = (
        request.media_type,
        request.media_category,
        request.total_bytes,
        request.additional_owners,
        request.shared,
    )
    assert got == expected
    assert item.row == 7
    assert item.key == (fields.get("key") or fields.get("path"))
    assert (item.account, dict(item.meta)) == ("acct", {"id": 3})


@pytest.mark.parametrize(
    ("files", "fields", "default", "slug", "words"),
    [
        pytest.param(
            {}, {"problem": "line is not valid UTF-8"}, None, "unreadable_record", "UTF-8",
            id="manifest-problem",
        ),
        pytest.param({}, {"path": "nope.png"}, None, "missing_file", "no file at", id="missing"),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png/x.png"}, None, "missing_file", "no file",
            id="file-used-as-folder",
        ),
        pytest.param(
            {"d/x.png": PNG}, {"path": "d"}, None, "unreadable_file", "folder", id="folder",
        ),
        pytest.param(
            {}, {"path": "bad\x00name.png"}, None, "unreadable_file", "fix the path",
            id="nul-in-path",
        ),
        pytest.param({"e.png": b""}, {"path": "e.png"}, None, "empty_file", "empty", id="empty"),
        pytest.param(
            {}, {"key": "k", "media_type": "image/png", "total_bytes": "0"}, None, "empty_file",
            "0", id="declared-zero-bytes",
        ),
        pytest.param(
            {"x.bin": UNKNOWN}, {"path": "x.bin"}, None, "unknown_type", "set media_type",
            id="unknown-type",
        ),
        pytest.param(
            {"a.jpg": PNG}, {"path": "a.jpg", "media_type": "image/jpeg"}, None, "type_mismatch",
            "bytes are image/png", id="declared-jpeg-on-png-bytes",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "total_bytes": 5}, None, "size_mismatch",
            f"file has {len(PNG)} bytes", id="size-mismatch",
        ),
        pytest.param(
            {}, {"media_type": "image/png", "total_bytes": 5}, None, "missing_field",
            "neither path nor key", id="no-path-no-key",
        ),
        pytest.param(
            {}, {"key": "k", "media_type": "image/png"}, None, "missing_field", "total_bytes",
            id="no-path-no-size",
        ),
        pytest.param(
            {}, {"key": "k", "total_bytes": 5}, None, "missing_field", "media_type",
            id="no-path-no-type",
        ),
        pytest.param(
            {"m.usdz": zip_with(b"a.usdc")}, {"path": "m.usdz"}, None, "missing_field",
            "set media_category", id="model-without-category",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "media_type": "image/jpg"}, None, "bad_field",
            "did you mean image/jpeg", id="media-type-jpg-hint",
        ),
        pytest.param(
            {}, {"key": "k", "media_type": "audio/mpeg", "total_bytes": 5}, None, "bad_field",
            "not supported", id="media-type-outside-contract",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "media_category": "tweet"}, None, "bad_field",
            "media_category", id="unknown-category",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "total_bytes": "12.5"}, None, "bad_field",
            "whole number", id="size-decimal-string",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "total_bytes": "-1"}, None, "bad_field",
            "whole number", id="size-negative-string",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "total_bytes": -1}, None, "bad_field",
            "whole number", id="size-negative-int",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "total_bytes": True}, None, "bad_field",
            "whole number", id="size-bool",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "total_bytes": 1.5}, None, "bad_field",
            "whole number", id="size-float-with-fraction",
        ),
        pytest.param(
            {}, {"key": "k", "media_type": "video/mp4", "total_bytes": TOTAL_BYTES_MAX + 1},
            None, "bad_field", "API maximum", id="size-above-api-maximum",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "total_bytes": "9" * 5000}, None, "bad_field",
            "API maximum", id="size-absurd-digit-string",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "shared": "maybe"}, None, "bad_field",
            "true or false", id="shared-not-a-word",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "shared": 1}, None, "bad_field", "true or false",
            id="shared-json-number",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "additional_owners": [123]}, None, "bad_field",
            "quote", id="owners-json-numbers",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "additional_owners": "12 3a"}, None, "bad_field",
            "'3a'", id="owners-not-digits",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "additional_owners": ["1" * 20]}, None,
            "bad_field", "1 to 19 digits", id="owners-too-long",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "additional_owners": {"id": "1"}}, None,
            "bad_field", "list of user ids", id="owners-object",
        ),
        pytest.param(
            {"big.png": 5 * MIB + 1}, {"path": "big.png"}, None, "too_large",
            "tweet_image allows 5 MiB; resize", id="image-over-5-mib",
        ),
        pytest.param(
            {"big.gif": 6 * MIB}, {"path": "big.gif", "media_category": "dm_image"}, None,
            "too_large", "use media_category tweet_gif or dm_gif", id="gif-as-image-over-5-mib",
        ),
        pytest.param(
            {"big.gif": 16 * MIB}, {"path": "big.gif"}, None, "too_large",
            "tweet_gif allows 15 MiB", id="gif-over-15-mib",
        ),
        pytest.param(
            {}, {"key": "k", "media_type": "video/mp4", "total_bytes": 600 * MIB}, None,
            "too_large", "tweet_video allows 512 MiB", id="declared-video-over-512-mib",
        ),
        pytest.param(
            {"v.mp4": ftyp(b"isom")}, {"path": "v.mp4", "media_category": "tweet_image"}, None,
            "category_mismatch", "use amplify_video or dm_video or tweet_video",
            id="video-as-image",
        ),
        pytest.param(
            {"s.srt": SRT}, {"path": "s.srt", "media_category": "tweet_video"}, None,
            "category_mismatch", "use subtitles", id="subtitles-as-video",
        ),
        pytest.param(
            {"a.png": PNG}, {"path": "a.png", "media_category": "subtitles"}, None,
            "category_mismatch", "does not fit image/png", id="image-as-subtitles",
        ),
        pytest.param(
            {"v.webm": ebml(b"webm")}, {"path": "v.webm"}, "dm_image", "category_mismatch",
            "default category", id="default-category-does-not-fit",
        ),
    ],
)  # fmt: skip
def test_inspect_record_rejects(
    tmp_path: Path,
    files: Files,
    fields: dict[str, object],
    default: str | None,
    slug: str,
    words: str,
) -> None:
    row = inspect(tmp_path, files, {"account": "acct", **fields}, default)
    assert isinstance(row, InvalidRow), row
    assert row.error.type == slug
    assert row.error.title == INVALID_TYPES[slug]
    assert row.error.retryable is False
    assert row.error.detail.startswith("row 7")
    assert words in row.error.detail
    label = fields.get("path") or fields.get("key")
    assert row.error.detail.startswith(f"row 7 ({label}): " if label else "row 7: ")
    assert (row.row, row.path, row.account) == (7, fields.get("path"), "acct")
    assert "\n" not in row.error.detail


def test_every_slug_is_exercised_by_the_table() -> None:
    marks = test_inspect_record_rejects.pytestmark  # type: ignore[attr-defined]
    params = next(mark for mark in marks if mark.name == "parametrize").args[1]
    assert {param.values[3] for param in params} == set(INVALID_TYPES)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mp4")
    row = inspect_record(ManifestRecord(row=1, path="pipe.mp4"), base_dir=tmp_path)
    assert isinstance(row, InvalidRow)
    assert (row.error.type, "pipe" in row.error.detail) == ("unreadable_file", True)


def test_unreadable_file(
    open_dir: Path, unprivileged: Callable[[], AbstractContextManager[None]]
) -> None:
    (open_dir / "locked.png").write_bytes(PNG)
    (open_dir / "locked.png").chmod(0)
    with unprivileged():
        row = inspect_record(ManifestRecord(row=1, path="locked.png"), base_dir=open_dir)
    assert isinstance(row, InvalidRow)
    assert row.error.type == "unreadable_file"


def test_absolute_path_ignores_base_dir(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    record = ManifestRecord(row=1, path=str(tmp_path / "a.png"))
    item = inspect_record(record, base_dir=tmp_path / "elsewhere")
    assert isinstance(item, WorkItem)
    assert item.key == str(tmp_path / "a.png")


def test_bad_default_category_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tweet_pic"):
        inspect_record(
            ManifestRecord(row=1, path="a.png"), base_dir=tmp_path, default_category="tweet_pic"
        )


def test_absurd_cell_is_cut_short_in_the_message(tmp_path: Path) -> None:
    row = inspect_record(
        ManifestRecord(row=1, key="k", media_type="x" * 10_000, total_bytes=1), base_dir=tmp_path
    )
    assert isinstance(row, InvalidRow)
    assert len(row.error.detail) < 1000


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"media_type": "text/plain"}, id="bad-type"),
        pytest.param({"media_category": "tweet_pic"}, id="bad-category"),
        pytest.param({"media_category": "amplify_video"}, id="category-misfit"),
        pytest.param({"total_bytes": 6 * 1024 * 1024}, id="too-large"),
    ],
)
def test_a_repeated_bad_value_is_refused_on_every_row(
    tmp_path: Path, fields: dict[str, Any]
) -> None:
    # Checks of types and categories are remembered per value: a refusal must not be.
    good: dict[str, Any] = {
        "media_type": "image/png",
        "media_category": "tweet_image",
        "total_bytes": 10,
    }
    outcomes = [
        inspect_record(ManifestRecord(row=row, key=f"k{row}", **(good | fields)), base_dir=tmp_path)
        for row in (1, 2, 3)
    ]
    assert all(isinstance(outcome, InvalidRow) for outcome in outcomes)
    assert [outcome.row for outcome in outcomes] == [1, 2, 3]
    fine = inspect_record(ManifestRecord(row=4, key="k4", **good), base_dir=tmp_path)
    assert isinstance(fine, WorkItem)
    assert (fine.request.media_type, fine.request.media_category) == ("image/png", "tweet_image")
