"""What a file is, from its first bytes: the signatures of every type the API accepts.

``sniff_media_type`` looks at content only; ``media_type_from_extension`` is the fallback for
files whose bytes prove nothing (and is never trusted over the bytes).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["HEAD_BYTES", "media_type_from_extension", "sniff_media_type"]

HEAD_BYTES: Final = 512
"""How much of a file is read to sniff its type (MPEG-TS needs three 188-byte packets)."""

_EXTENSION_TYPES: Final[Mapping[str, str]] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".qt": "video/quicktime",
    ".webm": "video/webm",
    ".ts": "video/mp2t",
    ".mts": "video/mp2t",
    ".m2ts": "video/mp2t",
    ".srt": "text/srt",
    ".vtt": "text/vtt",
    ".glb": "model/gltf-binary",
    ".usdz": "model/vnd.usdz+zip",
}
_MAGIC_PREFIXES: Final = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"glTF", "model/gltf-binary"),
)
_BMP_INFO_HEADER_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_QUICKTIME_BRAND: Final = b"qt  "
_MP4_BRANDS: Final = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9"}
    | {b"mp41", b"mp42", b"mp71", b"avc1", b"M4V ", b"M4VH", b"M4VP", b"dash", b"msnv"}
    | {b"MSNV", b"mmp4", b"f4v ", b"XAVC", b"NDAS", b"3gp4", b"3gp5", b"3gp6", b"3g2a"}
)
# ISO boxes that hold no video: HEIF/AVIF stills, M4A audio, camera raw.
_NOT_VIDEO_BRANDS: Final = frozenset(
    {b"mif1", b"msf1", b"heic", b"heix", b"hevc", b"avif", b"avis", b"miaf", b"M4A ", b"M4B "}
    | {b"M4P ", b"F4A ", b"F4B ", b"crx "}
)
_TS_PACKET: Final = 188
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE_ID: Final = b"\x42\x82"
_ZIP_LOCAL_HEADER: Final = b"PK\x03\x04"
_USD_NAMES: Final = (b".usdc", b".usda", b".usd")
_BOM: Final = b"\xef\xbb\xbf"
_SRT_START: Final = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*\d+[ \t]*\r?\n"
    rb"[ \t]*\d+:\d\d:\d\d[,.]\d{1,3}[ \t]*-->[ \t]*\d+:\d\d:\d\d[,.]\d{1,3}"
)


def sniff_media_type(head: bytes) -> str | None:
    """The media type the file's first bytes prove, or ``None`` (never ``image/pjpeg``)."""
    for magic, media_type in _MAGIC_PREFIXES:
        if head.startswith(magic):
            return media_type
    for sniff in _STRUCTURED_SNIFFERS:
        found = sniff(head)
        if found is not None:
            return found
    return None


def _sniff_webp(head: bytes) -> str | None:
    return "image/webp" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else None


def _sniff_bmp(head: bytes) -> str | None:
    """``BM`` alone is two letters of text: also require a known info-header size."""
    if head[:2] != b"BM" or len(head) < 18:
        return None
    info_size = int.from_bytes(head[14:18], "little")
    return "image/bmp" if info_size in _BMP_INFO_HEADER_SIZES else None


def _sniff_iso_media(head: bytes) -> str | None:
    """MP4 or QuickTime from the ``ftyp`` box's major and compatible brands."""
    if head[4:8] != b"ftyp":
        return None
    major = head[8:12]
    box_end = int.from_bytes(head[:4], "big")
    box_end = min(box_end if box_end >= 16 else len(head), len(head))
    brands = {major, *(head[at : at + 4] for at in range(16, box_end - 3, 4))}
    if major == _QUICKTIME_BRAND:
        return "video/quicktime"
    if brands & _NOT_VIDEO_BRANDS:
        return None
    if brands & _MP4_BRANDS:
        return "video/mp4"
    return "video/quicktime" if _QUICKTIME_BRAND in brands else None


def _sniff_ebml(head: bytes) -> str | None:
    """WebM from the EBML header's DocType; other Matroska files are not WebM."""
    if not head.startswith(_EBML_MAGIC):
        return None
    at = head.find(_EBML_DOCTYPE_ID, 4)
    size = _read_ebml_size(head, at + 2) if at >= 0 else None
    if size is None:
        return None
    length, start = size
    return "video/webm" if head[start : start + length].rstrip(b"\x00") == b"webm" else None


def _read_ebml_size(data: bytes, at: int) -> tuple[int, int] | None:
    """(value, offset after it) of the EBML variable-length integer at ``at``."""
    if at >= len(data) or data[at] == 0:
        return None
    width = 9 - data[at].bit_length()
    if at + width > len(data):
        return None
    value = data[at] & ((1 << (8 - width)) - 1)
    for byte in data[at + 1 : at + width]:
        value = (value << 8) | byte
    return value, at + width


def _sniff_mpeg_ts(head: bytes) -> str | None:
    """A sync byte every 188 bytes: at 0 and 188, and at 376 when the head reaches it."""
    if len(head) <= _TS_PACKET or head[0] != 0x47 or head[_TS_PACKET] != 0x47:
        return None
    if len(head) > 2 * _TS_PACKET and head[2 * _TS_PACKET] != 0x47:
        return None
    return "video/mp2t"


def _sniff_usdz(head: bytes) -> str | None:
    """A ZIP whose first entry is a USD layer (the USDZ rule)."""
    if not head.startswith(_ZIP_LOCAL_HEADER) or len(head) < 30:
        return None
    name_length = int.from_bytes(head[26:28], "little")
    name = head[30 : 30 + name_length].lower()
    return "model/vnd.usdz+zip" if name.endswith(_USD_NAMES) else None


def _sniff_vtt(head: bytes) -> str | None:
    text = head.removeprefix(_BOM)
    return "text/vtt" if text.startswith(b"WEBVTT") and text[6:7] in b" \t\r\n" else None


def _sniff_srt(head: bytes) -> str | None:
    """A cue number line, then a ``00:00:01,000 --> 00:00:04,000`` timing line."""
    return "text/srt" if _SRT_START.match(head) else None


_STRUCTURED_SNIFFERS: Final[tuple[Callable[[bytes], str | None], ...]] = (
    _sniff_webp,
    _sniff_iso_media,
    _sniff_ebml,
    _sniff_bmp,
    _sniff_usdz,
    _sniff_vtt,
    _sniff_srt,
    _sniff_mpeg_ts,
)


def media_type_from_extension(path: str) -> str | None:
    """The media type a file name's extension suggests (case-insensitive), or ``None``."""
    return _EXTENSION_TYPES.get(os.path.splitext(path)[1].lower())
