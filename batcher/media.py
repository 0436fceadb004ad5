"""What a file is, which category it belongs in, and whether a row makes a valid request.

    ManifestRecord ──inspect_record──▶ WorkItem     (request ready to send)
                                  └──▶ InvalidRow   (error slug, what is wrong, how to fix it)

Pure apart from one ``open`` + ``fstat`` + ``read`` of a file's first bytes per row. The slugs
of ``InvalidRow.error.type`` are a contract users count on; they are listed in ``INVALID_TYPES``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from functools import lru_cache
from typing import Final, NoReturn

from batcher.contract import MEDIA_CATEGORIES, MEDIA_TYPES, TOTAL_BYTES_MAX, USER_ID_PATTERN
from batcher.errors import ConfigError
from batcher.manifest import record_key
from batcher.models import ErrorInfo, InitializeRequest, InvalidRow, ManifestRecord, WorkItem
from batcher.sniff import HEAD_BYTES, media_type_from_extension, sniff_media_type

__all__ = [
    "CATEGORY_SIZE_LIMITS",
    "HEAD_BYTES",
    "INVALID_TYPES",
    "categories_for",
    "infer_category",
    "inspect_record",
    "media_type_from_extension",
    "sniff_media_type",
]

MIB: Final = 1024 * 1024
# X documents 5 MB / 15 MB / 512 MB; read as MiB, the lenient reading: the API has the last word.
CATEGORY_SIZE_LIMITS: Final[Mapping[str, int]] = {
    "tweet_image": 5 * MIB,
    "dm_image": 5 * MIB,
    "tweet_gif": 15 * MIB,
    "dm_gif": 15 * MIB,
    "tweet_video": 512 * MIB,
    "dm_video": 512 * MIB,
    "amplify_video": 512 * MIB,
}

UNREADABLE_RECORD: Final = "unreadable_record"
MISSING_FILE: Final = "missing_file"
UNREADABLE_FILE: Final = "unreadable_file"
EMPTY_FILE: Final = "empty_file"
UNKNOWN_TYPE: Final = "unknown_type"
TYPE_MISMATCH: Final = "type_mismatch"
SIZE_MISMATCH: Final = "size_mismatch"
MISSING_FIELD: Final = "missing_field"
BAD_FIELD: Final = "bad_field"
TOO_LARGE: Final = "too_large"
CATEGORY_MISMATCH: Final = "category_mismatch"

INVALID_TYPES: Final[Mapping[str, str]] = {
    UNREADABLE_RECORD: "Unreadable manifest record",
    MISSING_FILE: "File not found",
    UNREADABLE_FILE: "File cannot be read",
    EMPTY_FILE: "Empty file",
    UNKNOWN_TYPE: "Unknown media type",
    TYPE_MISMATCH: "Media type does not match the file",
    SIZE_MISMATCH: "total_bytes does not match the file size",
    MISSING_FIELD: "Missing field",
    BAD_FIELD: "Invalid field value",
    TOO_LARGE: "Too large for the media category",
    CATEGORY_MISMATCH: "Media category does not fit the media type",
}
"""Every slug ``inspect_record`` may put in ``ErrorInfo.type``, with its title."""

_IMAGE_CATEGORIES: Final = frozenset({"tweet_image", "dm_image"})
_GIF_CATEGORIES: Final = frozenset({"tweet_gif", "dm_gif"})
_VIDEO_CATEGORIES: Final = frozenset({"tweet_video", "dm_video", "amplify_video"})
_FAMILIES: Final[Mapping[str, tuple[frozenset[str], str | None]]] = {
    # family: (categories that fit, category to infer)
    "image": (_IMAGE_CATEGORIES, "tweet_image"),
    # An animated GIF may also go up as a still image; X documents both.
    "gif": (_GIF_CATEGORIES | _IMAGE_CATEGORIES, "tweet_gif"),
    "video": (_VIDEO_CATEGORIES, "tweet_video"),
    "subtitles": (frozenset({"subtitles"}), "subtitles"),
    # X documents no category for 3D models: require one and accept any (lenient).
    "model": (MEDIA_CATEGORIES, None),
}
_FAMILY_OF_TYPE: Final[Mapping[str, str]] = {
    "image/jpeg": "image",
    "image/pjpeg": "image",
    "image/png": "image",
    "image/webp": "image",
    "image/bmp": "image",
    "image/tiff": "image",
    "image/gif": "gif",
    "video/mp4": "video",
    "video/quicktime": "video",
    "video/webm": "video",
    "video/mp2t": "video",
    "text/srt": "subtitles",
    "text/vtt": "subtitles",
    "model/gltf-binary": "model",
    "model/vnd.usdz+zip": "model",
}
# Declared types that are not in the contract but whose meaning is plain, for a hint.
_TYPE_HINTS: Final[Mapping[str, str]] = {
    "image/jpg": "image/jpeg",
    "image/tif": "image/tiff",
    "video/mov": "video/quicktime",
    "video/x-matroska": "video/webm",
    "application/x-subrip": "text/srt",
    "model/gltf+binary": "model/gltf-binary",
    "model/vnd.usdz": "model/vnd.usdz+zip",
}
# Same bytes, two names: pjpeg is never sniffed. MP4 and QuickTime share one box format and
# tools label them loosely; whether X refuses the other name is not documented, so allow it.
_COMPATIBLE_TYPES: Final = frozenset(
    {
        ("image/pjpeg", "image/jpeg"),
        ("video/mp4", "video/quicktime"),
        ("video/quicktime", "video/mp4"),
    }
)

_OWNER_SEPARATORS: Final = re.compile(r"[\s;,]+")
_TRUE_WORDS: Final = frozenset({"true", "1", "yes"})
_FALSE_WORDS: Final = frozenset({"false", "0", "no"})
# Longer digit strings are surely above the maximum, and int() of a huge string is slow.
_MAX_SIZE_DIGITS: Final = 30
_OPEN_FLAGS: Final = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def infer_category(media_type: str) -> str | None:
    """The category a type goes in by default; ``None`` for 3D models (X documents none)."""
    family = _FAMILY_OF_TYPE.get(media_type)
    return _FAMILIES[family][1] if family else None


def categories_for(media_type: str) -> frozenset[str]:
    """The categories a media type may be sent with (empty for a type outside the contract)."""
    family = _FAMILY_OF_TYPE.get(media_type)
    return _FAMILIES[family][0] if family else frozenset()


class _Invalid(Exception):
    """Internal: a row check failed; becomes an InvalidRow at the edge of inspect_record."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail


