"""The window gate, on a fake clock: when it admits, when it holds, what it learns."""

from __future__ import annotations

import anyio
import pytest

from batcher.api import RateLimitInfo
from batcher.ratelimit import DEFAULT_RESET_MARGIN_S, WindowGate

pytestmark = pytest.mark.anyio


class FakeClock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def headers(*, limit: int = 10, remaining: int, reset_at: float) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, reset_at=reset_at)


async def admits_now(gate: WindowGate) -> bool:
    """True when acquire() returns at once (the slot is then counted)."""
    with anyio.move_on_after(0.05):
        await gate.acquire()
        return True
    return False


async def test_only_one_probe_before_the_first_headers() -> None:
    gate = WindowGate("a", clock=FakeClock())
    assert await admits_now(gate)
    assert not await admits_now(gate)


async def test_first_headers_open_the_gate_to_the_remaining_quota() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    await gate.acquire()
    gate.release(headers(remaining=3, reset_at=clock.now + 60))
    assert [await admits_now(gate) for _ in range(4)] == [True, True, True, False]
    assert gate.paused_until == pytest.approx(clock.now + 60 + DEFAULT_RESET_MARGIN_S)


async def test_requests_in_flight_count_against_remaining() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    await gate.acquire()
    gate.release(headers(remaining=2, reset_at=clock.now + 60))
    await gate.acquire()
    await gate.acquire()
    assert gate.in_flight == 2
    assert not await admits_now(gate)


async def test_a_new_window_restores_the_full_limit() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    await gate.acquire()
    gate.release(headers(limit=5, remaining=0, reset_at=clock.now + 30))
    assert not await admits_now(gate)
    clock.now += 30 + DEFAULT_RESET_MARGIN_S
    assert [await admits_now(gate) for _ in range(6)] == [True] * 5 + [False]


async def test_out_of_order_answers_keep_the_lowest_remaining() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    for remaining in (7, 3, 5):
        await gate.acquire()
        gate.release(headers(remaining=remaining, reset_at=clock.now + 60))
    assert gate.remaining == 3


async def test_answers_from_an_ended_window_are_ignored() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    await gate.acquire()
    gate.release(headers(remaining=9, reset_at=clock.now + 60))
    await gate.acquire()
    gate.release(headers(remaining=0, reset_at=clock.now - 5))
    assert gate.remaining == 9


async def test_429_closes_the_gate_until_the_reset_it_names() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    await gate.acquire()
    gate.release(headers(remaining=0, reset_at=clock.now + 42), rate_limited=True)
    assert gate.rate_limited_count == 1
    assert gate.paused_until == pytest.approx(clock.now + 42 + DEFAULT_RESET_MARGIN_S)
    assert not await admits_now(gate)


async def test_429_without_headers_backs_off_longer_each_time() -> None:
    clock = FakeClock()
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


async def test_retry_after_is_honoured_when_longer_than_the_reset() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    gate.in_flight += 1
    rate = RateLimitInfo(limit=10, remaining=0, reset_at=clock.now + 1, retry_after_s=20)
    gate.release(rate, rate_limited=True)
    assert gate.paused_until == pytest.approx(clock.now + 20)


async def test_a_server_without_headers_is_not_gated() -> None:
    gate = WindowGate("a", clock=FakeClock())
    await gate.acquire()
    gate.release(RateLimitInfo())
    assert all([await admits_now(gate) for _ in range(50)])


async def test_release_wakes_a_waiter() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    await gate.acquire()
    admitted = anyio.Event()

    async def wait_for_slot() -> None:
        await gate.acquire()
        admitted.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_slot)
            await anyio.sleep(0.01)
            assert not admitted.is_set()
            gate.release(headers(remaining=5, reset_at=clock.now + 60))
            await admitted.wait()


def test_repr_shows_live_state() -> None:
    assert "remaining=None" in repr(WindowGate("alice"))


async def test_waited_time_counts_a_pause_once_however_many_workers_wait() -> None:
    clock = FakeClock()
    gate = WindowGate("a", clock=clock)
    await gate.acquire()
    gate.release(headers(remaining=1, reset_at=clock.now + 600))
    await gate.acquire()  # the window's last slot: the next two must wait

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate.acquire)
            tg.start_soon(gate.acquire)
            await anyio.sleep(0.01)
            clock.now += 10
            gate.release(headers(remaining=5, reset_at=clock.now + 1200))
    assert gate.waited_s == pytest.approx(10)
