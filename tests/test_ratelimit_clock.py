"""The server's clock: its bounds, when a window opens, and the tick probes that narrow them."""

from __future__ import annotations

import math

import pytest

from batcher.api import RateLimitInfo
from batcher.ratelimit import ServerClock, WindowGate
from batcher.ratelimit.clock import (
    MAX_PROBE_PLANS,
    MAX_PROBES_PER_TICK,
    PROBE_LEAD_S,
    SETTLED_WIDTH_S,
    TickPlan,
    van_der_corput,
)
from batcher.ratelimit.window import PROBE_GUARD_S, PROBE_SLOTS
from tests.helpers import FakeClock

NOW = 1_000_000.25
RESET = 1_000_010.0
MARGIN_S = 0.01


def bounded(lo: float, hi: float, *, trusted: bool = True) -> ServerClock:
    clock = ServerClock()
    clock.lo, clock.hi, clock.trusted = lo, hi, trusted
    return clock


@pytest.mark.parametrize(
    ("index", "point"),
    [(1, 0.5), (2, 0.25), (3, 0.75), (4, 0.125), (5, 0.625), (6, 0.375), (7, 0.875)],
)
def test_van_der_corput_halves_the_largest_gap_first(index: int, point: float) -> None:
    assert van_der_corput(index) == point


@pytest.mark.parametrize(
    ("lo", "hi", "trusted", "opens_at"),
    [
        pytest.param(-math.inf, math.inf, True, RESET + MARGIN_S, id="nothing-known"),
        pytest.param(-0.9, 0.5, True, RESET + MARGIN_S, id="trusted-zero-plus-margin"),
        pytest.param(-0.004, 0.5, True, RESET + 0.004, id="proven-before-the-margin"),
        pytest.param(0.29, 0.33, True, RESET - 0.29, id="ahead-proven"),
        pytest.param(-0.33, -0.29, True, RESET + 0.33, id="behind-proven"),
        pytest.param(-0.9, 0.5, False, RESET + 0.9, id="distrusted-takes-lo"),
        pytest.param(-math.inf, 2.0, True, RESET + MARGIN_S - 1.0, id="only-hi-known"),
    ],
)
def test_a_window_opens_by_the_estimate_but_never_after_reset_minus_lo(
    lo: float, hi: float, trusted: bool, opens_at: float
) -> None:
    assert bounded(lo, hi, trusted=trusted).opens_at(RESET, MARGIN_S) == pytest.approx(opens_at)


@pytest.mark.parametrize(
    ("rate", "sent_at", "lo", "hi"),
    [
        pytest.param(
            RateLimitInfo(server_time=NOW - 0.25), NOW - 0.03, -0.25, 0.78, id="date-only"
        ),
        pytest.param(
            RateLimitInfo(server_time=NOW - 0.25, reset_at=NOW + 0.5),
            NOW - 0.03,
            -0.25,
            0.53,
            id="reset-caps-hi",
        ),
        pytest.param(RateLimitInfo(reset_at=NOW + 2), NOW, -math.inf, 2.0, id="reset-only"),
    ],
)
def test_each_answer_bounds_the_offset(
    rate: RateLimitInfo, sent_at: float, lo: float, hi: float
) -> None:
    clock = ServerClock()
    clock.observe(rate, sent_at=sent_at, received_at=NOW)
    assert clock.lo == pytest.approx(lo)
    assert clock.hi == pytest.approx(hi)
    assert clock.min_round_trip_s == pytest.approx(NOW - sent_at)


@pytest.mark.parametrize(
    ("lo", "hi", "round_trip_s", "wants_probes"),
    [
        pytest.param(-0.5, 0.5, 0.02, True, id="wide"),
        pytest.param(0.0, SETTLED_WIDTH_S, 0.02, False, id="settled"),
        pytest.param(0.0, 0.15, 0.1, False, id="as-narrow-as-round-trips-allow"),
        pytest.param(-math.inf, 0.5, 0.02, False, id="no-date-header"),
    ],
)
def test_probes_are_wanted_only_while_they_can_narrow_the_bounds(
    lo: float, hi: float, round_trip_s: float, wants_probes: bool
) -> None:
    clock = bounded(lo, hi)
    clock.min_round_trip_s = round_trip_s
    assert clock.wants_probes is wants_probes
    assert (clock.claim_probe(NOW, NOW + 3) is not None) is wants_probes


@pytest.mark.parametrize(
    ("latest", "tick", "hi"),
    [
        pytest.param(NOW + 3, 1_000_002, 0.5, id="room-for-the-whole-bounds"),
        pytest.param(NOW + 1.2, 1_000_000, -PROBE_LEAD_S - 0.25, id="clipped-to-the-window"),
    ],
)
def test_probes_of_one_plan_share_a_tick_and_spread_over_the_bounds(
    latest: float, tick: int, hi: float
) -> None:
    clock = bounded(-0.5, 0.5)
    sends = [clock.claim_probe(NOW, latest) for _ in range(3)]
    points = [-0.5 + (hi + 0.5) * share for share in (0.5, 0.25, 0.75)]
    assert sends == [pytest.approx(tick - m) for m in points]
    assert all(s is not None and NOW <= s <= latest for s in sends)


