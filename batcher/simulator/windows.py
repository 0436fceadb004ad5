"""Fixed rate-limit windows aligned to the clock, as X counts them.

Window ``n`` of a key covers ``[n * window_secs, (n + 1) * window_secs)`` in epoch seconds; its
reset is the (integer) end. Every hit counts, including the ones answered 429.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """One key's window right after a hit."""

    limit: int
    remaining: int
    reset_epoch_s: int
    exceeded: bool


class FixedWindows:
    """Hit counters per key, one fixed window per key at a time."""

    __slots__ = ("_counts", "limit", "window_secs")

    limit: int
    window_secs: int
    _counts: dict[str, tuple[int, int]]

    def __init__(self, *, limit: int, window_secs: int) -> None:
        if window_secs < 1:
            raise ValueError("window_secs must be >= 1")
        self.limit = limit
        self.window_secs = window_secs
        self._counts = {}

    def hit(self, key: str, now_s: float) -> WindowUsage:
        """Count one request of ``key`` at ``now_s`` and return the window after it."""
        index = int(now_s // self.window_secs)
        window, count = self._counts.get(key, (index, 0))
        count = count + 1 if window == index else 1
        self._counts[key] = (index, count)
        return self._usage(index, count)

    def peek(self, key: str, now_s: float) -> WindowUsage:
        """The window of ``key`` at ``now_s`` without counting a request."""
        index = int(now_s // self.window_secs)
        window, count = self._counts.get(key, (index, 0))
        return self._usage(index, count if window == index else 0)

    def _usage(self, index: int, count: int) -> WindowUsage:
        return WindowUsage(
            limit=self.limit,
            remaining=max(0, self.limit - count),
            reset_epoch_s=(index + 1) * self.window_secs,
            exceeded=count > self.limit,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(limit={self.limit}, window_secs={self.window_secs}, "
            f"keys={len(self._counts)})"
        )
