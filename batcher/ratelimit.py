"""Per-account rate gates driven by the API's rate-limit headers.

Every account gets one :class:`AccountGate`, a composite the dispatcher asks, without blocking,
whether a request may go now::

    AccountGate ─┬─ WindowGate   the user's fixed window (x-rate-limit-*), one per account
                 ├─ AppGate      the app-wide 24-hour cap (x-app-limit-24hour-*), shared
                 └─ Pacer        --max-rate, evenly spaced, no initial burst (optional)

Reset times are in the server's clock. :class:`ServerClock` (shared) bounds the offset between
the server's clock and ours from every answer's ``Date`` and reset headers, so a gate reopens
when the *server's* window has turned, whichever way the local clock is off.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

import anyio

from batcher.api import RateLimitInfo

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time``."""

DEFAULT_RESET_MARGIN_S: Final = 0.01
MIN_CLOSED_S: Final = 1.0
MAX_CLOSED_S: Final = 60.0
UNKNOWN_OFFSET_STEP_S: Final = 1.0
APP_WINDOW_S: Final = 86_400.0
ADAPTIVE_MIN_RATE: Final = 0.5
ADAPTIVE_MAX_RATE: Final = 1_000.0
ADAPTIVE_RAMP_UP: Final = 1.05
ADAPTIVE_SAMPLE: Final = 64
MAX_POLL_S: Final = 0.25


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


@dataclass(frozen=True, slots=True, kw_only=True)
class AppLimitInfo:
    """What one answer said about the app-wide 24-hour cap."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None


def app_limit_of(rate: RateLimitInfo | None) -> AppLimitInfo | None:
    """The app-cap part of ``rate`` (None when the answer did not speak of it)."""
    if rate is None:
        return None
    info = AppLimitInfo(
        limit=rate.app_limit, remaining=rate.app_remaining, reset_at=rate.app_reset_at
    )
    return info if info.limit is not None else None


class ServerClock:
    """Bounds on ``offset = server clock - local clock``, learnt from answers.

    ``Date`` (whole seconds) says ``lo >= date - received`` and ``hi <= date + 1 - sent``; an
    answer counted in the window ending at ``reset`` says ``hi <= reset - sent``. The estimate
    trusts the local clock (0) while the bounds allow it, until a 429 proves it wrong; then it
    takes ``lo``, the latest the server's clock can be: waiting for ``reset - lo`` never sends
    into a window that has not begun, and wastes only the width of what is still unknown.
    """

    __slots__ = ("confirmed_s", "hi", "lo", "trusted")

    lo: float
    hi: float
    trusted: bool
    confirmed_s: float | None

    def __init__(self) -> None:
        self.lo = -math.inf
        self.hi = math.inf
        self.trusted = True
        self.confirmed_s = None

    def __repr__(self) -> str:
        return f"<ServerClock offset in [{self.lo:.3f}, {self.hi:.3f}] trusted={self.trusted}>"

    @property
    def offset_s(self) -> float:
        """The offset used to turn the server's reset times into local ones."""
        if self.trusted and self.lo <= 0.0 <= self.hi:
            return 0.0
        if self.lo > -math.inf:
            return self.lo
        return self.hi - UNKNOWN_OFFSET_STEP_S if self.hi < math.inf else 0.0

    def to_local(self, server_time: float) -> float:
        """The local time at which the server's clock shows ``server_time``."""
        return server_time - self.offset_s

    def observe(self, rate: RateLimitInfo, *, sent_at: float, received_at: float) -> None:
        """Learn from one answer to a request sent no earlier than ``sent_at``."""
        lo, hi = -math.inf, math.inf
        if rate.server_time is not None:
            lo = rate.server_time - received_at
            hi = rate.server_time + 1.0 - sent_at
        if rate.reset_at is not None:
            hi = min(hi, rate.reset_at - sent_at)
        self._narrow(lo, hi)

    @property
    def confirmed(self) -> bool:
        """True once a request sent at a reset by this estimate (or a later one) was on time."""
        return self.confirmed_s is not None and self.offset_s <= self.confirmed_s

    def confirm(self, offset_s: float) -> None:
        """A request sent at a reset with estimate ``offset_s`` landed in the new window."""
        if self.confirmed_s is None or offset_s > self.confirmed_s:
            self.confirmed_s = offset_s

    def distrust_local_clock(self) -> None:
        """A 429 came where the local clock said a new window had begun."""
        self.trusted = False

    def _narrow(self, lo: float, hi: float) -> None:
        new_lo, new_hi = max(self.lo, lo), min(self.hi, hi)
        if new_lo > new_hi:  # a clock was stepped: start again from this answer
            new_lo, new_hi = lo, hi
        self.lo, self.hi = new_lo, new_hi


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


class _Blocking:
    """``await gate.acquire()`` over ``admit``/``release``, for callers that block in a gate."""

    __slots__ = ("_wakeup",)

    _wakeup: anyio.Event | None

    def admit(self, now: float | None = None) -> float | None:
        raise NotImplementedError

    async def acquire(self) -> None:
        """Wait until :meth:`admit` lets one request go (it is then counted in flight)."""
        while (delay := self.admit()) is not None:
            if self._wakeup is None or self._wakeup.is_set():
                self._wakeup = anyio.Event()
            with anyio.move_on_after(min(delay, MAX_POLL_S) if math.isinf(delay) else delay):
                await self._wakeup.wait()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()


