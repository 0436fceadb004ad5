"""One account's fixed rate-limit window, driven by the ``x-rate-limit-*`` headers."""

from __future__ import annotations

import math
import time
from bisect import insort
from collections import deque
from typing import Final

from batcher.api import RateLimitInfo
from batcher.ratelimit.base import (
    DEFAULT_RESET_MARGIN_S,
    MAX_CLOSED_S,
    MIN_CLOSED_S,
    Clock,
    WaitMeter,
)
from batcher.ratelimit.clock import ServerClock
from batcher.ratelimit.pacing import AdaptivePacer

PROBE_SLOTS: Final = 4
"""A window's last slots that go as tick probes while the server's clock is not settled."""
PROBE_GUARD_S: Final = 0.25
"""A tick probe goes at least this long before its window may end by the server's clock."""


class _Probe:
    """The first request into a new window while the clock estimate is unconfirmed."""

    __slots__ = ("sent_with",)

    sent_with: float | None  # the offset estimate it was sent with; None: not sent yet

    def __init__(self) -> None:
        self.sent_with = None


class WindowGate:
    """Admission control for one account's fixed rate-limit window.

    ``remaining`` is the lowest count seen in the current window (answers arrive out of order),
    and every request in flight is counted against it: at most the limit is ever sent into a
    window. Until the first headers arrive only one request (a probe) is in flight; a server
    that sends no headers at all gets adaptive pacing once it answers 429.

    While the server's clock is not settled, the last ``PROBE_SLOTS`` of a window's quota are
    sent at the moments :meth:`ServerClock.claim_probe` plans, still inside the window: they
    narrow the clock's bounds, so later windows open on time.
    """

    __slots__ = (
        "_adaptive",
        "_clock",
        "_closed_until",
        "_headerless",
        "_margin_s",
        "_meter",
        "_penalty_s",
        "_probe",
        "_rolled_past",
        "_sent",
        "_tick_probes",
        "in_flight",
        "limit",
        "name",
        "rate_limited_count",
        "remaining",
        "reset_at",
        "server_clock",
    )

    name: str
    limit: int | None
    remaining: int | None
    reset_at: float | None
    in_flight: int
    rate_limited_count: int
    server_clock: ServerClock

    def __init__(
        self,
        name: str,
        *,
        margin_s: float = DEFAULT_RESET_MARGIN_S,
        clock: Clock = time.time,
        server_clock: ServerClock | None = None,
    ) -> None:
        self.name = name
        self.limit = self.remaining = None
        self.reset_at = None
        self.in_flight = self.rate_limited_count = 0
        self.server_clock = ServerClock() if server_clock is None else server_clock
        self._margin_s = margin_s
        self._clock = clock
        self._closed_until = -math.inf
        self._rolled_past: float | None = None
        self._probe: _Probe | None = None
        self._headerless = False
        self._penalty_s = MIN_CLOSED_S
        self._sent: deque[float] = deque()
        self._tick_probes: list[float] = []
        self._adaptive = AdaptivePacer()
        self._meter = WaitMeter()

    def __repr__(self) -> str:
        return (
            f"<WindowGate {self.name!r} limit={self.limit} remaining={self.remaining} "
            f"in_flight={self.in_flight} reset_at={self.reset_at} paused_until={self.paused_until}>"
        )

    @property
    def waited_s(self) -> float:
        """Wall time this gate held requests back for a known moment."""
        return self._meter.waited_s

    @property
    def paused_until(self) -> float | None:
        """Local epoch seconds until which this account sends nothing, or None."""
        now = self._clock()
        delay = self.delay(now)
        return None if delay is None or math.isinf(delay) else now + delay

    def admit(self, now: float | None = None) -> float | None:
        """Count one request in flight and return None, or the seconds before asking again."""
        now = self._clock() if now is None else now
        delay = self.delay(now)
        if delay is not None:
            self._meter.refused(delay, now)
            return delay
        self._meter.admitted(now)
        self.count(now)
        return None

    def delay(self, now: float) -> float | None:
        """Seconds before a request may go (``math.inf``: after an answer), or None: now."""
        if self._closed_until > now:
            return self._closed_until - now
        reset_at = self.reset_at
        if reset_at is not None and now >= self.server_clock.opens_at(reset_at, self._margin_s):
            self._roll(reset_at)
        if self._headerless:
            return self._adaptive.delay(now)
        if self.limit is None:
            return None if self.in_flight == 0 else math.inf
        if self._probe is not None and self._probe.sent_with is not None:
            return math.inf  # a new window, an unconfirmed clock: one probe first
        if self.remaining is None:
            return None
        if (free := self.remaining - self.in_flight) > 0:
            return None if free > PROBE_SLOTS else self._tick_probe_delay(now, free)
        if self.reset_at is None:
            return math.inf
        return max(0.0, self._opens_at(self.reset_at) - now)

    def admit_steady(self, now: float) -> bool:
        """Count one request and return True if :meth:`delay` would let it go for the plain
        reason: a known window, more than the probe slots free, nothing closed or planned,
        no probe, no new window due. Otherwise False, nothing counted: ask :meth:`delay`.

        Every request asks: this is :meth:`delay` and :meth:`count` for that case, without
        their calls and branches.
        """
        remaining, reset_at = self.remaining, self.reset_at
        if (
            remaining is None
            or reset_at is None
            or self.limit is None
            or remaining - self.in_flight <= PROBE_SLOTS
            or self._probe is not None
            or self._headerless
            or self._tick_probes
            or self._closed_until > now
            or now >= self.server_clock.opens_at(reset_at, self._margin_s)
        ):
            return False
        self.in_flight += 1
        self._sent.append(now)
        self._adaptive.count(now)
        return True

    def count(self, now: float) -> None:
        """One request was admitted at ``now`` (by this gate or a composite holding it)."""
        probes = self._tick_probes
        if probes and self.remaining is not None and self.remaining - self.in_flight <= len(probes):
            probes.pop(0)
        self.in_flight += 1
        self._sent.append(now)
        self._adaptive.count(now)
        if self._probe is not None and self._probe.sent_with is None:
            self._probe.sent_with = self.server_clock.offset_s

    def release(
        self, rate: RateLimitInfo | None, *, rate_limited: bool = False, now: float | None = None
    ) -> None:
        """Count one request as finished and learn from its answer's headers."""
        now = self._clock() if now is None else now
        # Which request answered is unknown; the oldest in flight bounds when it was sent.
        sent = self._sent
        sent_at = sent[0] if sent else now
        if sent:
            sent.pop()
        if self.in_flight > 0:
            self.in_flight -= 1
        if rate is not None:
            self._learn(rate, sent_at, now)
        elif self._probe is not None:
            self._probe.sent_with = None  # no answer: another request may probe
        if rate_limited:
            self._close_after_429(rate, now)
        elif rate is not None:
            self._penalty_s = MIN_CLOSED_S
            if self._adaptive.pacer is not None:  # paced: headerless answers, 429s
                self._adaptive.speed_up()

    def _opens_at(self, reset_at: float) -> float:
        return self.server_clock.opens_at(reset_at, self._margin_s)

    def _tick_probe_delay(self, now: float, free: int) -> float | None:
        """With ``free`` slots left in the window: None, or the wait for the next tick probe."""
        clock = self.server_clock
        if not clock.wants_probes:
            return None
        if self.reset_at is None:  # the window's end comes with the first answer from it
            return math.inf if self.in_flight else None
        latest = clock.earliest_local(self.reset_at) - PROBE_GUARD_S
        while len(self._tick_probes) < free:
            at = clock.claim_probe(now, latest)
            if at is None:
                break
            insort(self._tick_probes, at)
        if free > len(self._tick_probes):
            return None  # a slot no probe needs: it goes now
        wait = self._tick_probes[0] - now
        return wait if wait > 0 else None

    def _roll(self, reset_at: float) -> None:
        """A new window has begun: assume its full quota until its first answer says more."""
        self._rolled_past = reset_at
        self.reset_at = None
        self.remaining = self.limit
        self._tick_probes.clear()
        clock = self.server_clock
        if not (clock.confirmed or clock.proven(self._margin_s)):
            self._probe = _Probe()

    def _learn(self, rate: RateLimitInfo, sent_at: float, now: float) -> None:
        self.server_clock.observe(rate, sent_at=sent_at, received_at=now)
        if rate.limit is None or rate.remaining is None or rate.reset_at is None:
            if self.limit is None:
                self._headerless = True
            return
        self._headerless = False
        self.limit = rate.limit
        if self._rolled_past is not None and rate.reset_at <= self._rolled_past:
            return  # counted in a window this gate has already left behind
        if self.reset_at is None or rate.reset_at > self.reset_at:
            self.reset_at = rate.reset_at
            self.remaining = rate.remaining
            self._end_probe()
        elif (
            rate.reset_at == self.reset_at
            and self.remaining is not None
            and rate.remaining < self.remaining
        ):
            self.remaining = rate.remaining

    def _end_probe(self) -> None:
        """An answer from the new window: the clock estimate the probe went with was right."""
        probe, self._probe = self._probe, None
        if probe is not None and probe.sent_with is not None:
            self.server_clock.confirm(probe.sent_with)

    def _close_after_429(self, rate: RateLimitInfo | None, now: float) -> None:
        self.rate_limited_count += 1
        reset_at = None if rate is None else rate.reset_at
        opens_at = -math.inf
        if reset_at is not None:
            if self._rolled_past is not None and reset_at <= self._rolled_past:
                # Our clock said this window was over; the server's did not: it is behind.
                self.server_clock.distrust_local_clock()
                self._rolled_past = None
                if self._probe is not None:
                    self._probe.sent_with = None
            if self.reset_at is None or reset_at >= self.reset_at:
                self.reset_at, self.remaining = reset_at, 0
            opens_at = self._opens_at(reset_at)
        retry_at = -math.inf
        if rate is not None and rate.retry_after_s is not None:
            retry_at = now + rate.retry_after_s
        if max(opens_at, retry_at) <= now:
            # Nothing names a future moment: back off, longer each time, never spinning.
            retry_at = now + self._penalty_s
            self._penalty_s = min(self._penalty_s * 2, MAX_CLOSED_S)
        self._closed_until = max(self._closed_until, retry_at)
        if self._headerless:
            self._adaptive.slow_down()