def test_no_probe_when_no_tick_fits_before_latest() -> None:
    assert bounded(-0.5, 0.5).claim_probe(NOW, NOW + 0.1) is None


def test_a_plan_skips_send_times_already_past_and_ends_after_its_claims() -> None:
    plan = TickPlan(tick=NOW + 1, lo=-0.5, hi=0.5)
    assert plan.claim(NOW + 1.1) == pytest.approx(NOW + 1.125)  # 1/2 and 1/4 are past
    while plan.claim(NOW) is not None:
        pass
    assert plan.claimed == MAX_PROBES_PER_TICK


def answer(*, date: float, remaining: int, limit: int = 10) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, reset_at=RESET, server_time=date)


def unsettled_gate(clock: FakeClock) -> WindowGate:
    """A gate whose first answer left the offset within [-0.25, ~0.75]."""
    gate = WindowGate("a", clock=clock, margin_s=MARGIN_S)
    assert gate.admit() is None
    clock.now += 0.02
    gate.release(answer(date=math.floor(NOW), remaining=9))
    return gate


def test_the_last_slots_of_a_window_wait_for_their_tick_probes() -> None:
    clock = FakeClock(NOW)
    gate = unsettled_gate(clock)
    normal = [gate.admit() for _ in range(9 - PROBE_SLOTS)]
    assert normal == [None] * (9 - PROBE_SLOTS)
    for _ in range(9 - PROBE_SLOTS):
        gate.release(answer(date=math.floor(NOW), remaining=PROBE_SLOTS))
    sent_at = []
    for _ in range(PROBE_SLOTS):
        wait = gate.admit()
        assert wait is not None
        clock.now += wait
        assert clock.now <= RESET - gate.server_clock.hi - PROBE_GUARD_S
        assert gate.admit() is None
        sent_at.append(clock.now)
    assert len(set(sent_at)) == PROBE_SLOTS
    assert gate.admit() is not None  # the window is spent


@pytest.mark.parametrize(
    ("date_after_tick", "narrowed"),
    [pytest.param(True, "lo", id="counted-after-the-tick"), pytest.param(False, "hi", id="before")],
)
def test_a_tick_probe_answer_narrows_one_bound(date_after_tick: bool, narrowed: str) -> None:
    clock = FakeClock(NOW)
    gate = unsettled_gate(clock)
    gate.remaining = 1  # only the probe slot is left
    before = (gate.server_clock.lo, gate.server_clock.hi)
    wait = gate.admit()
    assert wait is not None
    clock.now += wait
    assert gate.admit() is None
    tick = math.ceil(clock.now + gate.server_clock.lo)
    clock.now += 0.02
    gate.release(answer(date=tick if date_after_tick else tick - 1, remaining=0))
    after = (gate.server_clock.lo, gate.server_clock.hi)
    if narrowed == "lo":
        assert after[0] > before[0] + 0.3
        assert after[1] == before[1]
    else:
        assert after[1] < before[1] - 0.3
        assert after[0] == before[0]


def test_no_probe_when_the_window_ends_too_soon() -> None:
    clock = FakeClock(RESET - 0.6)
    gate = WindowGate("a", clock=clock)
    assert gate.admit() is None
    gate.release(answer(date=math.floor(clock.now), remaining=1))
    assert gate.admit() is None  # no tick fits before the window ends: the slot goes now


def test_a_proven_clock_opens_the_next_window_at_once_and_in_full() -> None:
    clock = FakeClock(NOW)
    gate = WindowGate("a", clock=clock, server_clock=bounded(0.29, 0.31), margin_s=MARGIN_S)
    gate.limit, gate.remaining, gate.reset_at = 5, 0, RESET
    clock.now = RESET - 0.29 - 1e-6
    assert gate.admit() == pytest.approx(1e-6, abs=1e-9)
    clock.now += 1e-6
    assert [gate.admit() for _ in range(6)] == [None] * 5 + [math.inf]


def test_probing_stops_after_a_few_plans_until_the_clock_steps() -> None:
    clock = bounded(-0.5, 0.5)
    now = NOW
    for _ in range(MAX_PROBE_PLANS):
        assert clock.claim_probe(now, now + 3) is not None
        now += 4.0  # the plan's tick has passed: the next claim needs a new plan
    assert clock.claim_probe(now, now + 3) is None
    clock.observe(RateLimitInfo(server_time=now + 5), sent_at=now, received_at=now)  # stepped
    assert clock.claim_probe(now, now + 3) is not None
