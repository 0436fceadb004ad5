"""The offset between the server's clock and ours, bounded from the answers' headers.

Every answer narrows the bounds; they are narrowest from a request counted just after the
server's clock ticked a whole second. While they are wide, :meth:`ServerClock.claim_probe` plans
such requests: a few of a window's last slots are sent at staggered moments around one tick, so
the ``Date`` of their answers shows where, between the bounds, the server's clock really is.
"""

from __future__ import annotations

import math
from typing import Final

from batcher.api import RateLimitInfo

UNKNOWN_OFFSET_STEP_S: Final = 1.0
SETTLED_WIDTH_S: Final = 0.05
"""Bounds this close (or three fastest round trips, if wider) need no more probes."""
PROBE_LEAD_S: Final = 0.1
MAX_PROBES_PER_TICK: Final = 16
MAX_PROBE_PLANS: Final = 3
"""Probe plans per estimate: each costs held-back slots, the later ones narrow little."""


class ServerClock:
    """Bounds on ``offset = server clock - local clock``, learnt from answers.

    ``Date`` (whole seconds) says ``lo >= date - received`` and ``hi <= date + 1 - sent``; an
    answer counted in the window ending at ``reset`` says ``hi <= reset - sent``. The estimate
    trusts the local clock (0) while the bounds allow it, until a 429 proves it wrong; then it
    takes ``lo``, the latest the server's clock can be. Whatever the estimate, a window counts
    as open from ``reset - lo`` on (:meth:`opens_at`): a request sent then never lands early.
    """

    __slots__ = ("_plan", "_plans", "confirmed_s", "hi", "lo", "min_round_trip_s", "trusted")

    lo: float
    hi: float
    trusted: bool
    confirmed_s: float | None
    min_round_trip_s: float
    _plan: TickPlan | None
    _plans: int

    def __init__(self) -> None:
        self.lo = -math.inf
        self.hi = math.inf
        self.trusted = True
        self.confirmed_s = None
        self.min_round_trip_s = math.inf
        self._plan = None
        self._plans = 0

    def __repr__(self) -> str:
        return (
            f"<ServerClock offset in [{self.lo:.3f}, {self.hi:.3f}] trusted={self.trusted} "
            f"settled={self.settled}>"
        )

    @property
    def offset_s(self) -> float:
        """The offset used to turn the server's reset times into local ones."""
        if self.trusted and self.lo <= 0.0 <= self.hi:
            return 0.0
        if self.lo > -math.inf:
            return self.lo
        return self.hi - UNKNOWN_OFFSET_STEP_S if self.hi < math.inf else 0.0

    @property
    def settled(self) -> bool:
        """True when the bounds are as narrow as probing can make them."""
        fastest = 0.0 if math.isinf(self.min_round_trip_s) else self.min_round_trip_s
        return self.hi - self.lo <= max(SETTLED_WIDTH_S, 3 * fastest)

    @property
    def wants_probes(self) -> bool:
        """True when probes would narrow the bounds: both known, still apart, plans left."""
        return (
            not self.settled
            and not math.isinf(self.hi - self.lo)
            and (self._plans < MAX_PROBE_PLANS or self._plan_is_open)
        )

    def to_local(self, server_time: float) -> float:
        """The local time at which the server's clock shows ``server_time`` (by the estimate)."""
        return server_time - self.offset_s

    def opens_at(self, reset_at: float, margin_s: float) -> float:
        """The local time from which requests may go into the window beginning at ``reset_at``.

        By the estimate plus ``margin_s``, but never later than ``reset_at - lo``: from then on
        the server's clock has surely passed ``reset_at``.
        """
        # Asked on every admission: the common case (a trusted estimate of 0) without calls.
        lo = self.lo
        if self.trusted and lo <= 0.0 <= self.hi:
            estimated = reset_at + margin_s
        else:
            estimated = reset_at - self.offset_s + margin_s
        surely = reset_at - lo
        return estimated if estimated < surely else surely

    def proven(self, margin_s: float) -> bool:
        """True when :meth:`opens_at` (with ``margin_s``) rests on the bounds alone."""
        return self.lo >= self.offset_s - margin_s

    def earliest_local(self, server_time: float) -> float:
        """The earliest local time at which the server's clock may show ``server_time``."""
        return server_time - self.hi

    def observe(self, rate: RateLimitInfo, *, sent_at: float, received_at: float) -> None:
        """Learn from one answer to a request sent no earlier than ``sent_at``."""
        lo, hi = -math.inf, math.inf
        server_time, reset_at = rate.server_time, rate.reset_at
        if server_time is not None:
            lo = server_time - received_at
            hi = server_time + 1.0 - sent_at
        if reset_at is not None and reset_at - sent_at < hi:
            hi = reset_at - sent_at
        round_trip_s = received_at - sent_at
        if round_trip_s < self.min_round_trip_s:
            self.min_round_trip_s = max(0.0, round_trip_s)
        # Called for every answer; once the bounds settle, few answers move them.
        if lo > self.lo or hi < self.hi:
            self._narrow(lo, hi)

    def claim_probe(self, now: float, latest: float) -> float | None:
        """A local time in ``[now, latest]`` to send a request that narrows the bounds, or None.

        Probes claimed while one plan is open share its tick and spread over the bounds.
        """
        if not self.wants_probes:
            return None
        plan = self._plan
        at = None if plan is None else plan.claim(now)
        if (at is None or at > latest) and self._plans < MAX_PROBE_PLANS:
            plan = self._plan_between(now + PROBE_LEAD_S, latest)
            if plan is None:
                return None
            self._plan = plan
            self._plans += 1
            at = plan.claim(now)
        return at if at is not None and at <= latest else None

    def _plan_between(self, first: float, last: float) -> TickPlan | None:
        """The plan whose probes, all sent within ``[first, last]``, cover most of the bounds."""
        best: TickPlan | None = None
        for tick in range(math.floor(last + self.lo), math.ceil(last + self.hi) + 1):
            # The probe for offset m goes at ``tick - m``: m in [tick - last, tick - first].
            lo, hi = max(self.lo, tick - last), min(self.hi, tick - first)
            if hi > lo and (best is None or hi - lo > best.hi - best.lo):
                best = TickPlan(tick=float(tick), lo=lo, hi=hi)
        return best

    @property
    def _plan_is_open(self) -> bool:
        return self._plan is not None and self._plan.claimed < MAX_PROBES_PER_TICK

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
            self._plan, self._plans = None, 0
        self.lo, self.hi = new_lo, new_hi


