"""The dispatcher: fair across accounts, bounded, and it ends when the work does."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from batcher.api import RateLimitInfo
from batcher.dispatch import Dispatcher, Pending
from batcher.models import InitializeRequest, WorkItem

pytestmark = pytest.mark.anyio


class ScriptedGate:
    """A gate that admits while ``open`` and counts what it saw."""

    def __init__(self, *, open_: bool = True, delay_s: float = math.inf) -> None:
        self.open = open_
        self.delay_s = delay_s
        self.in_flight = 0
        self.released = 0

    def admit(self, now: float | None = None) -> float | None:
        if not self.open:
            return self.delay_s
        self.in_flight += 1
        return None

    def release(
        self, rate: RateLimitInfo | None, *, rate_limited: bool = False, now: float | None = None
    ) -> None:
        self.in_flight -= 1
        self.released += 1


def pending(account: str, row: int) -> Pending:
    request = InitializeRequest(media_type="image/png", media_category="tweet_image", total_bytes=1)
    item = WorkItem(row=row, key=f"{account}{row}", path=None, account=account, request=request)
    return Pending(item=item, account=account)


async def test_a_paused_account_does_not_hold_back_the_others() -> None:
    gates = {"paused": ScriptedGate(open_=False), "busy": ScriptedGate()}
    dispatcher = Dispatcher(gates, buffer_per_account=10)
    for row in range(3):
        await dispatcher.put(pending("paused", row))
        await dispatcher.put(pending("busy", row))
    with anyio.fail_after(1):
        taken = [await dispatcher.take() for _ in range(3)]
    assert [p.account for p in taken if p is not None] == ["busy"] * 3
    assert dispatcher.queued("paused") == 3


async def test_accounts_take_turns() -> None:
    dispatcher = Dispatcher({"a": ScriptedGate(), "b": ScriptedGate()}, buffer_per_account=10)
    for row in range(3):
        await dispatcher.put(pending("a", row))
        await dispatcher.put(pending("b", row))
    taken = [await dispatcher.take() for _ in range(4)]
    assert [p.account for p in taken if p is not None] == ["a", "b", "a", "b"]


async def test_the_reader_waits_while_an_accounts_queue_is_full() -> None:
    dispatcher = Dispatcher({"a": ScriptedGate()}, buffer_per_account=2)
    await dispatcher.put(pending("a", 1))
    await dispatcher.put(pending("a", 2))
    with anyio.move_on_after(0.05) as blocked:
        await dispatcher.put(pending("a", 3))
    assert blocked.cancelled_caught
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher.put, pending("a", 3))
        await anyio.sleep(0.01)
        assert await dispatcher.take() is not None
    assert dispatcher.queued("a") == 2


async def test_the_nowait_forms_do_what_they_can_at_once_and_say_when_they_cannot() -> None:
    gates = {"a": ScriptedGate(), "shut": ScriptedGate(open_=False)}
    dispatcher = Dispatcher(gates, buffer_per_account=1)
    assert dispatcher.take_nowait() is None  # nothing queued
    assert dispatcher.put_nowait(pending("a", 1)) is True
    assert dispatcher.put_nowait(pending("a", 2)) is None  # full: nothing done
    assert dispatcher.queued("a") == 1
    assert dispatcher.put_nowait(pending("shut", 1)) is True
    taken = dispatcher.take_nowait()
    assert taken is not None
    assert (taken.account, taken.item.row) == ("a", 1)
    assert dispatcher.take_nowait() is None  # only a closed gate's row is left
    dispatcher.stop_account("a")
    assert dispatcher.put_nowait(pending("a", 3)) is False  # dropped
    assert dispatcher.dropped == 1
    gates["shut"].open = True
    dispatcher.stop()
    assert dispatcher.take_nowait() is None


async def test_workers_end_when_the_reader_is_done_and_every_row_is_finished() -> None:
    dispatcher = Dispatcher({"a": ScriptedGate()}, buffer_per_account=10)
    await dispatcher.put(pending("a", 1))
    dispatcher.close()
    first = await dispatcher.take()
    assert first is not None
    ended: list[Pending | None] = []
    async with anyio.create_task_group() as tg:

        async def wait_for_end() -> None:
            ended.append(await dispatcher.take())

        tg.start_soon(wait_for_end)
        await anyio.sleep(0.01)
        assert ended == []  # the row in hand may still come back (a retry)
        dispatcher.put_back(first)
        await anyio.sleep(0.01)
        assert ended
        assert ended[0] is first
    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_end)
        await anyio.sleep(0.01)
        dispatcher.done()
    assert ended[-1] is None


async def test_a_waiting_worker_is_woken_by_a_new_row() -> None:
    dispatcher = Dispatcher({"a": ScriptedGate()}, buffer_per_account=10)
    got: list[Pending | None] = []
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:

            async def worker() -> None:
                got.append(await dispatcher.take())

            tg.start_soon(worker)
            await anyio.sleep(0.01)
            await dispatcher.put(pending("a", 7))
    assert got[0] is not None
    assert got[0].item.row == 7


async def test_a_released_slot_wakes_a_worker_waiting_for_its_gate() -> None:
    gate = ScriptedGate(open_=False)
    dispatcher = Dispatcher({"a": gate}, buffer_per_account=10)
    await dispatcher.put(pending("a", 1))
    got: list[Pending | None] = []
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:

            async def worker() -> None:
                got.append(await dispatcher.take())

            tg.start_soon(worker)
            await anyio.sleep(0.01)
            gate.open = True
            gate.in_flight += 1
            dispatcher.release("a", None)
    assert got[0] is not None


async def test_stop_drops_queued_rows_and_ends_the_workers() -> None:
    dispatcher = Dispatcher({"a": ScriptedGate(open_=False)}, buffer_per_account=10)
    for row in range(5):
        await dispatcher.put(pending("a", row))
    dispatcher.stop()
    assert await dispatcher.take() is None
    assert dispatcher.dropped == 5
    assert not await dispatcher.put(pending("a", 9))


async def test_stopping_one_account_leaves_the_others() -> None:
    dispatcher = Dispatcher({"a": ScriptedGate(), "b": ScriptedGate()}, buffer_per_account=10)
    await dispatcher.put(pending("a", 1))
    await dispatcher.put(pending("b", 1))
    dispatcher.stop_account("a")
    assert not await dispatcher.put(pending("a", 2))
    taken = await dispatcher.take()
    assert taken is not None
    assert taken.account == "b"
    assert dispatcher.dropped == 2


class OpensAt:
    """A gate closed until the local time ``at`` (a spent window), open from then on."""

    def __init__(self, at: float) -> None:
        self.at = at

    def admit(self, now: float | None = None) -> float | None:
        now = time.time() if now is None else now
        return None if now >= self.at else self.at - now

    def release(
        self, rate: RateLimitInfo | None, *, rate_limited: bool = False, now: float | None = None
    ) -> None:
        pass


async def row_for_a_waiting_worker(
    dispatcher: Dispatcher, hand_over: Callable[[], Awaitable[None]]
) -> Pending | None:
    """Let a worker wait on a dispatcher with nothing queued, run ``hand_over``: what it got."""
    got: list[Pending | None] = []

    async def worker() -> None:
        got.append(await dispatcher.take())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await anyio.sleep(0.02)  # the worker waits: nothing is queued
        await hand_over()
        with anyio.fail_after(2):
            while not got:
                await anyio.sleep(0.005)
    return got[0]


@pytest.mark.parametrize("how", ["put_back", "put"])
async def test_a_row_behind_a_closed_gate_goes_when_the_gate_opens(how: str) -> None:
    # Workers already waiting with nothing queued must not sleep through the opening of a gate
    # that a row arrived behind (a 5xx retry put back, or a new row for a paused account):
    # before the fix, the run waited for some unrelated event, up to a whole window.
    gate = OpensAt(0.0)
    dispatcher = Dispatcher({"a": gate}, buffer_per_account=10)
    await dispatcher.put(pending("a", 1))
    first = await dispatcher.take()
    assert first is not None
    started = time.monotonic()

    async def hand_over() -> None:
        nonlocal started
        gate.at = time.time() + 0.05
        started = time.monotonic()
        if how == "put_back":
            dispatcher.put_back(first)
        else:
            await dispatcher.put(pending("a", 2))

    got = await row_for_a_waiting_worker(dispatcher, hand_over)
    assert got is not None
    assert got.item.row == (1 if how == "put_back" else 2)
    assert time.monotonic() - started >= 0.04