def _reject(slug: str, detail: str) -> NoReturn:
    raise _Invalid(slug, detail)


def inspect_record(
    record: ManifestRecord,
    *,
    base_dir: str | os.PathLike[str],
    default_category: str | None = None,
) -> WorkItem | InvalidRow:
    """Check one record and build its request, reading at most its file's first bytes.

    ``default_category`` is used for rows that name none (and must itself be a valid category:
    anything else raises ``ConfigError``, a mistake of the run rather than of a row). Never
    raises for a bad row: every problem becomes an ``InvalidRow`` whose detail names the row
    and says what to fix.
    """
    if default_category is not None and default_category not in MEDIA_CATEGORIES:
        raise ConfigError(
            f"default media category {default_category!r} is not one of: "
            + ", ".join(sorted(MEDIA_CATEGORIES))
        )
    try:
        request = _build_request(record, os.fspath(base_dir), default_category)
    except _Invalid as invalid:
        return _invalid_row(record, invalid)
    return tuple.__new__(  # as in _build_request
        WorkItem,
        (record.row, record_key(record) or "", record.path, record.account, request, record.meta),
    )


def _invalid_row(record: ManifestRecord, invalid: _Invalid) -> InvalidRow:
    label = record.path or record.key
    where = f"row {record.row} ({_shown(label)})" if label else f"row {record.row}"
    error = ErrorInfo(
        type=invalid.slug,
        title=INVALID_TYPES[invalid.slug],
        detail=f"{where}: {invalid.detail}",
        retryable=False,
    )
    return InvalidRow(
        row=record.row,
        key=record_key(record),
        path=record.path,
        account=record.account,
        error=error,
        meta=record.meta,
        source=record,
    )


def _build_request(
    record: ManifestRecord, base_dir: str, default_category: str | None
) -> InitializeRequest:
    """The request for a record, or ``_Invalid`` at the first problem found."""
    if record.problem is not None:
        _reject(UNREADABLE_RECORD, f"{record.problem}; fix this record in the manifest")
    declared_type = _declared_media_type(record.media_type)
    declared_category = _declared_category(record.media_category)
    declared_size = _declared_total_bytes(record.total_bytes)
    owners = _additional_owners(record.additional_owners)
    shared = _shared_flag(record.shared)
    if record.path:
        media_type, total_bytes = _type_and_size_of_file(
            os.path.join(base_dir, record.path), declared_type, declared_size
        )
    else:
        media_type, total_bytes = _type_and_size_declared(record, declared_type, declared_size)
    category, size_limit = _category_and_limit(media_type, declared_category, default_category)
    if total_bytes > size_limit:
        _reject_too_large(total_bytes, category, media_type, size_limit)
    # tuple.__new__, every field in order: NamedTuple's own __new__ is a Python call.
    return tuple.__new__(InitializeRequest, (media_type, category, total_bytes, owners, shared))


