"""``batcher`` with prototype changes to files the benchmark does not own, to measure them.

``BATCHER_BENCH_PROTO`` (comma separated) picks them; unset: uvloop only.

* ``uvloop``: uvloop's loop (``anyio.run(..., backend_options={"use_uvloop": True})``);
* ``gc``: ``gc.freeze()`` after start-up and a gen-0 threshold of 50,000 (fewer, cheaper
  collections while thousands of requests are in flight);
* ``nodedupe``: the triage's ``dict[str, int]`` of every key replaced by one that keeps nothing
  (an upper bound of what a compact exact dedupe, see the report, can save in RSS).
"""

from __future__ import annotations

import asyncio
import gc
import os

from batcher.cli import main


class _ForgetfulDict(dict[str, int]):
    """Remembers no key: ``setdefault`` always returns the default (no duplicate is found)."""

    def setdefault(self, key: str, default: int | None = None) -> int:
        assert default is not None
        return default


def _apply(protos: set[str]) -> None:
    if "uvloop" in protos:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if "gc" in protos:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    if "nodedupe" in protos:
        from batcher import triage

        original = triage.Triage.__init__

        def init(self: triage.Triage, **options: object) -> None:
            original(self, **options)  # type: ignore[arg-type]
            self._first_row_of_key = _ForgetfulDict()

        triage.Triage.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    _apply(set(os.environ.get("BATCHER_BENCH_PROTO", "uvloop").split(",")))
    raise SystemExit(main())
