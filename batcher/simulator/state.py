"""The live state of one simulator: clock, windows, faults, issued ids and counters.

The request handler (``app``) reads and updates it; tests read it through read-only
snapshots (``SimulatorStats``) and the ``issued`` mapping.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from types import MappingProxyType
from typing import NamedTuple

from batcher.simulator.config import APP_WINDOW_SECS, SimulatorConfig
from batcher.simulator.faults import Fault, FaultPlan
from batcher.simulator.oauth import OAuthState
from batcher.simulator.windows import FixedWindows, WindowUsage

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time`` (the default)."""

SNOWFLAKE_EPOCH_MS = 1_288_834_974_657
_MIN_MEDIA_ID = 10**18
_MAX_MEDIA_ID = 10**19 - 1


class Issued(NamedTuple):
    """What one media id was issued for: the token that asked and the body it sent."""

    token: str
    body: Mapping[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorStats:
    """A read-only snapshot of what a simulator has served so far.

    ``requests`` counts every request to the initialize route; ``by_status`` every answer sent
    (resets and hangs send none); ``rate_limited`` the 429s the windows or the app cap decided
    (scripted 429s count under ``faults``); ``initialized`` the ids issued (``len(issued)``).
    """

    requests: int
    initialized: int
    unauthorized: int
    invalid: int
    rate_limited: int
    by_status: Mapping[int, int]
    faults: Mapping[Fault, int]


class SimulatorState:
    """Everything a running simulator knows; one per server, used from its event loop only."""

    __slots__ = (
        "_date_second",
        "_date_value",
        "_next_id",
        "app_windows",
        "by_status",
        "clock",
        "closing",
        "config",
        "faults",
        "faults_injected",
        "invalid",
        "issued",
        "jitter",
        "oauth",
        "rate_limited",
        "requests",
        "unauthorized",
        "user_windows",
    )

    def __init__(self, config: SimulatorConfig, *, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self.user_windows = FixedWindows(limit=config.window_limit, window_secs=config.window_secs)
        self.app_windows = FixedWindows(limit=config.app_daily_limit, window_secs=APP_WINDOW_SECS)
        self.faults = FaultPlan(config.faults, seed=config.seed)
        self.jitter = random.Random(config.seed + 1)
        self.closing = asyncio.Event()
        self.oauth = OAuthState(config.oauth, clock=self.now)
        self.issued: dict[str, Issued] = {}
        self.by_status: Counter[int] = Counter()
        self.faults_injected: Counter[Fault] = Counter()
        self.requests = self.unauthorized = self.invalid = self.rate_limited = 0
        self._next_id = first_media_id(self.now())
        self._date_second = -1
        self._date_value = ""

    def now(self) -> float:
        """The server's clock: the host clock plus ``clock_offset_s``."""
        return self.clock() + self.config.clock_offset_s

    def http_date(self, now_s: float) -> str:
        """The ``Date`` header for ``now_s`` (formatted once per second)."""
        second = int(now_s)
        if second != self._date_second:
            self._date_second = second
            self._date_value = formatdate(second, usegmt=True)
        return self._date_value

    def hit_windows(self, user: str, now_s: float) -> tuple[WindowUsage, WindowUsage]:
        """Count one request against the user's window and the app's day."""
        return self.user_windows.hit(user, now_s), self.app_windows.hit("", now_s)

    def issue(self, token: str, body: Mapping[str, object]) -> str:
        """A new media id, recorded with what it was issued for."""
        media_id = str(self._next_id)
        self._next_id += 1
        self.issued[media_id] = Issued(token, body)
        return media_id

    def stats(self) -> SimulatorStats:
        """A snapshot of the counters."""
        return SimulatorStats(
            requests=self.requests,
            initialized=len(self.issued),
            unauthorized=self.unauthorized,
            invalid=self.invalid,
            rate_limited=self.rate_limited,
            by_status=MappingProxyType(dict(self.by_status)),
            faults=MappingProxyType(dict(self.faults_injected)),
        )

    def __repr__(self) -> str:
        return (
            f"SimulatorState(requests={self.requests}, issued={len(self.issued)}, "
            f"faults={self.faults!r})"
        )


def first_media_id(now_s: float) -> int:
    """A snowflake-like 19-digit id for ``now_s``; later ids count up from it."""
    snowflake = (int(now_s * 1000) - SNOWFLAKE_EPOCH_MS) << 22
    return min(max(snowflake, _MIN_MEDIA_ID), _MAX_MEDIA_ID - 10**15)