def _type_and_size_declared(
    record: ManifestRecord, declared_type: str | None, declared_size: int | None
) -> tuple[str, int]:
    """A row without a file must say everything the request needs."""
    if not record.key:
        _reject(MISSING_FIELD, "the row has neither path nor key; give a path, or a key")
    if declared_type is None or declared_size is None:
        given = {"total_bytes": declared_size, "media_type": declared_type}
        missing = [name for name, value in given.items() if value is None]
        _reject(
            MISSING_FIELD,
            f"the row has no path, so it must give {' and '.join(missing)}; "
            "add a path to the file, or fill in the missing field",
        )
    if declared_size == 0:
        _reject(EMPTY_FILE, "total_bytes is 0; X cannot initialize an empty upload")
    return declared_type, declared_size


def _type_and_size_of_file(
    full_path: str, declared_type: str | None, declared_size: int | None
) -> tuple[str, int]:
    """Size from the file, type from its bytes (else the declared type, else the extension)."""
    size, head = _probe_file(full_path)
    if declared_size is not None and declared_size != size:
        _reject(
            SIZE_MISMATCH,
            f"total_bytes is {declared_size} but the file has {size} bytes; "
            "fix total_bytes or leave it empty to use the file's size",
        )
    if size == 0:
        _reject(EMPTY_FILE, "the file is empty (0 bytes); point the row at the real media file")
    return _resolve_type(full_path, head, declared_type), size


def _resolve_type(full_path: str, head: bytes, declared_type: str | None) -> str:
    """The bytes decide; the declared type or the extension only when the bytes can't tell."""
    sniffed = sniff_media_type(head)
    if sniffed is None:
        media_type = declared_type or media_type_from_extension(full_path)
        if media_type is None:
            _reject(
                UNKNOWN_TYPE,
                "the file's first bytes match no supported media type and its extension "
                "gives none; if it is supported, set media_type to one of "
                + ", ".join(sorted(MEDIA_TYPES)),
            )
        return media_type
    if declared_type is None or declared_type == sniffed:
        return sniffed
    if (declared_type, sniffed) in _COMPATIBLE_TYPES:
        return declared_type
    return _reject(
        TYPE_MISMATCH,
        f"media_type is {declared_type} but the file's bytes are {sniffed} (X refuses a type "
        f"that does not match the bytes); set media_type to {sniffed} or leave it empty",
    )