class _Adaptive:
    """Pacing for a server that sends no rate-limit headers: halve on a 429, ramp up on success."""

    __slots__ = ("_recent", "pacer")

    pacer: Pacer | None
    _recent: deque[float]

    def __init__(self) -> None:
        self.pacer = None
        self._recent = deque(maxlen=ADAPTIVE_SAMPLE)

    def __repr__(self) -> str:
        return f"<_Adaptive {self.pacer!r}>"

    def delay(self, now: float) -> float | None:
        return None if self.pacer is None else self.pacer.delay(now)

    def count(self, now: float) -> None:
        self._recent.append(now)
        if self.pacer is not None:
            self.pacer.count(now)

    def slow_down(self) -> None:
        span = self._recent[-1] - self._recent[0] if len(self._recent) > 1 else 0.0
        observed = (len(self._recent) - 1) / span if span > 0 else ADAPTIVE_MIN_RATE
        current = self.pacer.rate_per_s if self.pacer is not None else observed
        rate = max(ADAPTIVE_MIN_RATE, min(current, observed) / 2)
        if self.pacer is None:
            self.pacer = Pacer(rate)
        self.pacer.rate_per_s = rate

    def speed_up(self) -> None:
        if self.pacer is not None:
            self.pacer.rate_per_s *= ADAPTIVE_RAMP_UP
            if self.pacer.rate_per_s > ADAPTIVE_MAX_RATE:
                self.pacer = None


class _Probe:
    """The first request into a new window while the clock estimate is unconfirmed."""

    __slots__ = ("sent_with",)

    sent_with: float | None  # the offset estimate it was sent with; None: not sent yet

    def __init__(self) -> None:
        self.sent_with = None


class _WaitMeter:
    """Wall time from a first timed refusal to the next admission (one pause, once)."""

    __slots__ = ("_refused_since", "waited_s")

    waited_s: float
    _refused_since: float | None

    def __init__(self) -> None:
        self.waited_s = 0.0
        self._refused_since = None

    def refused(self, delay: float, now: float) -> None:
        if self._refused_since is None and not math.isinf(delay):
            self._refused_since = now

    def admitted(self, now: float) -> None:
        if self._refused_since is not None:
            self.waited_s += max(0.0, now - self._refused_since)
            self._refused_since = None


class WindowGate(_Blocking):
    """Admission control for one account's fixed rate-limit window.

    ``remaining`` is the lowest count seen in the current window (answers arrive out of order),
    and every request in flight is counted against it: at most the limit is ever sent into a
    window. Until the first headers arrive only one request (a probe) is in flight; a server
    that sends no headers at all gets adaptive pacing once it answers 429.
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
        self._adaptive = _Adaptive()
        self._meter = _WaitMeter()
        self._wakeup = None

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
        self._roll_if_reset(now)
        if self._headerless:
            return self._adaptive.delay(now)
        if self.limit is None:
            return None if self.in_flight == 0 else math.inf
        if self._probe is not None and self._probe.sent_with is not None:
            return math.inf  # a new window, an unconfirmed clock: one probe first
        if self.remaining is None or self.remaining - self.in_flight > 0:
            return None
        if self.reset_at is None:
            return math.inf
        return max(0.0, self._opens_at(self.reset_at) - now)

    def count(self, now: float) -> None:
        """One request was admitted at ``now`` (by this gate or a composite holding it)."""
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
        sent_at = self._sent[0] if self._sent else now
        if self._sent:
            self._sent.pop()
        self.in_flight = max(0, self.in_flight - 1)
        if rate is not None:
            self._learn(rate, sent_at, now)
        elif self._probe is not None:
            self._probe.sent_with = None  # no answer: another request may probe
        if rate_limited:
            self._close_after_429(rate, now)
        elif rate is not None:
            self._penalty_s = MIN_CLOSED_S
            self._adaptive.speed_up()
        self._wake()

    def _opens_at(self, reset_at: float) -> float:
        return self.server_clock.to_local(reset_at) + self._margin_s

    def _roll_if_reset(self, now: float) -> None:
        if self.reset_at is not None and now >= self._opens_at(self.reset_at):
            # A new window has begun: assume its full quota until its first answer says more.
            self._rolled_past = self.reset_at
            self.reset_at = None
            self.remaining = self.limit
            if not self.server_clock.confirmed:
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
        elif rate.reset_at == self.reset_at and self.remaining is not None:
            self.remaining = min(self.remaining, rate.remaining)

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
        return self.server_clock.to_local(reset_at) + self._margin_s


class AccountGate(_Blocking):
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
        self._meter = _WaitMeter()
        self._wakeup = None

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
        pace = None if self.pacer is None else self.pacer.delay(now)
        delays = [d for d in (*self._gate_delays(now), pace) if d is not None]
        if delays:
            delay = max(delays)
            self._meter.refused(delay, now)
            return delay
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
        app_info = app_limit_of(rate)
        app_refused = rate_limited and _app_is_spent(rate, app_info, self.app)
        self.rate_limited_count += rate_limited
        user_refused = rate_limited and not (app_refused and _user_has_quota(rate))
        self.window.release(rate, rate_limited=user_refused, now=now)
        if self.app is not None:
            self.app.release(app_info, rate_limited=app_refused, now=now)
        self._wake()

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


__all__ = [
    "DEFAULT_RESET_MARGIN_S",
    "AccountGate",
    "AppGate",
    "AppLimitInfo",
    "Gate",
    "Pacer",
    "ServerClock",
    "WindowGate",
    "app_limit_of",
    "build_gates",
]
