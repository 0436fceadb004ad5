"""The results file: one JSON line per manifest row, written by exactly one task.

The line layout is a contract users build on (see the README): ``key``, ``row``, ``path``,
``account``, ``status`` always; the media id, key and absolute expiry for ``ok``; an ``error``
object for ``failed`` and ``invalid``; unknown manifest columns under ``meta``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream

from batcher.errors import ResultsError, ResultsWriteError
from batcher.models import ErrorInfo, Initialized, InvalidRow, Status, WorkItem

MAX_LINES_PER_WRITE: Final = 1024
DEFAULT_FSYNC_INTERVAL_S: Final = 1.0

Record = dict[str, Any]

_OK: Final = Status.OK.value


def rfc3339_utc(epoch_s: float) -> str:
    """``2026-12-01T18:20:00Z``; rounded down to the second, so never later than the truth."""
    return _rfc3339_second(int(epoch_s))


@functools.lru_cache(maxsize=8)
def _rfc3339_second(epoch_s: int) -> str:
    # Thousands of rows a second share the same few seconds: format each second once.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


INPUT_FIELDS: Final = (
    "media_type",
    "media_category",
    "total_bytes",
    "additional_owners",
    "shared",
)


def _row_fields(
    row: int, key: str | None, path: str | None, account: str | None, status: Status
) -> Record:
    return {"key": key, "row": row, "path": path, "account": account, "status": status.value}


def _input_fields(invalid: InvalidRow) -> Record:
    """The row's own values as the manifest gave them, so a fixed manifest can be rebuilt."""
    source = invalid.source
    if source is None:
        return {}
    values = {name: getattr(source, name) for name in INPUT_FIELDS}
    return {name: value for name, value in values.items() if value is not None}


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
    # Built once per row: one literal, not the helpers the rarer lines share.
    expires, request = answer.expires_after_secs, item.request
    record: Record = {
        "key": item.key,
        "row": item.row,
        "path": item.path,
        "account": item.account,
        "status": _OK,
        "media_id": answer.media_id,
        "media_key": answer.media_key,
        "expires_after_secs": expires,
        # rfc3339_utc(sent_at + expires), one call fewer
        "expires_at": None if expires is None else _rfc3339_second(int(sent_at + expires)),
        # The request's fields, as InitializeRequest.to_body() gives them, without its
        # call and dict (the optional ones below): this line is built for every row.
        "media_type": request.media_type,
        "media_category": request.media_category,
        "total_bytes": request.total_bytes,
    }
    if request.additional_owners or request.shared is not None:
        record.update(request.to_body())
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
    record.update(item.request.to_body())
    record["attempts"] = attempts
    record["http_status"] = http_status
    return _with_meta(record, item.meta)


def invalid_record(invalid: InvalidRow) -> Record:
    """The line for a row rejected before any request."""
    record = _row_fields(invalid.row, invalid.key, invalid.path, invalid.account, Status.INVALID)
    record["error"] = _error_fields(invalid.error)
    record["attempts"] = 0
    given = _input_fields(invalid)
    if given:
        record["input"] = given
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
        if status == _OK:
            self.ok += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.invalid += 1


@dataclass(frozen=True, slots=True, kw_only=True)
class FsyncPolicy:
    """When written lines are forced to disk: after so many rows or seconds, and at close."""

    every_rows: int | None = None
    every_s: float | None = DEFAULT_FSYNC_INTERVAL_S

    def due(self, rows: int, elapsed_s: float) -> bool:
        """True when either threshold is reached."""
        return (self.every_rows is not None and rows >= self.every_rows) or (
            self.every_s is not None and elapsed_s >= self.every_s
        )


class ResultsWriter:
    """Appends records to the results file, one ``write`` per batch, fsynced by policy.

    Only :meth:`consume` writes, so lines never interleave. A failed write is cut back to the
    last complete line before the error is raised, so the file never holds a half line followed
    by more lines. Any I/O error becomes a :class:`~batcher.errors.ResultsError` naming the file.
    """

    __slots__ = (
        "_fd",
        "_fsync",
        "_last_fsync",
        "_rows_since_fsync",
        "_size",
        "path",
        "run_id",
        "tally",
    )

    path: Path
    run_id: str
    tally: Tally
    _fd: int | None
    _fsync: FsyncPolicy
    _last_fsync: float
    _rows_since_fsync: int
    _size: int

    def __init__(self, path: Path, *, run_id: str, fsync: FsyncPolicy = FsyncPolicy()) -> None:
        self.path = path
        self.run_id = run_id
        self.tally = Tally()
        self._fd = None
        self._fsync = fsync or FsyncPolicy()
        self._last_fsync = time.monotonic()
        self._rows_since_fsync = 0
        self._size = 0

    def __repr__(self) -> str:
        return f"<ResultsWriter {str(self.path)!r} run={self.run_id} {self.tally}>"

    def open(self) -> None:
        """Open the file for appending (created if absent)."""
        try:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            self._size = os.fstat(self._fd).st_size
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
        run_id, dumps, option = self.run_id, orjson.dumps, orjson.OPT_APPEND_NEWLINE
        lines: list[bytes] = []
        others: list[str] = []
        ok = 0
        for record in batch:
            record["run"] = run_id
            lines.append(dumps(record, option=option))
            if (status := record["status"]) == _OK:
                ok += 1
            else:
                others.append(status)
        self._write(b"".join(lines))
        self.tally.ok += ok  # counted once written, not before
        for status in others:
            self.tally.count(status)
        self._rows_since_fsync += len(batch)
        if self._fsync.due(self._rows_since_fsync, time.monotonic() - self._last_fsync):
            await anyio.to_thread.run_sync(self._sync)

    def _write(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise ResultsError(f"results file {self.path} is not open")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            self._cut_back_to_last_line(fd)
            raise ResultsWriteError(
                f"cannot write results file {self.path}: {exc.strerror}; "
                "the run stopped, fix the cause and run the same command again to resume"
            ) from exc
        self._size += len(data)

    def _cut_back_to_last_line(self, fd: int) -> None:
        """Best effort: drop the part of a batch that did get written."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self._size)

    def _sync(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise ResultsWriteError(f"cannot fsync {self.path}: {exc.strerror}") from exc
        self._last_fsync = time.monotonic()
        self._rows_since_fsync = 0

    def close(self) -> None:
        """Fsync and close (safe to call twice)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            raise ResultsWriteError(f"cannot flush {self.path}: {exc.strerror}") from exc
        finally:
            os.close(fd)
