"""The results file: one JSON line per manifest row, written by exactly one task.

The line layout is a contract users build on (see the README): ``key``, ``row``, ``path``,
``account``, ``status`` always; the media id, key and absolute expiry for ``ok``; an ``error``
object for ``failed`` and ``invalid``; unknown manifest columns under ``meta``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream

from batcher.errors import ResultsError
from batcher.models import ErrorInfo, Initialized, InvalidRow, Status, WorkItem

MAX_LINES_PER_WRITE: Final = 1024
DEFAULT_FSYNC_INTERVAL_S: Final = 1.0

Record = dict[str, Any]


def rfc3339_utc(epoch_s: float) -> str:
    """``2026-12-01T18:20:00Z``; rounded down to the second, so never later than the truth."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_s)))


def _row_fields(
    row: int, key: str | None, path: str | None, account: str | None, status: Status
) -> Record:
    return {"key": key, "row": row, "path": path, "account": account, "status": status.value}


def _request_fields(item: WorkItem) -> Record:
    request = item.request
    return {
        "media_type": request.media_type,
        "media_category": request.media_category,
        "total_bytes": request.total_bytes,
    }


def _error_fields(error: ErrorInfo) -> Record:
    return {
        "type": error.type,
        "title": error.title,
        "detail": error.detail,
        "retryable": error.retryable,
    }


def _with_meta(record: Record, meta: Mapping[str, object]) -> Record:
    if meta:
        record["meta"] = dict(meta)
    return record


def ok_record(
    item: WorkItem, answer: Initialized, *, sent_at: float, attempts: int, http_status: int
) -> Record:
    """The line for a row that got a media id; ``expires_at`` counts from the send time."""
    record = _row_fields(item.row, item.key, item.path, item.account, Status.OK)
    record["media_id"] = answer.media_id
    record["media_key"] = answer.media_key
    record["expires_after_secs"] = answer.expires_after_secs
    expires = answer.expires_after_secs
    record["expires_at"] = None if expires is None else rfc3339_utc(sent_at + expires)
    record.update(_request_fields(item))
    record["attempts"] = attempts
    record["http_status"] = http_status
    if answer.warnings:
        record["warnings"] = [dict(warning) for warning in answer.warnings]
    return _with_meta(record, item.meta)


def failed_record(
    item: WorkItem, error: ErrorInfo, *, attempts: int, http_status: int | None
) -> Record:
    """The line for a row whose requests did not yield a media id."""
    record = _row_fields(item.row, item.key, item.path, item.account, Status.FAILED)
    record["error"] = _error_fields(error)
    record.update(_request_fields(item))
    record["attempts"] = attempts
    record["http_status"] = http_status
    return _with_meta(record, item.meta)


def invalid_record(invalid: InvalidRow) -> Record:
    """The line for a row rejected before any request."""
    record = _row_fields(invalid.row, invalid.key, invalid.path, invalid.account, Status.INVALID)
    record["error"] = _error_fields(invalid.error)
    record["attempts"] = 0
    return _with_meta(record, invalid.meta)


@dataclass(slots=True)
class Tally:
    """Live counts of written lines, read by the progress display and the summary."""

    ok: int = 0
    failed: int = 0
    invalid: int = 0

    @property
    def done(self) -> int:
        """Rows with a line in the results file."""
        return self.ok + self.failed + self.invalid

    def count(self, status: str) -> None:
        """Add one line of ``status``."""
        if status == "ok":
            self.ok += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.invalid += 1


class ResultsWriter:
    """Appends records to the results file in batches, flushing each batch and fsyncing often.

    Only :meth:`consume` writes, so lines never interleave. Any I/O error becomes a
    :class:`~batcher.errors.ResultsError` naming the file.
    """

    __slots__ = ("_file", "_fsync_interval_s", "_last_fsync", "path", "tally")

    path: Path
    tally: Tally
    _file: IO[bytes] | None
    _fsync_interval_s: float
    _last_fsync: float

    def __init__(self, path: Path, *, fsync_interval_s: float = DEFAULT_FSYNC_INTERVAL_S) -> None:
        self.path = path
        self.tally = Tally()
        self._file = None
        self._fsync_interval_s = fsync_interval_s
        self._last_fsync = time.monotonic()

    def __repr__(self) -> str:
        return f"<ResultsWriter {str(self.path)!r} {self.tally}>"

    def open(self) -> None:
        """Open the file for appending (created if absent)."""
        try:
            self._file = self.path.open("ab")
        except OSError as exc:
            raise ResultsError(f"cannot open results file {self.path}: {exc.strerror}") from exc

    async def consume(self, records: MemoryObjectReceiveStream[Record]) -> None:
        """Write every record received until the stream ends; batch what is already queued."""
        async with records:
            async for record in records:
                batch = [record]
                while len(batch) < MAX_LINES_PER_WRITE:
                    try:
                        batch.append(records.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._write_batch(batch)

    async def _write_batch(self, batch: list[Record]) -> None:
        data = b"".join(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in batch)
        self._write(data)
        for record in batch:
            self.tally.count(record["status"])
        if time.monotonic() - self._last_fsync >= self._fsync_interval_s:
            await anyio.to_thread.run_sync(self._fsync)

    def _write(self, data: bytes) -> None:
        if self._file is None:
            raise RuntimeError("ResultsWriter used before open()")
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            raise ResultsError(f"cannot write results file {self.path}: {exc.strerror}") from exc

    def _fsync(self) -> None:
        if self._file is None:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise ResultsError(f"cannot fsync results file {self.path}: {exc.strerror}") from exc
        self._last_fsync = time.monotonic()

    def close(self) -> None:
        """Flush, fsync and close (safe to call twice)."""
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            raise ResultsError(f"cannot flush results file {self.path}: {exc.strerror}") from exc
        finally:
            file.close()
