"""The worker pool: manifest reader → N workers → one results writer, joined by bounded streams.

    reader ──WorkItem──▶ workers (N) ──record──▶ writer ──▶ results.jsonl
       └─────────────────── invalid rows ───────────▲

Every stream is bounded, so memory does not grow with the manifest; a row's failure is a
record, never an exception, so one bad row cannot cancel the task group.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Final

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from batcher.api import ClientConfig, InitializeClient
from batcher.auth import Account, AccountSet
from batcher.errors import ApiError, BadResponse, BatcherError, RequestTimeout
from batcher.manifest import Manifest, count_records, open_manifest
from batcher.media import inspect_record
from batcher.models import ErrorInfo, Initialized, InvalidRow, ManifestRecord, WorkItem
from batcher.ratelimit import WindowGate
from batcher.results import Record, ResultsWriter, Tally, failed_record, invalid_record, ok_record

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY: Final = 64
DEFAULT_MAX_ATTEMPTS: Final = 5
READ_BATCH_ROWS: Final = 256
# A row may meet many 429s while the gate learns the window; this bound only stops a server
# that answers 429 forever from holding a row (and the run) hostage.
MAX_RATE_LIMITED_RETRIES: Final = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """What the pool does with each row: how many at once, how often to retry, how long to wait."""

    concurrency: int = DEFAULT_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    default_category: str | None = None
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    fsync_interval_s: float = 1.0
    manifest_format: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What a finished run did, for the summary line and the exit code."""

    ok: int
    failed: int
    invalid: int
    requests: int
    rate_limited: int
    waited_s: float
    elapsed_s: float
    results_path: Path

    @property
    def rows(self) -> int:
        """Rows with a line written by this run."""
        return self.ok + self.failed + self.invalid

    @property
    def exit_code(self) -> int:
        """0 when every row got a media id, 1 when some failed or were invalid."""
        return 0 if self.failed == 0 and self.invalid == 0 else 1


@dataclass(frozen=True, slots=True, kw_only=True)
class _Attempt:
    """One HTTP request for a row and what came of it."""

    sent_at: float
    http_status: int | None
    result: Initialized | ErrorInfo
    retry_after_s: float | None = None


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    rate_limited: int = 0
    seen_keys: dict[str, int] = field(default_factory=dict)


