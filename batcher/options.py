"""Command-line value types: counts, durations, fractions and the fsync schedule.

Each raises ``argparse.ArgumentTypeError`` with a message that says what a good value looks
like, so a bad flag ends in one clear line and exit code 2.
"""

from __future__ import annotations

import argparse
import re
from typing import Final

from batcher.results import FsyncPolicy

DURATION_UNITS_S: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def fraction(text: str) -> float:
    """A share between 0 and 1, as ``0.05`` or ``5%``."""
    stripped = text.strip()
    try:
        value = float(stripped[:-1]) / 100 if stripped.endswith("%") else float(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share like 0.05 or 5%") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1 (or 0% and 100%)")
    return value


def duration_s(text: str) -> float:
    """Seconds, from ``90``, ``90s``, ``15m``, ``2h`` or ``1d``."""
    match = DURATION_PATTERN.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return float(match.group(1)) * DURATION_UNITS_S[match.group(2).lower()]


def fsync_policy(text: str) -> FsyncPolicy:
    """``1000`` (rows) or ``5s`` (seconds): how often written lines are forced to disk."""
    stripped = text.strip()
    if stripped.isdigit():
        return FsyncPolicy(every_rows=positive_int(stripped), every_s=None)
    try:
        seconds = duration_s(stripped)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a row count (1000) nor a duration (5s)"
        ) from None
    return FsyncPolicy(every_rows=None, every_s=seconds)
