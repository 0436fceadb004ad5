"""The progress line and the summary, drawn from a job's live state (no terminal needed)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

from batcher.api import RateLimitInfo
from batcher.progress import ProgressDisplay, format_duration, format_summary, status_line
from batcher.ratelimit import Gate, WindowGate
from batcher.results import Tally
from batcher.runner import RunSummary


@dataclass
class FakeJob:
    tally: Tally = field(default_factory=Tally)
    total: int | None = 1000
    started_at: float = 0.0
    skipped: int = 0
    gates: dict[str, Gate] = field(default_factory=lambda: {"default": WindowGate("default")})


def test_status_line_shows_counts_rate_and_eta() -> None:
    job = FakeJob(tally=Tally(ok=180, failed=10, invalid=10))
    line = status_line(job, now=job.started_at + 20)
    assert line.startswith("200/1,000 rows")
    assert " · ok 180 · failed 10 · invalid 10 · " in line
    assert "10.0 rows/s" in line
    assert "ETA 0:01:20" in line
    assert "waiting" not in line


def test_status_line_without_a_known_total_has_no_eta() -> None:
    job = FakeJob(tally=Tally(ok=5), total=None)
    line = status_line(job, now=job.started_at + 1)
    assert line.startswith("5 rows")
    assert "ETA" not in line


def test_status_line_says_until_when_it_waits_for_the_reset() -> None:
    gate = WindowGate("default")
    gate.in_flight = 1
    reset_at = time.time() + 120
    gate.release(RateLimitInfo(limit=10, remaining=0, reset_at=reset_at), rate_limited=True)
    line = status_line(FakeJob(gates={"default": gate}), now=1.0)
    paused_until = gate.paused_until
    assert paused_until is not None
    expected = time.strftime("%H:%M:%S", time.localtime(paused_until))
    assert f"waiting for rate-limit reset until {expected}" in line


def test_plain_mode_prints_whole_lines() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(FakeJob(tally=Tally(ok=3)), stream, live=False)
    display.show()
    display.show()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("batcher: 3/1,000 rows") for line in lines)
    assert "\r" not in stream.getvalue()


def test_live_mode_redraws_one_line_and_ends_with_the_summary() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(FakeJob(tally=Tally(ok=3)), stream, live=True)
    display.show()
    display.finish(summary(ok=3))
    text = stream.getvalue()
    assert text.startswith("\r3/1,000 rows")
    assert "\x1b[K" in text
    assert text.rstrip().endswith("results: r.jsonl")


def summary(*, ok: int = 0, failed: int = 0, invalid: int = 0) -> RunSummary:
    return RunSummary(
        ok=ok,
        failed=failed,
        invalid=invalid,
        requests=ok + failed,
        skipped={},
        rate_limited=2,
        waited_s=3.5,
        elapsed_s=65,
        results_path=Path("r.jsonl"),
    )


def test_summary_counts_and_hints_at_failures() -> None:
    text = format_summary(summary(ok=7, failed=2, invalid=1))
    assert "10 rows in 0:01:05: 7 ok, 2 failed, 1 invalid" in text
    assert "2 answered 429" in text
    assert "what to fix" in text
    assert "what to fix" not in format_summary(summary(ok=7))


def test_format_duration() -> None:
    assert format_duration(3725.9) == "1:02:05"
    assert format_duration(-3) == "0:00:00"


def test_several_accounts_each_show_their_quota_or_pause() -> None:
    now = time.time()
    alice, bob = WindowGate("alice"), WindowGate("bob")
    alice.in_flight = bob.in_flight = 1
    alice.release(RateLimitInfo(limit=1875, remaining=1203, reset_at=now + 600))
    bob.release(RateLimitInfo(limit=1875, remaining=0, reset_at=now + 600), rate_limited=True)
    line = status_line(FakeJob(gates={"alice": alice, "bob": bob}), now=1.0)
    assert "alice 1,203/1,875 left" in line
    assert "bob paused until " in line
