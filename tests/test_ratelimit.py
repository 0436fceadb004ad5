"""The window gate, on a fake clock: when it admits, when it holds, what it learns."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batcher.api import RateLimitInfo, parse_rate_limit
from batcher.ratelimit import (
    DEFAULT_RESET_MARGIN_S,
    AccountGate,
    AppGate,
    AppLimitInfo,
    Gate,
    Pacer,
    WindowGate,
    app_limit_of,
    build_gates,
)
from batcher.ratelimit.clock import ServerClock
from tests.helpers import FakeClock

NOW = 1_000_000.0


def headers(*, limit: int = 10, remaining: int, reset_at: float) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, reset_at=reset_at)


def admitted(gate: Gate, times: int = 1) -> list[bool]:
    return [gate.admit() is None for _ in range(times)]


def opened(clock: FakeClock, *, remaining: int, reset_in: float, limit: int = 10) -> WindowGate:
    """A gate that has seen one answer."""
    gate = WindowGate("a", clock=clock)
    assert gate.admit() is None
    gate.release(headers(limit=limit, remaining=remaining, reset_at=clock.now + reset_in))
    return gate


def test_only_one_probe_before_the_first_headers() -> None:
    gate = WindowGate("a", clock=FakeClock(NOW))
    assert gate.admit() is None
    assert gate.admit() == math.inf


def test_first_headers_open_the_gate_to_the_remaining_quota() -> None:
    clock = FakeClock(NOW)
    gate = opened(clock, remaining=3, reset_in=60)
    assert admitted(gate, 4) == [True, True, True, False]
    assert gate.paused_until == pytest.approx(clock.now + 60 + DEFAULT_RESET_MARGIN_S)
    assert gate.admit() == pytest.approx(60 + DEFAULT_RESET_MARGIN_S)


def test_requests_in_flight_count_against_remaining() -> None:
    gate = opened(FakeClock(NOW), remaining=2, reset_in=60)
    assert admitted(gate, 3) == [True, True, False]
    assert gate.in_flight == 2


def test_a_new_window_opens_with_one_probe_then_the_full_limit() -> None:
    clock = FakeClock(NOW)
    gate = opened(clock, limit=5, remaining=0, reset_in=30)
    assert gate.admit() is not None
    clock.now += 30 + DEFAULT_RESET_MARGIN_S
    assert admitted(gate, 2) == [True, False]  # the clock is not confirmed yet
    gate.release(headers(limit=5, remaining=4, reset_at=clock.now + 30))
    assert admitted(gate, 5) == [True] * 4 + [False]


def test_a_confirmed_clock_opens_the_next_window_at_full_speed() -> None:
    clock = FakeClock(NOW)
    gate = opened(clock, limit=5, remaining=0, reset_in=30)
    for _ in range(2):
        clock.now += 30 + DEFAULT_RESET_MARGIN_S
        while gate.admit() is None:
            pass
        gate.release(headers(limit=5, remaining=4, reset_at=clock.now + 30))
        gate.in_flight = 0
    clock.now += 30 + DEFAULT_RESET_MARGIN_S
    assert admitted(gate, 6) == [True] * 5 + [False]


def test_out_of_order_answers_keep_the_lowest_remaining() -> None:
    clock = FakeClock(NOW)
    gate = WindowGate("a", clock=clock)
    for remaining in (7, 3, 5):
        gate.in_flight += 1
        gate.release(headers(remaining=remaining, reset_at=clock.now + 60))
    assert gate.remaining == 3


def test_answers_from_an_ended_window_are_ignored() -> None:
    clock = FakeClock(NOW)
    gate = opened(clock, remaining=0, reset_in=5)
    clock.now += 5 + DEFAULT_RESET_MARGIN_S
    assert gate.admit() is None  # rolls into the next window
    gate.release(headers(remaining=9, reset_at=clock.now + 60))
    gate.in_flight += 1
    gate.release(headers(remaining=0, reset_at=clock.now - 1))
    assert gate.remaining == 9


def test_429_closes_the_gate_until_the_reset_it_names() -> None:
    clock = FakeClock(NOW)
    gate = WindowGate("a", clock=clock)
    assert gate.admit() is None
    gate.release(headers(remaining=0, reset_at=clock.now + 42), rate_limited=True)
    assert gate.rate_limited_count == 1
    assert gate.paused_until == pytest.approx(clock.now + 42 + DEFAULT_RESET_MARGIN_S)
    assert gate.admit() is not None


def test_429_without_headers_backs_off_longer_each_time() -> None:
    clock = FakeClock(NOW)
    gate = WindowGate("a", clock=clock)
    pauses = []
    for _ in range(3):
        gate.in_flight += 1
        gate.release(None, rate_limited=True)
        until = gate.paused_until
        assert until is not None
        pauses.append(until - clock.now)
        clock.now = until
    assert pauses[0] < pauses[1] < pauses[2]


def test_retry_after_is_honoured_when_longer_than_the_reset() -> None:
    clock = FakeClock(NOW)
    gate = WindowGate("a", clock=clock)
    gate.in_flight += 1
    rate = RateLimitInfo(limit=10, remaining=0, reset_at=clock.now + 1, retry_after_s=20)
    gate.release(rate, rate_limited=True)
    assert gate.paused_until == pytest.approx(clock.now + 20)


def test_a_server_without_headers_is_not_gated() -> None:
    gate = WindowGate("a", clock=FakeClock(NOW))
    assert gate.admit() is None
    gate.release(RateLimitInfo())
    assert all(admitted(gate, 50))


def test_without_headers_a_429_slows_the_pace_and_successes_ramp_it_up() -> None:
    clock = FakeClock(NOW)
    gate = WindowGate("a", clock=clock)
    for _ in range(20):  # 20 requests per second, no headers
        assert gate.admit() is None
        gate.release(RateLimitInfo())
        clock.now += 0.05
    gate.in_flight += 1
    gate.release(RateLimitInfo(), rate_limited=True)
    clock.now += 10  # past the penalty
    assert gate.admit() is None
    slow = gate.admit()
    assert slow is not None
    assert slow == pytest.approx(0.1, rel=0.2)  # about half the observed rate
    for _ in range(50):
        gate.release(RateLimitInfo())
    clock.now += slow
    assert gate.admit() is None
    faster = gate.admit()
    assert faster is not None
    assert faster < slow


def test_waited_time_counts_a_pause_once_however_often_it_is_asked() -> None:
    clock = FakeClock(NOW)
    gate = opened(clock, remaining=1, reset_in=600)
    assert gate.admit() is None  # the window's last slot
    for _ in range(3):
        assert gate.admit() is not None
        clock.now += 5
    gate.release(headers(remaining=5, reset_at=clock.now + 1200))
    assert gate.admit() is None
    assert gate.waited_s == pytest.approx(15)


def test_repr_shows_live_state() -> None:
    assert "remaining=None" in repr(WindowGate("alice"))


def test_build_gates_gives_protocol_gates_sharing_the_app_cap() -> None:
    clock = FakeClock(NOW)
    gates = build_gates(["a", "b"], app_daily_limit=3, clock=clock)
    typed: dict[str, Gate] = dict(gates)
    for name, gate in typed.items():
        assert gate.name == name
        assert gate.admit() is None
        gate.release(headers(remaining=10, reset_at=clock.now + 60))
    assert typed["a"].admit() is None
    assert typed["b"].admit() is not None  # 2 answered + 1 in flight: the app's 3 are spent
    assert typed["a"].in_flight == 1


def test_app_429_pauses_every_account_but_not_the_users_window() -> None:
    clock = FakeClock(NOW)
    gates = build_gates(["a", "b"], clock=clock)
    a, b = gates["a"], gates["b"]
    assert a.admit() is None
    rate = RateLimitInfo(
        limit=10,
        remaining=8,
        reset_at=clock.now + 60,
        app_limit=100,
        app_remaining=0,
        app_reset_at=clock.now + 3600,
    )
    a.release(rate, rate_limited=True)
    assert a.rate_limited_count == 1
    assert a.window.remaining == 8
    for gate in (a, b):
        assert gate.admit() == pytest.approx(3600 + DEFAULT_RESET_MARGIN_S)
        assert gate.paused_until == pytest.approx(clock.now + 3600 + DEFAULT_RESET_MARGIN_S)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {
                b"x-app-limit-24hour-limit": b"180000",
                b"x-app-limit-24hour-remaining": b"17",
                b"x-app-limit-24hour-reset": b"1700000000",
            },
            AppLimitInfo(limit=180000, remaining=17, reset_at=1700000000.0),
            id="all",
        ),
        pytest.param({}, None, id="none"),
        pytest.param(
            {b"x-app-limit-24hour-limit": b"lots", b"x-app-limit-24hour-reset": b"soon"},
            None,
            id="garbage",
        ),
    ],
)
def test_app_limit_headers(raw: dict[bytes, bytes], expected: AppLimitInfo | None) -> None:
    assert app_limit_of(parse_rate_limit(raw)) == expected


def test_max_rate_paces_evenly_without_an_initial_burst() -> None:
    clock = FakeClock(NOW)
    gate = AccountGate(WindowGate("a", clock=clock), pacer=Pacer(10), clock=clock)
    gate.window.limit = gate.window.remaining = 1000  # headers seen: no probe rule
    assert gate.admit() is None
    assert gate.admit() == pytest.approx(0.1)
    clock.now += 0.1
    assert gate.admit() is None
    clock.now += 60  # idle for long: still no burst
    assert admitted(gate, 2) == [True, False]


class _WindowWithoutShortcut(WindowGate):
    """The reference: every admission takes the whole decision (delay, then count)."""

    def admit_steady(self, now: float) -> bool:
        return False


def _gate_pair(clock: FakeClock, daily_limit: int | None) -> tuple[AccountGate, AccountGate]:
    def gate(window_type: type[WindowGate]) -> AccountGate:
        server_clock = ServerClock()
        window = window_type("a", clock=clock, server_clock=server_clock)
        app = AppGate(daily_limit=daily_limit, server_clock=server_clock)
        return AccountGate(window, app=app, clock=clock)

    return gate(WindowGate), gate(_WindowWithoutShortcut)


_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=3.0)),
        st.tuples(st.just("admit"), st.none()),
        st.tuples(st.just("admit"), st.none()),
        st.tuples(
            st.just("answer"),
            st.tuples(
                st.integers(min_value=0, max_value=100),  # remaining, of 100
                st.integers(min_value=0, max_value=4),  # reset, whole seconds ahead
                st.sampled_from(["ok", "ok", "ok", "429", "bare-429", "no-headers", "no-answer"]),
            ),
        ),
    ),
    max_size=60,
)


@settings(max_examples=500, deadline=None)
@given(steps=_STEPS, daily_limit=st.sampled_from([None, 5, 400]))
@example(  # a 429 without headers closes the gate while the window has room
    steps=[
        ("admit", None),
        ("answer", (90, 3, "ok")),
        ("admit", None),
        ("answer", (0, 0, "bare-429")),
        ("admit", None),
    ],
    daily_limit=None,
)
@example(  # the window's reset passes: the next request opens a new one
    steps=[("admit", None), ("answer", (90, 1, "ok")), ("wait", 1.5), ("admit", None)],
    daily_limit=None,
)
def test_the_steady_shortcut_decides_as_the_whole_gate_does(
    steps: list[tuple[str, Any]], daily_limit: int | None
) -> None:
    clock = FakeClock(NOW)
    fast, reference = _gate_pair(clock, daily_limit)
    for kind, value in steps:
        if kind == "wait":
            clock.now += value
        elif kind == "admit":
            assert fast.admit() == reference.admit()
        elif fast.in_flight > 0:
            remaining, reset_in, outcome = value
            rate = None
            if outcome in ("ok", "429"):
                reset_at = float(math.floor(clock.now) + reset_in)
                rate = RateLimitInfo(100, remaining, reset_at, None, float(math.floor(clock.now)))
            elif outcome in ("no-headers", "bare-429"):
                rate = RateLimitInfo()
            for gate in (fast, reference):
                gate.release(rate, rate_limited=outcome.endswith("429"))
        assert _state(fast) == _state(reference)


def _state(gate: AccountGate) -> tuple[object, ...]:
    window, app = gate.window, gate.app
    assert app is not None
    return (
        window.in_flight,
        window.remaining,
        window.reset_at,
        window.limit,
        app.in_flight,
        app.remaining,
        app.reset_at,
    )
