"""What every gate shares: the :class:`Gate` protocol, the clock type, the named defaults and
the meter of time spent waiting."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Protocol

from batcher.api import RateLimitInfo

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time``."""

DEFAULT_RESET_MARGIN_S: Final = 0.01
MIN_CLOSED_S: Final = 1.0
MAX_CLOSED_S: Final = 60.0


class Gate(Protocol):
    """What the dispatcher and the progress display need from an account's gate."""

    @property
    def name(self) -> str: ...
    @property
    def paused_until(self) -> float | None: ...
    @property
    def waited_s(self) -> float: ...
    @property
    def rate_limited_count(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def remaining(self) -> int | None: ...

    def admit(self, now: float | None = None) -> float | None:
        """Count a request in flight and return None, or the seconds before asking again."""
        ...

    def release(
        self, rate: RateLimitInfo | None, *, rate_limited: bool = False, now: float | None = None
    ) -> None:
        """One request finished (``rate`` None: no answer came)."""
        ...


class WaitMeter:
    """Wall time from a first timed refusal to the next admission (one pause, once)."""

    __slots__ = ("refused_since", "waited_s")

    waited_s: float
    refused_since: float | None  # None: no pause in progress (admitted() has nothing to end)

    def __init__(self) -> None:
        self.waited_s = 0.0
        self.refused_since = None

    def __repr__(self) -> str:
        return f"<WaitMeter waited_s={self.waited_s:.3f} refused_since={self.refused_since}>"

    def refused(self, delay: float, now: float) -> None:
        """A request was refused for ``delay`` seconds (``math.inf``: not a timed pause)."""
        if self.refused_since is None and not math.isinf(delay):
            self.refused_since = now

    def admitted(self, now: float) -> None:
        """A request was admitted at ``now``: a pause in progress ends."""
        if self.refused_since is not None:
            self.waited_s += max(0.0, now - self.refused_since)
            self.refused_since = None
