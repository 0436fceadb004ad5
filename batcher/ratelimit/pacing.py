"""Pacing: ``--max-rate`` (:class:`Pacer`) and the adaptive pace for servers without headers."""

from __future__ import annotations

import math
from collections import deque
from typing import Final

ADAPTIVE_MIN_RATE: Final = 0.5
ADAPTIVE_MAX_RATE: Final = 1_000.0
ADAPTIVE_RAMP_UP: Final = 1.05
ADAPTIVE_SAMPLE: Final = 64


class Pacer:
    """At most ``rate_per_s`` admissions per second, evenly spaced, with no initial burst.

    A generic cell rate algorithm (a leaky bucket of depth one): the first request goes at once,
    each next one ``1 / rate_per_s`` after the previous. aiolimiter's ``AsyncLimiter(1, 1 / r)``
    behaves the same, but has no non-blocking acquire and reads the event loop's clock.
    """

    __slots__ = ("_next_at", "rate_per_s")

    rate_per_s: float
    _next_at: float

    def __init__(self, rate_per_s: float) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        self.rate_per_s = rate_per_s
        self._next_at = -math.inf

    def __repr__(self) -> str:
        return f"<Pacer {self.rate_per_s:g}/s next_at={self._next_at}>"

    def delay(self, now: float) -> float | None:
        """Seconds until the next admission, or None if one may go now."""
        return None if now >= self._next_at else self._next_at - now

    def count(self, now: float) -> None:
        """One request was admitted at ``now``."""
        self._next_at = max(self._next_at, now) + 1.0 / self.rate_per_s


class AdaptivePacer:
    """Pacing for a server that sends no rate-limit headers: halve on a 429, ramp up on success."""

    __slots__ = ("_recent", "pacer")

    pacer: Pacer | None
    _recent: deque[float]

    def __init__(self) -> None:
        self.pacer = None
        self._recent = deque(maxlen=ADAPTIVE_SAMPLE)

    def __repr__(self) -> str:
        return f"<AdaptivePacer {self.pacer!r}>"

    def delay(self, now: float) -> float | None:
        """Seconds until the next admission, or None if one may go now."""
        return None if self.pacer is None else self.pacer.delay(now)

    def count(self, now: float) -> None:
        """One request was admitted at ``now``."""
        self._recent.append(now)
        if self.pacer is not None:
            self.pacer.count(now)

    def slow_down(self) -> None:
        """A 429: half the pace seen lately (or the current one, if slower)."""
        span = self._recent[-1] - self._recent[0] if len(self._recent) > 1 else 0.0
        observed = (len(self._recent) - 1) / span if span > 0 else ADAPTIVE_MIN_RATE
        current = self.pacer.rate_per_s if self.pacer is not None else observed
        rate = max(ADAPTIVE_MIN_RATE, min(current, observed) / 2)
        if self.pacer is None:
            self.pacer = Pacer(rate)
        self.pacer.rate_per_s = rate

    def speed_up(self) -> None:
        """A success: a little faster, and unpaced once fast enough."""
        if self.pacer is not None:
            self.pacer.rate_per_s *= ADAPTIVE_RAMP_UP
            if self.pacer.rate_per_s > ADAPTIVE_MAX_RATE:
                self.pacer = None
