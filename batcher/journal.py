"""The results file read back as a journal: what an earlier run already settled.

The latest line per key wins. A key is settled when its latest line is ``ok`` and the upload
session stays valid for at least ``min_validity_s``, or a failure that a retry would not fix
(unless ``retry_failed``). ``invalid`` rows are settled only while they stay invalid: the reader
inspects them again (it costs no request), so a fixed row runs. Everything else runs again.

A crash can leave a torn last line; it is reported, cut off so the file stays appendable, and
its row simply runs again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Final

import orjson

from batcher.errors import ResultsError

log = logging.getLogger(__name__)

READ_CHUNK_BYTES: Final = 1 << 20
DEFAULT_MIN_VALIDITY_S: Final = 3600.0


class Settled(StrEnum):
    """Why an earlier run's line means a row needs no request now."""

    OK = "ok"
    FAILED = "failed"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumePolicy:
    """Which earlier outcomes a run keeps."""

    min_validity_s: float = DEFAULT_MIN_VALIDITY_S
    retry_failed: bool = False


@dataclass(slots=True, kw_only=True)
class Journal:
    """The settled keys of a results file, and what reading it found."""

    settled: dict[str, Settled] = field(default_factory=dict)
    lines: int = 0
    unreadable_lines: int = 0
    torn_bytes: int = 0

    def settled_as(self, key: str | None) -> Settled | None:
        """Why ``key`` needs no request, or None if it must run."""
        return None if key is None else self.settled.get(key)


def row_key(key: str | None, row: int) -> str:
    """The journal key of a row: its own key, or its row number when it has none."""
    return key if key is not None else f"\x00row:{row}"


def duplicate_key(row: int) -> str:
    """The journal key of a row rejected for repeating another row's key.

    Such a line must not speak for the key itself: the key belongs to the first row.
    """
    return f"\x00duplicate:{row}"


def load_journal(path: Path, *, policy: ResumePolicy, now: float) -> Journal:
    """Read ``path`` (absent: an empty journal) and cut off a torn last line."""
    journal = Journal()
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return journal
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror}") from exc
    with handle:
        complete_bytes = _read_lines(handle, journal, policy, now)
    if journal.torn_bytes:
        _cut_torn_tail(path, complete_bytes, journal.torn_bytes)
    if journal.unreadable_lines:
        log.warning(
            "%s: ignored %d unreadable line(s); their rows run again",
            path,
            journal.unreadable_lines,
        )
    return journal


def _read_lines(handle: BinaryIO, journal: Journal, policy: ResumePolicy, now: float) -> int:
    """Feed every complete line to the journal; return the size of the complete part."""
    complete_bytes = 0
    tail = b""
    while chunk := handle.read(READ_CHUNK_BYTES):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            complete_bytes += len(line) + 1
            _note_line(journal, line, policy, now)
    journal.torn_bytes = len(tail)
    return complete_bytes


def _note_line(journal: Journal, line: bytes, policy: ResumePolicy, now: float) -> None:
    if not line.strip():
        return
    journal.lines += 1
    try:
        record = orjson.loads(line)
        key = journal_key_of(record)
        settled = settled_by(record, policy, now)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        journal.unreadable_lines += 1
        return
    if settled is None:
        journal.settled.pop(key, None)
    else:
        journal.settled[key] = settled


def journal_key_of(record: dict[str, object]) -> str:
    """Which journal entry a results line speaks for."""
    row = record["row"]
    if not isinstance(row, int):
        raise TypeError("row must be an integer")
    error = record.get("error")
    if isinstance(error, dict) and error.get("type") == "duplicate_key":
        return duplicate_key(row)
    key = record["key"]
    return row_key(key if isinstance(key, str) else None, row)


def settled_by(record: dict[str, object], policy: ResumePolicy, now: float) -> Settled | None:
    """Whether one results line settles its row (None: the row must run again)."""
    status = record["status"]
    if status == "ok":
        expires_at = record.get("expires_at")
        if not isinstance(expires_at, str):
            return None
        valid_until = datetime.fromisoformat(expires_at).timestamp()
        return Settled.OK if valid_until - now >= policy.min_validity_s else None
    if status == "invalid":
        return Settled.INVALID
    error = record.get("error")
    retryable = isinstance(error, dict) and error.get("retryable") is True
    if status == "failed" and not retryable and not policy.retry_failed:
        return Settled.FAILED
    return None


def _cut_torn_tail(path: Path, complete_bytes: int, torn_bytes: int) -> None:
    log.warning(
        "%s: the last line was cut off (%d bytes, a crash mid-write); "
        "removing it so the file stays appendable, its row runs again",
        path,
        torn_bytes,
    )
    try:
        with path.open("r+b") as handle:
            handle.truncate(complete_bytes)
            os.fsync(handle.fileno())
    except OSError as exc:
        raise ResultsError(f"cannot repair results file {path}: {exc.strerror}") from exc
