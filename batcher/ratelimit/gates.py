"""An account's composite gate (window, app cap, pace) and :func:`build_gates`."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from batcher.api import RateLimitInfo
from batcher.ratelimit.app import AppGate, AppLimitInfo, app_limit_of
from batcher.ratelimit.base import DEFAULT_RESET_MARGIN_S, Clock, WaitMeter
from batcher.ratelimit.clock import ServerClock
from batcher.ratelimit.pacing import Pacer
from batcher.ratelimit.window import WindowGate


class AccountGate:
    """One account's gate: its window, the shared app cap and an optional ``--max-rate`` pace.

    A request goes only when all of them allow it; it is then counted in all of them.
    """

    __slots__ = (
        "_clock",
        "_meter",
        "app",
        "pacer",
        "rate_limited_count",
        "window",
    )

    window: WindowGate
    app: AppGate | None
    pacer: Pacer | None
    rate_limited_count: int

    def __init__(
        self,
        window: WindowGate,
        *,
        app: AppGate | None = None,
        pacer: Pacer | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.window = window
        self.app = app
        self.pacer = pacer
        self.rate_limited_count = 0
        self._clock = clock
        self._meter = WaitMeter()

    def __repr__(self) -> str:
        return f"<AccountGate {self.window!r} {self.app!r} {self.pacer!r}>"

    @property
    def name(self) -> str:
        """The account's name."""
        return self.window.name

    @property
    def limit(self) -> int | None:
        """The account's window limit, once an answer said it."""
        return self.window.limit

    @property
    def remaining(self) -> int | None:
        """The lowest remaining count seen in the account's current window."""
        return self.window.remaining

    @property
    def in_flight(self) -> int:
        """The account's requests sent and not answered yet."""
        return self.window.in_flight

    @property
    def waited_s(self) -> float:
        """Wall time this account held requests back for a known moment."""
        return self._meter.waited_s

    @property
    def paused_until(self) -> float | None:
        """Local epoch seconds until which this account sends nothing (window or app cap)."""
        now = self._clock()
        delays = [d for d in self._gate_delays(now) if d is not None and not math.isinf(d)]
        return now + max(delays) if delays else None

    def admit(self, now: float | None = None) -> float | None:
        """Count one request in flight everywhere and return None, or the seconds to wait."""
        now = self._clock() if now is None else now
        # Asked for every request: the steady case (a window with room, no app cap known, no
        # pace, no pause to end) first, in two calls; then the whole decision.
        app_gate = self.app
        if (
            self.pacer is None
            and self._meter.refused_since is None
            and (app_gate is None or app_gate.unbounded(now))
            and self.window.admit_steady(now)
        ):
            if app_gate is not None:
                app_gate.count(now)
            return None
        window = self.window.delay(now)
        app = None if self.app is None else self.app.delay(now)
        pace = None if self.pacer is None else self.pacer.delay(now)
        if window is not None or app is not None or pace is not None:
            delay = max(d for d in (window, app, pace) if d is not None)
            self._meter.refused(delay, now)
            return delay
        if self._meter.refused_since is not None:  # usually no pause to end: no call
            self._meter.admitted(now)
        self.window.count(now)
        if self.app is not None:
            self.app.count(now)
        if self.pacer is not None:
            self.pacer.count(now)
        return None

    def release(
        self, rate: RateLimitInfo | None, *, rate_limited: bool = False, now: float | None = None
    ) -> None:
        """One request finished: update the window and the app cap from its answer."""
        now = self._clock() if now is None else now
        if not rate_limited and (rate is None or rate.app_limit is None):
            # Most answers: a success without app-cap headers.
            self.window.release(rate, now=now)
            if self.app is not None:
                self.app.release(None, rate_limited=False, now=now)
            return
        app_info = app_limit_of(rate)
        app_refused = rate_limited and _app_is_spent(rate, app_info, self.app)
        self.rate_limited_count += rate_limited
        user_refused = rate_limited and not (app_refused and _user_has_quota(rate))
        self.window.release(rate, rate_limited=user_refused, now=now)
        if self.app is not None:
            self.app.release(app_info, rate_limited=app_refused, now=now)

    def _gate_delays(self, now: float) -> tuple[float | None, float | None]:
        app = None if self.app is None else self.app.delay(now)
        return self.window.delay(now), app


def _app_is_spent(
    rate: RateLimitInfo | None, info: AppLimitInfo | None, app: AppGate | None
) -> bool:
    if app is None:
        return False
    if info is not None:
        return info.remaining == 0
    # No app headers: a 429 while the user window still had quota is the configured cap's.
    return app.limit is not None and _user_has_quota(rate)


def _user_has_quota(rate: RateLimitInfo | None) -> bool:
    return rate is not None and rate.remaining is not None and rate.remaining > 0


def build_gates(
    account_names: Iterable[str],
    *,
    max_rate: float | None = None,
    app_daily_limit: int | None = None,
    margin_s: float = DEFAULT_RESET_MARGIN_S,
    clock: Clock = time.time,
) -> dict[str, AccountGate]:
    """One gate per account, sharing the app cap and the estimate of the server's clock.

    ``max_rate``: requests per second per account at most (headroom for other tools on the
    same token); ``app_daily_limit``: the app's 24-hour cap when the API does not send it.
    """
    server_clock = ServerClock()
    app = AppGate(daily_limit=app_daily_limit, server_clock=server_clock, margin_s=margin_s)
    return {
        name: AccountGate(
            WindowGate(name, margin_s=margin_s, clock=clock, server_clock=server_clock),
            app=app,
            pacer=None if max_rate is None else Pacer(max_rate),
            clock=clock,
        )
        for name in account_names
    }
