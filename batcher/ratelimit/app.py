"""The app-wide 24-hour cap (``x-app-limit-24hour-*``), one gate shared by every account."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from batcher.api import RateLimitInfo
from batcher.ratelimit.base import DEFAULT_RESET_MARGIN_S, MAX_CLOSED_S, MIN_CLOSED_S
from batcher.ratelimit.clock import ServerClock

APP_WINDOW_S: Final = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AppLimitInfo:
    """What one answer said about the app-wide 24-hour cap."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None


def app_limit_of(rate: RateLimitInfo | None) -> AppLimitInfo | None:
    """The app-cap part of ``rate`` (None when the answer did not speak of it)."""
    if rate is None or rate.app_limit is None:
        return None  # most answers: decided before allocating anything
    return AppLimitInfo(
        limit=rate.app_limit, remaining=rate.app_remaining, reset_at=rate.app_reset_at
    )


class AppGate:
    """The app-wide 24-hour cap, one gate shared by every account of a run.

    It follows the ``x-app-limit-24hour-*`` headers; without them, a configured
    ``daily_limit`` is counted down by this run's own requests over 24 hours from the first.
    """

    __slots__ = (
        "_assumed_reset",
        "_closed_until",
        "_margin_s",
        "_penalty_s",
        "in_flight",
        "limit",
        "remaining",
        "reset_at",
        "server_clock",
    )

    limit: int | None
    remaining: int | None
    reset_at: float | None
    in_flight: int
    server_clock: ServerClock

    def __init__(
        self,
        *,
        daily_limit: int | None = None,
        server_clock: ServerClock | None = None,
        margin_s: float = DEFAULT_RESET_MARGIN_S,
    ) -> None:
        self.limit = self.remaining = daily_limit
        self.reset_at = None
        self.in_flight = 0
        self.server_clock = ServerClock() if server_clock is None else server_clock
        self._margin_s = margin_s
        self._assumed_reset = True
        self._closed_until = -math.inf
        self._penalty_s = MIN_CLOSED_S

    def __repr__(self) -> str:
        return (
            f"<AppGate limit={self.limit} remaining={self.remaining} in_flight={self.in_flight} "
            f"reset_at={self.reset_at}>"
        )

    def delay(self, now: float) -> float | None:
        """Seconds before the app may send again (``math.inf``: after an answer), or None."""
        if self._closed_until > now:
            return self._closed_until - now
        if self.reset_at is not None and now >= self._opens_at(self.reset_at):
            self.reset_at, self.remaining = None, self.limit
        if self.remaining is None or self.remaining - self.in_flight > 0:
            return None
        if self.reset_at is None:
            return math.inf
        return self._opens_at(self.reset_at) - now

    def unbounded(self, now: float) -> bool:
        """True when no cap is known and nothing is closed: :meth:`delay` is None and
        :meth:`count` only counts the request in flight."""
        return self.remaining is None and self.limit is None and self._closed_until <= now

    def count(self, now: float) -> None:
        """One request was admitted at ``now``."""
        self.in_flight += 1
        if self.reset_at is None and self.limit is not None:
            self.reset_at = now + self.server_clock.offset_s + APP_WINDOW_S
            self._assumed_reset = True

    def release(self, info: AppLimitInfo | None, *, rate_limited: bool, now: float) -> None:
        """One request finished; ``rate_limited``: the app cap refused it."""
        self.in_flight = max(0, self.in_flight - 1)
        if info is not None and info.remaining is not None and info.reset_at is not None:
            self._learn(info.limit, info.remaining, info.reset_at)
        elif self.remaining is not None:
            self.remaining -= 1  # no headers: count our own requests
        if rate_limited:
            self.remaining = 0
            opens_at = -math.inf if self.reset_at is None else self._opens_at(self.reset_at)
            if opens_at <= now:
                opens_at = now + self._penalty_s
                self._penalty_s = min(self._penalty_s * 2, MAX_CLOSED_S)
            self._closed_until = max(self._closed_until, opens_at)
        else:
            self._penalty_s = MIN_CLOSED_S

    def _learn(self, limit: int | None, remaining: int, reset_at: float) -> None:
        if limit is not None:
            self.limit = limit
        if self._assumed_reset or self.reset_at is None or reset_at > self.reset_at:
            self.reset_at, self.remaining = reset_at, remaining
            self._assumed_reset = False
        elif reset_at == self.reset_at and self.remaining is not None:
            self.remaining = min(self.remaining, remaining)

    def _opens_at(self, reset_at: float) -> float:
        return self.server_clock.opens_at(reset_at, self._margin_s)
