"""The run: manifest reader → per-account dispatcher → N workers → one results writer.

    reader (thread) ──WorkItem──▶ Dispatcher ──▶ workers (N) ──record──▶ writer ──▶ results.jsonl
          └───────────────────── invalid rows ──────────────────────────▲

Memory stays bounded: the dispatcher's queues and the record stream have fixed sizes; the
only state that grows with the manifest is the triage's index of keys. A row's failure is a
record, never an exception, so one bad row cannot cancel the task group.

Stopping: :meth:`Job.stop` (SIGINT/SIGTERM, ``max_duration_s``, the failure-rate breaker)
hands out no more rows, lets requests in flight finish within ``grace_s`` and then cancels
them; :meth:`Job.abort` cancels at once. Either way every line written is whole, and rows
without a line run again when the same command is repeated.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from batcher.api import ClientConfig, InitializeClient
from batcher.auth import Account, AccountSet
from batcher.auth_failures import credentials_scheme, describe_auth_failure
from batcher.contract import INITIALIZE_PATH
from batcher.dispatch import Dispatcher, Pending
from batcher.errors import ApiError, BadResponse, BatcherError, CredentialsError, RequestTimeout
from batcher.journal import Journal, ResumePolicy, Settled, load_journal
from batcher.keyindex import KeyIndex
from batcher.manifest import Manifest, count_records, open_manifest, open_manifest_keys
from batcher.models import ErrorInfo, Initialized, InvalidRow, ManifestRecord, WorkItem
from batcher.ratelimit import Gate, build_gates
from batcher.results import (
    FsyncPolicy,
    Record,
    ResultsWriter,
    Tally,
    failed_record,
    invalid_record,
    ok_record,
)
from batcher.triage import Skip, Triage, Triaged

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY: Final = 64
DEFAULT_MAX_ATTEMPTS: Final = 5
DEFAULT_GRACE_S: Final = 10.0
DEFAULT_AUTH_FAILURE_LIMIT: Final = 5
DEFAULT_FAILURE_RATE_MIN_ROWS: Final = 100
READ_BATCH_ROWS: Final = 256
READ_AHEAD_PER_WORKER: Final = 4
# A row may meet many 429s while the gate learns the window; this bound only stops a server
# that answers 429 forever from holding a row (and the run) hostage.
MAX_RATE_LIMITED_RETRIES: Final = 50
AUTH_STATUSES: Final = frozenset({401, 403})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """How the pool works through the rows: pace, retries, resume, durability and stopping."""

    concurrency: int = DEFAULT_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    default_category: str | None = None
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    fsync: FsyncPolicy = field(default_factory=FsyncPolicy)
    manifest_format: str | None = None
    resume: ResumePolicy = field(default_factory=ResumePolicy)
    grace_s: float = DEFAULT_GRACE_S
    max_duration_s: float | None = None
    max_failure_rate: float | None = None
    failure_rate_min_rows: int = DEFAULT_FAILURE_RATE_MIN_ROWS
    auth_failure_limit: int = DEFAULT_AUTH_FAILURE_LIMIT
    buffer_per_account: int = 4096
    max_rate: float | None = None
    app_daily_limit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What a finished run did, for the summary and the exit code."""

    ok: int
    failed: int
    invalid: int
    skipped: Mapping[Settled, int]
    requests: int
    rate_limited: int
    waited_s: float
    elapsed_s: float
    results_path: Path
    total: int | None = None
    stop_reason: str | None = None
    stopped_accounts: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """Rows with a line written by this run."""
        return self.ok + self.failed + self.invalid

    @property
    def unfinished(self) -> int | None:
        """Rows of the manifest neither written nor skipped (known when the total is)."""
        if self.total is None:
            return None
        return max(0, self.total - self.rows - sum(self.skipped.values()))

    @property
    def exit_code(self) -> int:
        """4 auth refused · 3 stopped early (resumable) · 1 rows failed or invalid · 0 all ok."""
        if self.stopped_accounts:
            return 4
        if self.stop_reason is not None:
            return 3
        return 0 if self.failed == 0 and self.invalid == 0 else 1


class _Attempt(NamedTuple):
    """One HTTP request for a row and what came of it (a NamedTuple: built per request)."""

    sent_at: float
    http_status: int | None
    result: Initialized | ErrorInfo
    authorization: str
    retry_after_s: float | None = None


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    rate_limited: int = 0
    ok: int = 0
    failed: int = 0
    skipped: Counter[Settled] = field(default_factory=Counter)
    auth_failures_in_a_row: Counter[str] = field(default_factory=Counter)


