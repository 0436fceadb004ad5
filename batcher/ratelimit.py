"""Per-account window gates driven by the API's rate-limit headers.

A gate admits a request only while the account's current window has quota left, counting the
requests already in flight. When the window is spent, or a 429 arrives, every worker of that
account waits for the reset together: nobody probes a closed window, so there is no 429 storm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

import anyio

from batcher.api import RateLimitInfo

DEFAULT_RESET_MARGIN_S: Final = 0.5
MIN_CLOSED_S: Final = 1.0
MAX_CLOSED_S: Final = 60.0


class WindowGate:
    """Admission control for one account's fixed rate-limit window.

    Until the first rate-limit headers arrive only one request (a probe) is in flight, so a
    fresh run cannot overshoot a window it knows nothing about. A server that sends no headers
    at all is not gated, except after a 429.
    """

    __slots__ = (
        "_changed",
        "_clock",
        "_closed_until",
        "_headerless",
        "_margin_s",
        "_penalty_s",
        "_waiters",
        "_waiting_since",
        "in_flight",
        "limit",
        "name",
        "rate_limited_count",
        "remaining",
        "reset_at",
        "waited_s",
    )

    name: str
    limit: int | None
    remaining: int | None
    reset_at: float | None
    in_flight: int
    rate_limited_count: int
    waited_s: float
    _closed_until: float
    _headerless: bool
    _margin_s: float
    _penalty_s: float
    _waiters: int
    _waiting_since: float
    _clock: Callable[[], float]
    _changed: anyio.Event

    def __init__(
        self,
        name: str,
        *,
        margin_s: float = DEFAULT_RESET_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.limit = None
        self.remaining = None
        self.reset_at = None
        self.in_flight = 0
        self.rate_limited_count = 0
        self.waited_s = 0.0
        self._closed_until = 0.0
        self._headerless = False
        self._margin_s = margin_s
        self._penalty_s = MIN_CLOSED_S
        self._waiters = 0
        self._waiting_since = 0.0
        self._clock = clock
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        return (
            f"<WindowGate {self.name!r} limit={self.limit} remaining={self.remaining} "
            f"in_flight={self.in_flight} reset_at={self.reset_at} paused_until={self.paused_until}>"
        )

    @property
    def paused_until(self) -> float | None:
        """Epoch seconds until which this account sends nothing, or ``None`` if it may send."""
        delay = self._delay_before_send(self._clock())
        if delay is None or math.isinf(delay):
            return None
        return self._clock() + delay

    async def acquire(self) -> None:
        """Wait until the window admits one more request, then count it as in flight."""
        while True:
            now = self._clock()
            delay = self._delay_before_send(now)
            if delay is None:
                self.in_flight += 1
                return
            await self._wait_for_change(delay)

    async def _wait_for_change(self, timeout_s: float) -> None:
        """Sleep until the state changes or ``timeout_s`` passes, timing the pause once.

        ``waited_s`` is wall time during which at least one worker waited, however many did.
        """
        if self._waiters == 0:
            self._waiting_since = self._clock()
        self._waiters += 1
        try:
            with anyio.move_on_after(timeout_s):
                await self._changed.wait()
        finally:
            self._waiters -= 1
            if self._waiters == 0:
                self.waited_s += max(0.0, self._clock() - self._waiting_since)

    def release(self, rate: RateLimitInfo | None, *, rate_limited: bool = False) -> None:
        """Count one request as finished and learn from its answer's headers."""
        self.in_flight -= 1
        now = self._clock()
        if rate is not None:
            self._learn(rate, now)
        if rate_limited:
            self._close_after_429(rate, now)
        else:
            self._penalty_s = MIN_CLOSED_S
        self._notify()

    def _delay_before_send(self, now: float) -> float | None:
        if self._closed_until > now:
            return self._closed_until - now
        self._roll_window_if_reset(now)
        if self._headerless:
            return None
        if self.limit is None:
            return None if self.in_flight == 0 else math.inf
        if self.remaining is None or self.remaining - self.in_flight > 0:
            return None
        if self.reset_at is None:
            return math.inf
        return max(0.0, self.reset_at + self._margin_s - now)

    def _roll_window_if_reset(self, now: float) -> None:
        if self.reset_at is not None and now >= self.reset_at + self._margin_s:
            # A new window has begun: assume its full quota until its first answer says more.
            self.reset_at = None
            self.remaining = self.limit

    def _learn(self, rate: RateLimitInfo, now: float) -> None:
        if rate.limit is None or rate.remaining is None or rate.reset_at is None:
            if self.limit is None:
                self._headerless = True
            return
        self._headerless = False
        self.limit = rate.limit
        if rate.reset_at + self._margin_s <= now:
            return  # an answer from a window that has already ended
        if self.reset_at is None or rate.reset_at > self.reset_at:
            self.reset_at = rate.reset_at
            self.remaining = rate.remaining
        elif rate.reset_at == self.reset_at and self.remaining is not None:
            # Answers arrive out of order: the lowest count seen in a window is the true one.
            self.remaining = min(self.remaining, rate.remaining)

    def _close_after_429(self, rate: RateLimitInfo | None, now: float) -> None:
        self.rate_limited_count += 1
        self.remaining = 0
        until = now + self._penalty_s
        if rate is not None and rate.reset_at is not None:
            until = max(until, rate.reset_at + self._margin_s)
        if rate is not None and rate.retry_after_s is not None:
            until = max(until, now + rate.retry_after_s)
        self._closed_until = max(self._closed_until, until)
        # Repeated 429s without a usable reset back off further, never spinning.
        self._penalty_s = min(self._penalty_s * 2, MAX_CLOSED_S)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
