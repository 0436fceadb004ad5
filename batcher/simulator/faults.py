"""Fault injection: what goes wrong, how often, and the script tests use to say "next time".

Each authenticated request asks ``FaultPlan.draw`` once: a scripted fault if one is queued,
else a seeded random draw against the configured rates (so a run is reproducible from its
seed and its request order), else ``Fault.NONE``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, fields
from enum import StrEnum


class Fault(StrEnum):
    """What the simulator does to one authenticated request instead of (or before) answering."""

    NONE = "none"
    """Answer normally: rate limits, validation, success."""
    STATUS_429 = "status_429"
    """429 Too Many Requests with ``x-rate-limit-remaining: 0``, whatever the window says."""
    STATUS_500 = "status_500"
    STATUS_502 = "status_502"
    STATUS_503 = "status_503"
    STATUS_504 = "status_504"
    RESET = "reset"
    """Close the connection without answering."""
    HANG = "hang"
    """Never answer (sleep ``hang_s``); released on shutdown or when the client goes away."""
    GARBAGE = "garbage"
    """200 whose body is not JSON."""
    TRUNCATED = "truncated"
    """200 whose JSON body is cut in the middle (with a Content-Length matching the cut)."""
    NO_ID = "no_id"
    """200 with ``{"data": {}}``: JSON, but no media id."""


SERVER_ERRORS = (Fault.STATUS_500, Fault.STATUS_502, Fault.STATUS_503, Fault.STATUS_504)
"""The statuses a random ``fail_5xx_rate`` draw picks from (uniformly)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRates:
    """Fractions of authenticated requests that get each fault (seeded draws; sum at most 1)."""

    fail_5xx_rate: float = 0.0
    reset_rate: float = 0.0
    hang_rate: float = 0.0
    garbage_rate: float = 0.0
    truncated_rate: float = 0.0
    no_id_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            rate = getattr(self, f.name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{f.name} must be within [0, 1], got {rate!r}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {self.total}, more than 1")

    @property
    def total(self) -> float:
        """The fraction of requests that get some fault."""
        rates: list[float] = [getattr(self, f.name) for f in fields(self)]
        return sum(rates)

    def thresholds(self) -> tuple[tuple[float, Fault | None], ...]:
        """Cumulative thresholds for one uniform draw; ``None`` stands for "some 5xx"."""
        kinds: tuple[tuple[float, Fault | None], ...] = (
            (self.fail_5xx_rate, None),
            (self.reset_rate, Fault.RESET),
            (self.hang_rate, Fault.HANG),
            (self.garbage_rate, Fault.GARBAGE),
            (self.truncated_rate, Fault.TRUNCATED),
            (self.no_id_rate, Fault.NO_ID),
        )
        cumulative = 0.0
        out: list[tuple[float, Fault | None]] = []
        for rate, fault in kinds:
            if rate > 0.0:
                cumulative += rate
                out.append((cumulative, fault))
        return tuple(out)


class FaultPlan:
    """The live fault state of one server: rates, their seeded generator, scripted faults."""

    __slots__ = ("_rates", "_rng", "_script", "_thresholds")

    _rates: FaultRates
    _thresholds: tuple[tuple[float, Fault | None], ...]
    _rng: random.Random
    _script: deque[Fault]

    def __init__(self, rates: FaultRates, *, seed: int) -> None:
        self._rng = random.Random(seed)
        self._script = deque()
        self.set_rates(rates)

    @property
    def rates(self) -> FaultRates:
        """The fractions random draws use now."""
        return self._rates

    @property
    def scripted(self) -> int:
        """How many scripted faults are still queued."""
        return len(self._script)

    def set_rates(self, rates: FaultRates) -> None:
        """Use new fractions from the next draw on (the generator keeps its state)."""
        self._rates = rates
        self._thresholds = rates.thresholds()

    def script(self, faults: Iterable[Fault]) -> None:
        """Queue faults for the next requests, in order, ahead of any random draw."""
        self._script.extend(faults)

    def clear_script(self) -> None:
        """Drop the scripted faults not yet used."""
        self._script.clear()

    def draw(self) -> Fault:
        """The fault for one request."""
        if self._script:
            return self._script.popleft()
        if not self._thresholds:
            return Fault.NONE
        point = self._rng.random()
        for threshold, fault in self._thresholds:
            if point < threshold:
                return fault if fault is not None else self._rng.choice(SERVER_ERRORS)
        return Fault.NONE

    def __repr__(self) -> str:
        return f"FaultPlan(rates={self._rates!r}, scripted={len(self._script)})"