RecordSink = MemoryObjectSendStream[Record]
"""Where workers and the reader put finished lines, for the one writer task."""


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
        self.gates: dict[str, Gate] = dict(
            build_gates(
                accounts.names,
                max_rate=config.max_rate,
                app_daily_limit=config.app_daily_limit,
            )
        )
        self.stop_reason: str | None = None
        self.stopped_accounts: list[str] = []
        self.run_id = uuid.uuid4().hex[:12]
        self._accounts = accounts
        # Dict lookups, not AccountSet.get calls, on the way of every row: a row's account
        # column (None: the default) to the account's name, and that name to the account.
        self._account_name: dict[str | None, str] = {None: accounts.default.name}
        self._account_name.update((name, name) for name in accounts.names)
        self._account_named = {name: accounts.get(name) for name in accounts.names}
        self._client_config = client_config
        # OAuth 1.0a signs the full request URL.
        self._url = client_config.base_url.rstrip("/") + INITIALIZE_PATH
        self._stdin = stdin
        self._writer = ResultsWriter(results_path, run_id=self.run_id, fsync=config.fsync)
        self._dispatcher = Dispatcher(self.gates, buffer_per_account=config.buffer_per_account)
        self._counters = _Counters()
        self._stopping = anyio.Event()
        self._work_scope: anyio.CancelScope | None = None
        self._work_group: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<Job {self.manifest!r} → {str(self._writer.path)!r} {self.tally}>"

    @property
    def tally(self) -> Tally:
        """Lines written so far, by status."""
        return self._writer.tally

    @property
    def skipped(self) -> int:
        """Rows an earlier run settled."""
        return sum(self._counters.skipped.values())

    def stop(self, reason: str) -> None:
        """Take no more rows; finish requests in flight within the grace period, then cancel."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.warning("stopping: %s", reason)
        self._dispatcher.stop()
        self._stopping.set()

    def abort(self, reason: str) -> None:
        """Cancel requests in flight at once; lines already written stay whole."""
        self.stop(reason)
        if self._work_scope is not None:
            self._work_scope.cancel()

    async def run(self) -> RunSummary:
        """Read, inspect, initialize and record every row not settled by an earlier run."""
        self.started_at = time.monotonic()
        journal = await anyio.to_thread.run_sync(self._load_journal)
        keys = await anyio.to_thread.run_sync(self._index_keys)
        manifest = open_manifest(self.manifest, fmt=self.config.manifest_format, stdin=self._stdin)
        self._writer.open()
        try:
            with manifest:
                await self._run_pipeline(manifest, journal, keys)
        except BaseExceptionGroup as group:
            raise first_batcher_error(group) or group from None
        finally:
            self._writer.close()
        return self._summary()

    def _load_journal(self) -> Journal:
        return load_journal(self._writer.path, policy=self.config.resume, now=time.time())

    def _index_keys(self) -> KeyIndex:
        """A first pass over the manifest: its exact row count and a compact key index.

        stdin can be read once only: there every key is remembered instead.
        """
        if self.manifest == "-":
            return KeyIndex()
        fmt = self.config.manifest_format
        expected = count_records(self.manifest, fmt=fmt) or 0
        with open_manifest_keys(self.manifest, fmt=fmt) as keys:
            index = KeyIndex.from_keys(keys, expected_keys=expected)
        self.total = index.records
        return index

    async def _run_pipeline(
        self, manifest: Manifest[ManifestRecord], journal: Journal, keys: KeyIndex
    ) -> None:
        size = self.config.concurrency
        record_send, record_receive = anyio.create_memory_object_stream[Record](size * 4)
        triage = Triage(
            base_dir=manifest.base_dir,
            default_category=self.config.default_category,
            journal=journal,
            accounts=frozenset({None, *self._accounts.names}),
            keys=keys,
        )
        async with InitializeClient(self._client_config) as client, anyio.create_task_group() as tg:
            tg.start_soon(self._writer.consume, record_receive)
            timers = anyio.CancelScope()
            tg.start_soon(self._run_timers, timers)
            async with record_send, anyio.create_task_group() as work:
                self._work_scope, self._work_group = work.cancel_scope, work
                work.start_soon(self._read, manifest, triage, record_send.clone())
                for _ in range(size):
                    work.start_soon(self._work, client, record_send.clone())
            timers.cancel()

    async def _run_timers(self, scope: anyio.CancelScope) -> None:
        with scope:
            async with anyio.create_task_group() as timers:
                if self.config.max_duration_s is not None:
                    timers.start_soon(self._stop_after, self.config.max_duration_s)
                timers.start_soon(self._cancel_after_grace)

    async def _stop_after(self, seconds: float) -> None:
        await anyio.sleep(seconds)
        self.stop(f"--max-duration of {seconds:g} s reached")

    async def _cancel_after_grace(self) -> None:
        await self._stopping.wait()
        await anyio.sleep(self.config.grace_s)
        if self._work_scope is not None:
            log.warning("grace period over: cancelling requests still in flight")
            self._work_scope.cancel()

    async def _read(
        self, manifest: Manifest[ManifestRecord], triage: Triage, records: RecordSink
    ) -> None:
        rows = iter(manifest)
        try:
            async with records:
                while not self._dispatcher.stopped:
                    batch = await anyio.to_thread.run_sync(
                        self._triage_batch, rows, triage, self._read_batch_rows
                    )
                    if not batch:
                        break
                    for outcome in batch:
                        if self._dispatcher.stopped:
                            break
                        if isinstance(outcome, WorkItem):
                            # Most rows find room at once: no coroutine of put for them.
                            # Triage let through known accounts only, so the name is there.
                            pending = Pending(outcome, self._account_name[outcome.account])
                            if self._dispatcher.put_nowait(pending) is None:
                                await self._dispatcher.put(pending)
                        else:
                            await self._record_unsent(outcome, records)
        finally:
            self._dispatcher.close()

    @property
    def _read_batch_rows(self) -> int:
        # Workers that find no row queued wait for the reader, and each such hand-over costs
        # more than the row. A batch's round trip through the worker thread is slow while the
        # loop is busy (measured at 1,024 in flight: 60-100 ms for 10 ms of work, about as
        # long as the pool takes to send one row per worker), so read several rows per worker
        # at a time: the queue then stays ahead of the pool.
        return max(READ_BATCH_ROWS, READ_AHEAD_PER_WORKER * self.config.concurrency)

    @staticmethod
    def _triage_batch(rows: Iterator[ManifestRecord], triage: Triage, size: int) -> list[Triaged]:
        """Read and triage the next rows in a worker thread (file I/O would block the loop)."""
        return [triage(record) for record in islice(rows, size)]

    async def _record_unsent(self, outcome: InvalidRow | Skip, records: RecordSink) -> None:
        """A row that gets no request: its invalid line, or a count of rows skipped."""
        if isinstance(outcome, InvalidRow):
            await records.send(invalid_record(outcome))
        else:
            self._counters.skipped[outcome.settled] += 1

    async def _work(self, client: InitializeClient, records: RecordSink) -> None:
        take_nowait, take = self._dispatcher.take_nowait, self._dispatcher.take
        async with records:
            while (pending := take_nowait() or await take()) is not None:
                record = await self._attempt_row(client, pending)
                if record is not None:
                    # Waits only while the writer's buffer is full: ``send`` alone would first
                    # yield to the loop (anyio's checkpoint), a whole extra trip per row.
                    try:
                        records.send_nowait(record)
                    except anyio.WouldBlock:
                        await records.send(record)
                    self._dispatcher.done()
                    if self.config.max_failure_rate is not None:
                        self._check_failure_rate()

    async def _attempt_row(self, client: InitializeClient, pending: Pending) -> Record | None:
        """Send the row once; return its line, or None when it was queued again."""
        account = self._account_named[pending.account]
        assert account is not None
        try:
            attempt = await self._send(client, account, pending)
            if attempt.http_status == 401 and await self._renewed(account, pending, attempt):
                self._dispatcher.put_back(pending)
                return None
        except CredentialsError as exc:
            return self._credentials_failed(account, pending, exc)
        return self._settle(account, pending, attempt)

    def _credentials_failed(
        self, account: Account, pending: Pending, exc: CredentialsError
    ) -> Record | None:
        """The account cannot sign: wait and retry an outage, stop the account otherwise."""
        if exc.retryable:
            pending.failures += 1
            if pending.failures < self.config.max_attempts:
                self._requeue_later(pending, self._backoff_s(pending.failures, None))
                return None
            error = ErrorInfo(
                type="credentials_unavailable",
                title="Credentials could not be renewed",
                detail=str(exc),
                retryable=True,
            )
            return self._failed(pending, error, None)
        self._stop_account(account.name, str(exc))
        self._dispatcher.put_back(pending)  # dropped: its account is stopped
        return None

    @staticmethod
    async def _renewed(account: Account, pending: Pending, attempt: _Attempt) -> bool:
        """After a 401, renew the credentials once per row (a refreshing scheme may)."""
        if pending.refreshed:
            return False
        pending.refreshed = True
        return await account.credentials.after_unauthorized(attempt.authorization)

    async def _send(self, client: InitializeClient, account: Account, pending: Pending) -> _Attempt:
        credentials = account.credentials
        try:
            authorization = credentials.fixed_authorization or (
                await credentials.authorization("POST", self._url)
            )
            sent_at = time.time()
            pending.attempts += 1
            self._counters.requests += 1
            answer = await client.initialize(pending.item.request, authorization=authorization)
        except ApiError as exc:  # only the call raises these: ``authorization`` is set
            self._dispatcher.release(account.name, None)
            return _Attempt(sent_at, None, transport_error_info(exc), authorization)
        except BaseException:
            self._dispatcher.release(account.name, None)
            raise
        # A request resent on a fresh connection (the server closed the reused one before
        # answering) was sent twice as far as anyone can tell: count it.
        pending.attempts += answer.sent - 1
        self._counters.requests += answer.sent - 1
        rate_limited = answer.http_status == 429
        self._dispatcher.release(account.name, answer.rate, rate_limited=rate_limited)
        self._counters.rate_limited += rate_limited
        return _Attempt(
            sent_at, answer.http_status, answer.result, authorization, answer.rate.retry_after_s
        )

    def _settle(self, account: Account, pending: Pending, attempt: _Attempt) -> Record | None:
        item, result = pending.item, attempt.result
        if isinstance(result, Initialized):
            self._counters.auth_failures_in_a_row[account.name] = 0
            self._counters.ok += 1
            return ok_record(
                item,
                result,
                sent_at=attempt.sent_at,
                attempts=pending.attempts,
                http_status=attempt.http_status or 200,
            )
        if attempt.http_status == 429 and pending.rate_limited < MAX_RATE_LIMITED_RETRIES:
            pending.rate_limited += 1
            self._dispatcher.put_back(pending)  # its gate holds it until the window resets
            return None
        if attempt.http_status in AUTH_STATUSES:
            return self._auth_refused(account, pending, attempt, result)
        pending.failures += 1
        if not result.retryable or pending.failures >= self.config.max_attempts:
            return self._failed(pending, result, attempt.http_status)
        self._requeue_later(pending, self._backoff_s(pending.failures, attempt.retry_after_s))
        return None

    def _auth_refused(
        self, account: Account, pending: Pending, attempt: _Attempt, error: ErrorInfo
    ) -> Record | None:
        status = attempt.http_status or 0
        scheme = credentials_scheme(account.credentials)
        explained = describe_auth_failure(status, error.type, error.title, error.detail, scheme)
        in_a_row = self._counters.auth_failures_in_a_row
        in_a_row[account.name] += 1
        if in_a_row[account.name] >= self.config.auth_failure_limit:
            self._stop_account(
                account.name, f"HTTP {status} {in_a_row[account.name]} times in a row: {explained}"
            )
        # Fixing the credentials fixes the row: a later run should try it again.
        return self._failed(
            pending, replace(error, detail=explained, retryable=True), attempt.http_status
        )

    def _failed(self, pending: Pending, error: ErrorInfo, http_status: int | None) -> Record:
        self._counters.failed += 1
        return failed_record(
            pending.item, error, attempts=pending.attempts, http_status=http_status
        )

    def _requeue_later(self, pending: Pending, delay_s: float) -> None:
        async def wait_then_requeue() -> None:
            with anyio.move_on_after(delay_s):
                await self._stopping.wait()
            self._dispatcher.put_back(pending)  # dropped when the run is stopping

        assert self._work_group is not None
        self._work_group.start_soon(wait_then_requeue)

    def _stop_account(self, name: str, why: str) -> None:
        if name in self.stopped_accounts:
            return
        self.stopped_accounts.append(name)
        self._dispatcher.stop_account(name)
        log.error(
            "account %r stopped: its credentials were refused (%s); its remaining rows are left "
            "for the next run — fix the credentials and run the same command again",
            name,
            why,
        )

    def _check_failure_rate(self) -> None:
        limit = self.config.max_failure_rate
        finished = self._counters.ok + self._counters.failed
        if limit is None or finished < self.config.failure_rate_min_rows:
            return
        rate = self._counters.failed / finished
        if rate > limit and self.stop_reason is None:
            self.stop(f"failure rate {rate:.1%} over --max-failure-rate {limit:.1%}")

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
            skipped=dict(self._counters.skipped),
            requests=self._counters.requests,
            rate_limited=self._counters.rate_limited,
            # Accounts pause side by side: the longest pause is the time the run lost.
            waited_s=max((gate.waited_s for gate in self.gates.values()), default=0.0),
            elapsed_s=time.monotonic() - self.started_at,
            results_path=self._writer.path,
            total=self.total,
            stop_reason=self.stop_reason,
            stopped_accounts=tuple(self.stopped_accounts),
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
        title, slug = "Request timed out", "timeout"
    elif isinstance(exc, BadResponse):
        title, slug = "Malformed answer", "bad_response"
    else:
        title, slug = "Connection failed", "connection_error"
    return ErrorInfo(type=slug, title=title, detail=str(exc), retryable=True)
