"""``batcher validate``: the offline dry run — every check of a run, no request sent.

It reads and inspects the manifest exactly as ``batcher run`` would (sniffing, categories, size
limits, the API's enums and bounds, repeated keys) and reports what would be invalid. Accounts
are not checked: their credentials may not be at hand where the manifest is prepared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from batcher.journal import Journal
from batcher.keyindex import KeyIndex
from batcher.manifest import open_manifest
from batcher.models import InvalidRow
from batcher.triage import Triage

SHOWN_PROBLEMS: Final = 20


@dataclass(slots=True, kw_only=True)
class Validation:
    """What a run of the manifest would find before sending anything."""

    rows: int = 0
    valid: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    first_problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every row would be sent, 1 otherwise."""
        return 0 if not self.invalid else 1


def validate_manifest(
    source: str,
    *,
    fmt: str | None = None,
    default_category: str | None = None,
    stdin: BinaryIO | None = None,
) -> Validation:
    """Inspect every row of ``source``; keep counts and the first few problems' details."""
    result = Validation()
    with open_manifest(source, fmt=fmt, stdin=stdin) as manifest:
        triage = Triage(
            base_dir=manifest.base_dir,
            default_category=default_category,
            journal=Journal(),
            accounts=None,
            keys=KeyIndex(),
        )
        for record in manifest:
            result.rows += 1
            outcome = triage(record)
            if isinstance(outcome, InvalidRow):
                result.invalid[outcome.error.type] += 1
                if len(result.first_problems) < SHOWN_PROBLEMS:
                    result.first_problems.append(outcome.error.detail)
            else:
                result.valid += 1
    return result


def format_validation(result: Validation, source: str) -> str:
    """The human-readable report."""
    lines = [f"{source}: {result.rows:,} rows, {result.valid:,} valid, "
             f"{sum(result.invalid.values()):,} invalid"]  # fmt: skip
    lines.extend(f"  {kind:<20} {count:>8,}" for kind, count in result.invalid.most_common())
    if result.first_problems:
        lines.append("first problems:")
        lines.extend(f"  {detail}" for detail in result.first_problems)
    return "\n".join(lines)