class TickPlan:
    """Send times around one whole second ``tick`` of the server's clock.

    A request sent at local ``tick - m`` is answered with a ``Date`` of ``tick`` if the offset
    is at least ``m`` (then ``lo`` rises to about ``m``), else of the second before (then ``hi``
    falls to ``m``). The k-th claim takes ``m`` at the k-th point of the van der Corput sequence
    between the bounds, so any number of claims splits them about evenly.
    """

    __slots__ = ("claimed", "hi", "lo", "tick")

    tick: float
    lo: float
    hi: float
    claimed: int

    def __init__(self, *, tick: float, lo: float, hi: float) -> None:
        self.tick, self.lo, self.hi = tick, lo, hi
        self.claimed = 0

    def __repr__(self) -> str:
        return f"<TickPlan tick={self.tick} m in [{self.lo:.3f}, {self.hi:.3f}] {self.claimed}>"

    def claim(self, now: float) -> float | None:
        """The local send time of the next probe still ahead of ``now``; None: none is left."""
        while self.claimed < MAX_PROBES_PER_TICK:
            self.claimed += 1
            at = self.tick - (self.lo + (self.hi - self.lo) * van_der_corput(self.claimed))
            if at >= now:
                return at
        return None


def van_der_corput(index: int) -> float:
    """The ``index``-th point (from 1) of the base-2 van der Corput sequence: 1/2, 1/4, 3/4, ..."""
    point, scale = 0.0, 0.5
    while index:
        point += scale * (index & 1)
        index >>= 1
        scale /= 2
    return point
