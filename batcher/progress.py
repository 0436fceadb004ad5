"""What the operator sees while a run goes on, and the summary when it ends (all on stderr).

On a terminal one live line is redrawn in place; elsewhere (cron, CI, a log collector) a plain
line is printed now and then, so a long wait never looks like a hang. stdout stays clean.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Final, Protocol, TextIO

import anyio

from batcher.journal import Settled
from batcher.ratelimit import Gate
from batcher.results import Tally
from batcher.runner import RunSummary

LIVE_INTERVAL_S: Final = 0.25
PLAIN_INTERVAL_S: Final = 10.0
CLEAR_TO_EOL: Final = "\x1b[K"


class Watched(Protocol):
    """What the display reads from a running job."""

    @property
    def tally(self) -> Tally: ...

    @property
    def total(self) -> int | None: ...

    @property
    def started_at(self) -> float: ...

    @property
    def skipped(self) -> int: ...

    @property
    def gates(self) -> Mapping[str, Gate]: ...


def format_duration(seconds: float) -> str:
    """``0:04:07`` style, for ETAs and elapsed times."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def status_line(job: Watched, *, now: float | None = None) -> str:
    """One line: rows done of total, counts by status, rate, ETA, and any rate-limit pause."""
    now = time.monotonic() if now is None else now
    tally, total = job.tally, job.total
    elapsed = max(now - job.started_at, 1e-9)
    rate = tally.done / elapsed
    finished = tally.done + job.skipped
    done = f"{finished:,}/{total:,}" if total is not None else f"{finished:,}"
    parts = [
        f"{done} rows",
        f"ok {tally.ok:,}",
        f"failed {tally.failed:,}",
        f"invalid {tally.invalid:,}",
    ]
    if job.skipped:
        parts.append(f"skipped {job.skipped:,}")
    parts.append(f"{rate:,.1f} rows/s")
    if total is not None and rate > 0 and total > finished:
        parts.append(f"ETA {format_duration((total - finished) / rate)}")
    pause = pause_note(job.gates.values())
    if pause:
        parts.append(pause)
    if len(job.gates) > 1:
        parts.extend(account_note(gate) for gate in job.gates.values())
    return " · ".join(parts)


def account_note(gate: Gate) -> str:
    """``alice 1,203/1,875 left`` or ``bob paused until 18:42:05``: one account's quota."""
    until = gate.paused_until
    if until is not None:
        return f"{gate.name} paused until {time.strftime('%H:%M:%S', time.localtime(until))}"
    if gate.remaining is None or gate.limit is None:
        return f"{gate.name} quota not known yet"
    return f"{gate.name} {max(0, gate.remaining - gate.in_flight):,}/{gate.limit:,} left"


def pause_note(gates: Iterable[Gate]) -> str:
    """``waiting for rate-limit reset until 18:42:05`` while every account is paused."""
    until = [gate.paused_until for gate in gates]
    if not until or any(moment is None for moment in until):
        return ""
    latest = min(moment for moment in until if moment is not None)
    return f"waiting for rate-limit reset until {time.strftime('%H:%M:%S', time.localtime(latest))}"


def format_summary(summary: RunSummary) -> str:
    """The closing lines of a run: what it did, what it skipped, why it stopped, what next."""
    lines = [
        f"batcher: {summary.rows:,} rows in {format_duration(summary.elapsed_s)}: "
        f"{summary.ok:,} ok, {summary.failed:,} failed, {summary.invalid:,} invalid",
        f"  {summary.requests:,} requests, {summary.rate_limited:,} answered 429, "
        f"{summary.waited_s:,.1f} s waited for rate-limit resets",
    ]
    if summary.skipped:
        lines.append(f"  skipped, settled by an earlier run: {skipped_note(summary)}")
    lines.append(f"  results: {summary.results_path}")
    lines.extend(next_steps(summary))
    return "\n".join(lines)


def skipped_note(summary: RunSummary) -> str:
    """``950 already ok, 3 failed for good (--retry-failed runs them), 10 still invalid``."""
    texts = {
        Settled.OK: "already ok",
        Settled.FAILED: "failed for good (--retry-failed runs them)",
        Settled.INVALID: "still invalid",
    }
    return ", ".join(
        f"{summary.skipped[kind]:,} {text}"
        for kind, text in texts.items()
        if kind in summary.skipped
    )


def next_steps(summary: RunSummary) -> list[str]:
    """What the operator should do now, if anything."""
    steps = []
    if summary.stopped_accounts:
        names = ", ".join(summary.stopped_accounts)
        steps.append(
            f"  STOPPED account(s) {names}: credentials refused; their remaining rows were left "
            "for the next run: fix the credentials, then run the same command again"
        )
    if summary.stop_reason is not None:
        left = summary.unfinished
        count = f"{left:,} rows" if left is not None else "the remaining rows"
        steps.append(
            f"  stopped early ({summary.stop_reason}): {count} not done yet; "
            "run the same command again to resume"
        )
    if summary.failed or summary.invalid:
        steps.append(
            "  see the 'error' of each failed or invalid line for what to fix; "
            "'batcher report RESULTS --failed-manifest FILE' collects those rows"
        )
    return steps


class ProgressDisplay:
    """Redraws :func:`status_line` on a terminal, or prints it now and then elsewhere."""

    __slots__ = ("_interval_s", "_job", "_live", "_stream")

    def __init__(self, job: Watched, stream: TextIO, *, live: bool | None = None) -> None:
        self._job = job
        self._stream = stream
        self._live = stream.isatty() if live is None else live
        self._interval_s = LIVE_INTERVAL_S if self._live else PLAIN_INTERVAL_S

    def __repr__(self) -> str:
        return f"<ProgressDisplay live={self._live} every {self._interval_s} s>"

    async def run(self) -> None:
        """Show progress until cancelled."""
        while True:
            await anyio.sleep(self._interval_s)
            self.show()

    def show(self) -> None:
        """Draw the current state once."""
        line = status_line(self._job)
        if self._live:
            self._stream.write(f"\r{line}{CLEAR_TO_EOL}")
        else:
            self._stream.write(f"batcher: {line}\n")
        self._stream.flush()

    def finish(self, summary: RunSummary) -> None:
        """Replace the live line with the final summary."""
        if self._live:
            self._stream.write(f"\r{CLEAR_TO_EOL}")
        self._stream.write(format_summary(summary) + "\n")
        self._stream.flush()
