"""The run on uvloop, which ``batcher run`` uses whenever it is installed.

The rest of the suite runs on the standard asyncio loop; uvloop differs in ways that matter to
the fast path (``call_at`` with a past time returns a plain ``Handle``, transports write at
once), so the paths with timers — deadlines, backoff, gates opening — run here too.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from batcher.api import RateLimitInfo
from batcher.dispatch import Dispatcher
from batcher.simulator import Fault, FaultRates
from tests.helpers import metadata_csv, read_results, run_manifest, serving
from tests.test_dispatch import pending, row_for_a_waiting_worker

pytest.importorskip("uvloop", reason="uvloop is not available on this platform")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": True}


@pytest.mark.parametrize("fault", [Fault.STATUS_503, Fault.HANG, Fault.RESET])
async def test_a_failed_call_is_retried_on_uvloop(tmp_path: Path, fault: Fault) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 1)
    async with serving() as server:
        server.script([fault])
        summary = await run_manifest(
            server, manifest, tmp_path / "out.jsonl", concurrency=1, timeout_s=0.3
        )
    (record,) = read_results(tmp_path / "out.jsonl")
    assert summary.ok == 1
    assert (record["status"], record["attempts"]) == ("ok", 2)


async def test_windows_and_5xx_retries_on_uvloop_end_without_429(tmp_path: Path) -> None:
    # Retries land behind spent windows: the dispatcher must wake its idle workers when a
    # gate opens, or the run stalls until some unrelated answer.
    manifest = metadata_csv(tmp_path / "m.csv", 40)
    rates = FaultRates(fail_5xx_rate=0.15)
    async with serving(window_secs=1, window_limit=15, faults=rates, seed=7) as server:
        summary = await run_manifest(server, manifest, tmp_path / "out.jsonl", concurrency=8)
        stats = server.stats()
    assert summary.ok == 40
    assert stats.rate_limited == 0
    assert len(read_results(tmp_path / "out.jsonl")) == 40


class ScriptedDelays:
    """A gate answering ``admit`` from a script: None admits, a number is the wait."""

    def __init__(self, *answers: float | None) -> None:
        self.answers = deque(answers)

    def admit(self, now: float | None = None) -> float | None:
        return self.answers.popleft() if self.answers else None

    def release(
        self, rate: RateLimitInfo | None, *, rate_limited: bool = False, now: float | None = None
    ) -> None:
        pass


async def test_a_gate_opening_right_now_wakes_a_waiting_worker_on_uvloop() -> None:
    # uvloop's call_at for a moment already due returns a plain Handle (no ``when()``).
    dispatcher = Dispatcher({"a": ScriptedDelays(None, None, 0.0, 0.0)}, buffer_per_account=9)
    await dispatcher.put(pending("a", 1))
    await dispatcher.put(pending("a", 2))
    first, second = await dispatcher.take(), await dispatcher.take()
    assert first is not None
    assert second is not None

    async def hand_over() -> None:
        dispatcher.put_back(first)
        dispatcher.put_back(second)

    assert await row_for_a_waiting_worker(dispatcher, hand_over) is not None