def _probe_file(full_path: str) -> tuple[int, bytes]:
    """(size, first bytes) of a regular file: one open, one fstat, at most one read.

    Opened non-blocking so a FIFO in the manifest cannot hang the run; it is then refused as
    not a regular file before anything is read.
    """
    try:
        fd = os.open(full_path, _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        _reject(MISSING_FILE, f"no file at {_shown(full_path)}; fix the path")
    except ValueError as exc:
        _reject(UNREADABLE_FILE, f"the path cannot be opened ({exc}); fix the path")
    except OSError as exc:
        _reject(UNREADABLE_FILE, f"cannot open the file ({_reason(exc)}); check its permissions")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            _reject(
                UNREADABLE_FILE,
                f"{_kind_of(info.st_mode)}, not a file; point the row at a media file",
            )
        head = os.read(fd, HEAD_BYTES) if info.st_size else b""
    except OSError as exc:
        _reject(UNREADABLE_FILE, f"cannot read the file ({_reason(exc)})")
    finally:
        os.close(fd)
    return info.st_size, head


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "the path is a folder"
    if stat.S_ISFIFO(mode):
        return "the path is a pipe"
    return "the path is a device or socket"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# A manifest repeats a handful of types and categories over and over: each combination is
# checked once (a bad one raises, which is not cached, so it is reported for every row).
@lru_cache(maxsize=256)
def _category_and_limit(
    media_type: str, declared: str | None, default: str | None
) -> tuple[str, int]:
    """The row's category, else the run's default, else the type's usual one (it must fit),
    and the most bytes that category takes."""
    category = declared or default or infer_category(media_type)
    allowed = categories_for(media_type)
    if category is None:
        _reject(
            MISSING_FIELD,
            f"X documents no media_category for {media_type}; set media_category "
            f"(one of {', '.join(sorted(allowed))})",
        )
    if category not in allowed:
        source = "" if declared else " (the run's default category)"
        _reject(
            CATEGORY_MISMATCH,
            f"media_category {category}{source} does not fit {media_type}; "
            f"use {' or '.join(sorted(allowed))}",
        )
    return category, min(CATEGORY_SIZE_LIMITS.get(category, TOTAL_BYTES_MAX), TOTAL_BYTES_MAX)


def _reject_too_large(total_bytes: int, category: str, media_type: str, limit: int) -> NoReturn:
    """Refuse what the category's limit (and the API's own bound) would refuse."""
    _reject(
        TOO_LARGE,
        f"the media is {_size(total_bytes)} but {category} allows {_size(limit)}; "
        + _shrink_hint(category, media_type),
    )


def _shrink_hint(category: str, media_type: str) -> str:
    if category in _IMAGE_CATEGORIES and media_type == "image/gif":
        return "use media_category tweet_gif or dm_gif (15 MiB), or shrink it"
    if category in _IMAGE_CATEGORIES:
        return "resize or recompress it"
    if category in _GIF_CATEGORIES:
        return "shorten or shrink the GIF, or convert it to a video (tweet_video allows 512 MiB)"
    return "shorten or recompress it"


def _size(total_bytes: int) -> str:
    mib = total_bytes / MIB
    return f"{mib:.0f} MiB" if total_bytes % MIB == 0 else f"{mib:.1f} MiB ({total_bytes:,} bytes)"


def _shown(value: object, limit: int = 80) -> str:
    """A value for a message, cut short so one absurd cell cannot flood the results."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _declared_media_type(value: object) -> str | None:
    """A declared media type, normalised to lower case; empty means not declared."""
    if value is None:
        return None
    return _media_type_text(value) if type(value) is str else _media_type_value(value)


@lru_cache(maxsize=256)
def _media_type_text(value: str) -> str | None:
    return _media_type_value(value)


def _media_type_value(value: object) -> str | None:
    text = value.strip().lower() if isinstance(value, str) else None
    if text == "":
        return None
    if text in MEDIA_TYPES:
        return text
    hint = _TYPE_HINTS.get(text or "")
    advice = f"did you mean {hint}?" if hint else "use one of " + ", ".join(sorted(MEDIA_TYPES))
    return _reject(
        BAD_FIELD,
        f"media_type {_shown(value)!r} is not supported; {advice}, or leave it empty to detect "
        "it from the file",
    )


def _declared_category(value: object) -> str | None:
    """A declared media category, lower-cased; empty means not declared."""
    if value is None:
        return None
    return _category_text(value) if type(value) is str else _category_value(value)


@lru_cache(maxsize=256)
def _category_text(value: str) -> str | None:
    return _category_value(value)


def _category_value(value: object) -> str | None:
    text = value.strip().lower() if isinstance(value, str) else None
    if text == "":
        return None
    if text in MEDIA_CATEGORIES:
        return text
    return _reject(
        BAD_FIELD,
        f"media_category {_shown(value)!r} is not one of "
        f"{', '.join(sorted(MEDIA_CATEGORIES))}; fix it or leave it empty",
    )


def _declared_total_bytes(value: object) -> int | None:
    """A declared size: whole bytes from a digit string, a JSON integer or an integral float."""
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    size = _whole_number(value)
    if size is None or size < 0:
        _reject(
            BAD_FIELD,
            f"total_bytes {_shown(value)!r} is not a whole number of bytes; write digits only "
            "(for example 1048576), or leave it empty to use the file's size",
        )
    if size > TOTAL_BYTES_MAX:
        _reject(
            BAD_FIELD,
            f"total_bytes {_shown(value)} is above the API maximum of {TOTAL_BYTES_MAX}; "
            "check the value",
        )
    return size


def _whole_number(value: object) -> int | None:
    if isinstance(value, str):  # first: every CSV cell is one
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text) if len(text) <= _MAX_SIZE_DIGITS else TOTAL_BYTES_MAX + 1
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return None


def _shared_flag(value: object) -> bool | None:
    """``shared`` as a bool: JSON true/false, or true/false, yes/no, 1/0 in any case."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return None
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return _reject(
        BAD_FIELD, f"shared {_shown(value)!r} is not a yes/no value; write true or false"
    )


def _additional_owners(value: object) -> tuple[str, ...]:
    """User ids from a string (split on spaces, ``;`` or ``,``) or a JSON list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        ids = [part for part in _OWNER_SEPARATORS.split(value) if part]
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        ids = [item.strip() for item in value]
    else:
        _reject(
            BAD_FIELD,
            "additional_owners must be a list of user ids written as strings "
            '(for example ["12345", "67890"]); quote numeric ids, as JSON numbers lose digits',
        )
    bad = [owner for owner in ids if not USER_ID_PATTERN.fullmatch(owner)]
    if bad:
        _reject(
            BAD_FIELD,
            f"additional_owners has {_shown(bad[0])!r}, which is not a user id (1 to 19 digits); "
            "separate ids with spaces or ';'",
        )
    return tuple(ids)
