"""Hands each worker the next row whose account may send now.

Rows wait in one bounded queue per account. A worker asks :meth:`Dispatcher.take` for work and
gets a row of the first account, in round-robin order, whose gate admits a request, so a paused
account never idles workers that other accounts' rows could use. Rows that must wait for their
window (a 429) go back to the front of their queue instead of holding a worker.

A worker that finds nothing to take waits in line. Whatever may make a row sendable (a new
row, a row put back, a finished request) hands admitted rows *directly* to the waiting workers,
oldest first: a woken worker always has its row, so it never wakes for nothing and goes back
to wait (with a thousand workers and the reader behind, that churn used to cost more than the
rows). A gate that reopens on its own (its reset passed) is noticed through the waiters'
timeouts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import anyio

from batcher.api import RateLimitInfo
from batcher.models import WorkItem

PRUNE_WAITERS_AT: Final = 4096


class Admission(Protocol):
    """What the dispatcher needs of an account's gate (see :class:`batcher.ratelimit.Gate`)."""

    def admit(self, now: float | None = None) -> float | None: ...

    def release(
        self, rate: RateLimitInfo | None, *, rate_limited: bool = False, now: float | None = None
    ) -> None: ...


@dataclass(slots=True)
class Pending:
    """A row on its way: the work and what has happened to it so far."""

    item: WorkItem
    account: str
    attempts: int = 0
    failures: int = 0
    rate_limited: int = 0
    refreshed: bool = False


