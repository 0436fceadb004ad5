"""A gate against a model server whose clock is off, on simulated time: no 429 loop, no waste.

The server counts a request ``UP_S`` after it is sent, in fixed windows of its own clock, and
answers ``DOWN_S`` later with the rate-limit headers and a whole-second ``Date``.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import pytest

from batcher.api import RateLimitInfo
from batcher.ratelimit import DEFAULT_RESET_MARGIN_S, WindowGate
from tests.helpers import FakeClock

WINDOW_S = 10
LIMIT = 5
ROWS = 40
UP_S = 0.02
DOWN_S = 0.01
START = 1_000_003.3


@dataclass
class ModelServer:
    offset_s: float
    counts: dict[int, int] = field(default_factory=dict)

    def answer(self, sent_at: float) -> tuple[RateLimitInfo, bool]:
        server_now = sent_at + UP_S + self.offset_s
        index = math.floor(server_now / WINDOW_S)
        count = self.counts.get(index, 0) + 1
        self.counts[index] = count
        rate = RateLimitInfo(
            limit=LIMIT,
            remaining=max(0, LIMIT - count),
            reset_at=float((index + 1) * WINDOW_S),
            server_time=float(math.floor(server_now)),
        )
        return rate, count > LIMIT


@dataclass
class Outcome:
    rate_limited: int
    finished_at: float


def run(offset_s: float) -> Outcome:
    clock, server = FakeClock(START), ModelServer(offset_s)
    gate = WindowGate("a", clock=clock)
    answers: list[tuple[float, int, RateLimitInfo, bool]] = []
    done = rate_limited = seq = 0
    wake_at = clock.now
    while done < ROWS:
        clock.now = min(wake_at, answers[0][0]) if answers else wake_at
        while answers and answers[0][0] <= clock.now:
            at, _, rate, limited = heapq.heappop(answers)
            gate.release(rate, rate_limited=limited, now=at)
            rate_limited += limited
            done += not limited
        outstanding = ROWS - done - gate.in_flight
        delay = None
        while outstanding > 0 and (delay := gate.admit(clock.now)) is None:
            rate, limited = server.answer(clock.now)
            seq += 1
            heapq.heappush(answers, (clock.now + UP_S + DOWN_S, seq, rate, limited))
            outstanding -= 1
        wake_at = clock.now + delay if delay is not None and not math.isinf(delay) else math.inf
        assert answers or wake_at < math.inf or done == ROWS
    return Outcome(rate_limited=rate_limited, finished_at=clock.now)


def ideal_finish(offset_s: float) -> float:
    """Every window filled from its first moment (server clock), turned into local time."""
    server_start = START + offset_s
    first_reset = (math.floor(server_start / WINDOW_S) + 1) * WINDOW_S
    last_window_opens = first_reset + (ROWS // LIMIT - 2) * WINDOW_S
    return last_window_opens - offset_s + DOWN_S


@pytest.mark.parametrize(
    ("offset_s", "max_429s"),
    [
        pytest.param(0.0, 0, id="same-clock"),
        pytest.param(0.3, 0, id="server-0.3s-ahead"),
        pytest.param(3.0, 0, id="server-3s-ahead"),
        pytest.param(-0.3, 1, id="server-0.3s-behind"),
        pytest.param(-3.0, 1, id="server-3s-behind"),
    ],
)
def test_skewed_clocks_neither_loop_on_429s_nor_waste_time(offset_s: float, max_429s: int) -> None:
    outcome = run(offset_s)
    assert outcome.rate_limited <= max_429s
    late_s = outcome.finished_at - ideal_finish(offset_s)
    # Bounded: the Date header's one-second resolution, the margin and a round trip.
    assert -1e-6 <= late_s <= 1.0 + DEFAULT_RESET_MARGIN_S + 2 * (UP_S + DOWN_S)


def test_with_the_same_clock_only_the_margin_and_a_round_trip_are_lost() -> None:
    late_s = run(0.0).finished_at - ideal_finish(0.0)
    assert late_s <= DEFAULT_RESET_MARGIN_S + UP_S + 1e-6


@pytest.mark.parametrize("offset_s", [0.3, 0.77, 3.0, -0.3, -0.55, -3.0])
def test_tick_probes_bring_a_skewed_clock_within_a_few_round_trips(offset_s: float) -> None:
    outcome = run(offset_s)
    assert outcome.rate_limited == 0
    assert outcome.finished_at - ideal_finish(offset_s) <= 2 * (UP_S + DOWN_S)