class Job:
    """One run of a manifest into a results file; :meth:`run` does the work."""

    def __init__(
        self,
        *,
        manifest: str,
        results_path: Path,
        accounts: AccountSet,
        client_config: ClientConfig,
        config: RunConfig = RunConfig(),
        stdin: BinaryIO | None = None,
    ) -> None:
        self.manifest = manifest
        self.config = config
        self.total: int | None = None
        self.started_at = time.monotonic()
        self.gates = {name: WindowGate(name) for name in accounts.names}
        self._accounts = accounts
        self._client_config = client_config
        self._stdin = stdin
        self._writer = ResultsWriter(results_path, fsync_interval_s=config.fsync_interval_s)
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"<Job {self.manifest!r} → {str(self._writer.path)!r} {self.tally}>"

    @property
    def tally(self) -> Tally:
        """Lines written so far, by status."""
        return self._writer.tally

    async def run(self) -> RunSummary:
        """Read, inspect, initialize and record every row of the manifest."""
        self.started_at = time.monotonic()
        manifest = open_manifest(self.manifest, fmt=self.config.manifest_format, stdin=self._stdin)
        self._writer.open()
        try:
            with manifest:
                await self._run_pipeline(manifest)
        except BaseExceptionGroup as group:
            raise first_batcher_error(group) or group from None
        finally:
            self._writer.close()
        return self._summary()

    async def _run_pipeline(self, manifest: Manifest) -> None:
        size = self.config.concurrency
        work_send, work_receive = anyio.create_memory_object_stream[WorkItem](size)
        record_send, record_receive = anyio.create_memory_object_stream[Record](size * 4)
        async with InitializeClient(self._client_config) as client, anyio.create_task_group() as tg:
            tg.start_soon(self._count_total)
            tg.start_soon(self._writer.consume, record_receive)
            for _ in range(size):
                tg.start_soon(self._work, client, work_receive.clone(), record_send.clone())
            work_receive.close()
            tg.start_soon(self._read, manifest, work_send, record_send)

    async def _count_total(self) -> None:
        if self.manifest != "-":
            self.total = await anyio.to_thread.run_sync(
                lambda: count_records(self.manifest, fmt=self.config.manifest_format)
            )

    async def _read(
        self,
        manifest: Manifest,
        work: ObjectSendStream[WorkItem],
        records: ObjectSendStream[Record],
    ) -> None:
        rows = iter(manifest)
        base_dir = manifest.base_dir
        async with work, records:
            while batch := await anyio.to_thread.run_sync(self._inspect_batch, rows, base_dir):
                for outcome in batch:
                    outcome = self._check_key_and_account(outcome)
                    if isinstance(outcome, WorkItem):
                        await work.send(outcome)
                    else:
                        await records.send(invalid_record(outcome))

    def _inspect_batch(
        self, rows: Iterator[ManifestRecord], base_dir: Path
    ) -> list[WorkItem | InvalidRow]:
        """Read and inspect the next rows in a worker thread (file I/O would block the loop)."""
        category = self.config.default_category
        return [
            inspect_record(record, base_dir=base_dir, default_category=category)
            for record in islice(rows, READ_BATCH_ROWS)
        ]

    def _check_key_and_account(self, outcome: WorkItem | InvalidRow) -> WorkItem | InvalidRow:
        key = outcome.key
        if key is not None:
            first_row = self._counters.seen_keys.setdefault(key, outcome.row)
            if first_row != outcome.row:
                return _invalid(
                    outcome, "duplicate_key", "Repeated key", _duplicate_detail(outcome, first_row)
                )
        if isinstance(outcome, WorkItem) and self._accounts.get(outcome.account) is None:
            return _invalid(
                outcome,
                "unknown_account",
                "Unknown account",
                _account_detail(outcome, self._accounts),
            )
        return outcome

    async def _work(
        self,
        client: InitializeClient,
        items: ObjectReceiveStream[WorkItem],
        records: ObjectSendStream[Record],
    ) -> None:
        async with items, records:
            async for item in items:
                await records.send(await self._initialize_row(client, item))

    async def _initialize_row(self, client: InitializeClient, item: WorkItem) -> Record:
        account = self._accounts.get(item.account)
        assert account is not None  # the reader turned unknown accounts into invalid rows
        gate = self.gates[account.name]
        attempts = failures = rate_limited = 0
        while True:
            await gate.acquire()
            attempt = await self._send_once(client, gate, account, item)
            attempts += 1
            result = attempt.result
            if isinstance(result, Initialized):
                return ok_record(
                    item,
                    result,
                    sent_at=attempt.sent_at,
                    attempts=attempts,
                    http_status=attempt.http_status or 200,
                )
            if attempt.http_status == 429 and rate_limited < MAX_RATE_LIMITED_RETRIES:
                rate_limited += 1
                continue  # the gate holds this row until the window resets
            failures += 1
            if not result.retryable or failures >= self.config.max_attempts:
                return failed_record(
                    item, result, attempts=attempts, http_status=attempt.http_status
                )
            await anyio.sleep(self._backoff_s(failures, attempt.retry_after_s))

    async def _send_once(
        self, client: InitializeClient, gate: WindowGate, account: Account, item: WorkItem
    ) -> _Attempt:
        sent_at = time.time()
        self._counters.requests += 1
        try:
            answer = await client.initialize(item.request, authorization=account.authorization)
        except ApiError as exc:
            gate.release(None)
            return _Attempt(sent_at=sent_at, http_status=None, result=transport_error_info(exc))
        except BaseException:
            gate.release(None)
            raise
        rate_limited = answer.http_status == 429
        gate.release(answer.rate, rate_limited=rate_limited)
        self._counters.rate_limited += rate_limited
        return _Attempt(
            sent_at=sent_at,
            http_status=answer.http_status,
            result=answer.result,
            retry_after_s=answer.rate.retry_after_s,
        )

    def _backoff_s(self, failures: int, retry_after_s: float | None) -> float:
        """Capped exponential backoff with full jitter; never shorter than ``Retry-After``."""
        ceiling = min(self.config.backoff_cap_s, self.config.backoff_base_s * 2 ** (failures - 1))
        delay = random.uniform(0, ceiling)
        return max(delay, retry_after_s or 0.0)

    def _summary(self) -> RunSummary:
        tally = self.tally
        return RunSummary(
            ok=tally.ok,
            failed=tally.failed,
            invalid=tally.invalid,
            requests=self._counters.requests,
            rate_limited=self._counters.rate_limited,
            waited_s=sum(gate.waited_s for gate in self.gates.values()),
            elapsed_s=time.monotonic() - self.started_at,
            results_path=self._writer.path,
        )


def first_batcher_error(group: BaseExceptionGroup[BaseException]) -> BatcherError | None:
    """The first :class:`BatcherError` inside a task group's exception group, if any.

    Callers catch ``ResultsError`` and friends, not the group anyio wraps them in.
    """
    matched = group.subgroup(BatcherError)
    while matched is not None:
        first = matched.exceptions[0]
        if isinstance(first, BatcherError):
            return first
        matched = first if isinstance(first, BaseExceptionGroup) else None
    return None


def transport_error_info(exc: ApiError) -> ErrorInfo:
    """The record form of a request that got no usable answer (all of them worth a retry)."""
    if isinstance(exc, RequestTimeout):
        return ErrorInfo(type="timeout", title="Request timed out", detail=str(exc), retryable=True)
    if isinstance(exc, BadResponse):
        return ErrorInfo(
            type="bad_response", title="Malformed answer", detail=str(exc), retryable=True
        )
    return ErrorInfo(
        type="connection_error", title="Connection failed", detail=str(exc), retryable=True
    )


def _invalid(outcome: WorkItem | InvalidRow, slug: str, title: str, detail: str) -> InvalidRow:
    return InvalidRow(
        row=outcome.row,
        key=outcome.key,
        path=outcome.path,
        account=outcome.account,
        meta=outcome.meta,
        error=ErrorInfo(type=slug, title=title, detail=detail, retryable=False),
    )


def _duplicate_detail(outcome: WorkItem | InvalidRow, first_row: int) -> str:
    return (
        f"row {outcome.row}: key {outcome.key!r} was already used by row {first_row}; "
        "give every row a unique key (or path) and run again"
    )


def _account_detail(outcome: WorkItem | InvalidRow, accounts: AccountSet) -> str:
    known = ", ".join(sorted(accounts.names))
    return (
        f"row {outcome.row}: account {outcome.account!r} is not configured (known: {known}); "
        "fix the account column or add the account to the accounts file"
    )