class Dispatcher:
    """Per-account queues in front of the workers; see the module docstring."""

    __slots__ = (
        "_buffer",
        "_clock",
        "_closed",
        "_gates",
        "_in_hand",
        "_next",
        "_order",
        "_queues",
        "_space",
        "_stopped",
        "_stopped_accounts",
        "_timer",
        "_timer_at",
        "_waiters",
        "dropped",
    )

    def __init__(
        self,
        gates: Mapping[str, Admission],
        *,
        buffer_per_account: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._gates = dict(gates)
        self._queues: dict[str, deque[Pending]] = {name: deque() for name in gates}
        self._order = list(gates)
        self._next = 0
        self._buffer = buffer_per_account
        self._clock = clock
        self._closed = False
        self._stopped = False
        self._stopped_accounts: set[str] = set()
        self._in_hand = 0
        self._waiters: deque[asyncio.Future[Pending | None]] = deque()
        self._timer: asyncio.Handle | None = None  # uvloop: a Handle when due at once
        self._timer_at = math.inf
        self._space: anyio.Event | None = None
        self.dropped = 0

    def __repr__(self) -> str:
        queued = {name: len(queue) for name, queue in self._queues.items()}
        return (
            f"<Dispatcher queued={queued} in_hand={self._in_hand} closed={self._closed} "
            f"stopped={self._stopped} dropped={self.dropped}>"
        )

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called: no more rows are handed out."""
        return self._stopped

    def queued(self, account: str) -> int:
        """Rows of ``account`` waiting for a worker."""
        return len(self._queues[account])

    async def put(self, pending: Pending) -> bool:
        """Queue a new row (waits while its account's queue is full); False if it was dropped."""
        while (queued := self.put_nowait(pending)) is None:
            # Only the reader waits here, on its own event, so it never takes a row meant
            # for a worker.
            self._space = space = anyio.Event()
            await space.wait()
        return queued

    def put_nowait(self, pending: Pending) -> bool | None:
        """:meth:`put` without waiting: None (and nothing done) while the queue is full."""
        account = pending.account
        if self._stopped or account in self._stopped_accounts:  # _accepts(), written out
            self.dropped += 1
            return False
        queue = self._queues[account]
        if len(queue) >= self._buffer:
            return None
        queue.append(pending)
        if self._waiters:
            self._hand_out()
        return True

    def put_back(self, pending: Pending) -> None:
        """A worker returns a row it took, to be sent again when its account may send."""
        if self._accepts(pending.account):
            self._queues[pending.account].appendleft(pending)
            self._in_hand -= 1
            self._hand_out()
        else:
            self.dropped += 1
            self.done()

    def done(self) -> None:
        """A worker finished a row it took (its line is written, or the row was dropped)."""
        self._in_hand -= 1
        if self._closed and self._in_hand == 0:
            self._wake_all()  # the last row is done: let every worker see the end

    def release(
        self, account: str, rate: RateLimitInfo | None, *, rate_limited: bool = False
    ) -> None:
        """One request of ``account`` has finished: tell its gate; a waiting worker may send."""
        self._gates[account].release(rate, rate_limited=rate_limited)
        if self._waiters:
            self._hand_out()

    def close(self) -> None:
        """No more new rows will come; workers end once every row is done."""
        self._closed = True
        self._wake_all()

    def stop(self) -> None:
        """Hand out nothing more; queued rows stay unattempted (the next run resumes them)."""
        self._stopped = True
        for queue in self._queues.values():
            self.dropped += len(queue)
            queue.clear()
        self._wake_all()

    def stop_account(self, account: str) -> None:
        """Drop ``account``'s queued and future rows (its credentials are refused)."""
        self._stopped_accounts.add(account)
        queue = self._queues[account]
        self.dropped += len(queue)
        queue.clear()
        self._wake_all()

    def take_nowait(self) -> Pending | None:
        """The next row whose account admits a request now, or None: ask :meth:`take`."""
        if self._stopped:
            return None
        return self._take_admitted()[0]

    async def take(self) -> Pending | None:
        """The next row whose account admits a request now, or None when the work is over."""
        while not self._stopped:
            pending, soonest = self._take_admitted()
            if pending is not None:
                return pending
            if self._closed and self._in_hand == 0 and not any(self._queues.values()):
                return None
            pending = await self._wait(soonest)
            if pending is not None:
                return pending  # handed over while this worker waited
        return None

    def _take_admitted(self) -> tuple[Pending | None, float]:
        """Pop the next admitted row (counted in hand), or the seconds before one may be."""
        now = self._clock()
        soonest = math.inf
        count = len(self._order)
        for offset in range(count):
            name = self._order[(self._next + offset) % count]
            queue = self._queues[name]
            if not queue:
                continue
            delay = self._gates[name].admit(now)
            if delay is None:
                self._next = (self._next + offset + 1) % count
                self._in_hand += 1
                if self._space is not None:
                    self._space.set()  # the reader waits for room in a queue
                    self._space = None
                return queue.popleft(), 0.0
            soonest = min(soonest, delay)
        return None, soonest

    def _accepts(self, account: str) -> bool:
        return not self._stopped and account not in self._stopped_accounts

    async def _wait(self, timeout_s: float) -> Pending | None:
        """Wait in line for a row handed over, a wake-up (None) or ``timeout_s`` (None)."""
        waiter: asyncio.Future[Pending | None] = asyncio.get_running_loop().create_future()
        if len(self._waiters) > PRUNE_WAITERS_AT:
            self._waiters = deque(w for w in self._waiters if not w.done())
        self._waiters.append(waiter)
        if math.isinf(timeout_s):
            return await waiter
        with anyio.move_on_after(timeout_s):
            return await waiter
        # The timeout fired; a row may have been handed over just before: keep it. A waiter
        # that left stays queued, done: removing it from the middle of a long deque would
        # cost more than skipping it once.
        waiter.cancel()
        return None if waiter.cancelled() else waiter.result()

    def _hand_out(self) -> None:
        """Give admitted rows to waiting workers, oldest waiter first, while both last."""
        waiters = self._waiters
        while waiters:
            if waiters[0].done():  # it left on its timeout or was cancelled
                waiters.popleft()
                continue
            pending, soonest = self._take_admitted()
            if pending is None:
                self._hand_out_after(soonest)
                return
            waiters.popleft().set_result(pending)

    def _hand_out_after(self, delay_s: float) -> None:
        """Try again when the soonest gate opens.

        The waiters chose their timeouts before this row arrived (a retry put back, a new row
        for a paused account): with nothing queued then, they may wait for an answer that never
        comes, and the row would sit until some unrelated event, up to a whole window later.
        """
        if math.isinf(delay_s):
            return  # a gate waits for an answer: its release hands out
        loop = asyncio.get_running_loop()
        at = loop.time() + delay_s
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._on_timer), at

    def _on_timer(self) -> None:
        self._timer = None
        self._hand_out()

    def _wake_all(self) -> None:
        """Every waiter looks again (the end, a stop): nothing is handed over."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._space is not None:
            self._space.set()
            self._space = None
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
