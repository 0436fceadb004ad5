"""``batcher report``: the state of a results file, latest line per key, and what still needs work.

Rows that still need work (failed, invalid, or ``ok`` but expiring within the validity margin)
can be written back out as a manifest that ``batcher run`` accepts, with the row's own columns
(its ``input`` for invalid rows, its request fields otherwise) and every passed-through column.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from batcher.errors import ResultsError
from batcher.journal import ResumePolicy, Settled, journal_key_of, settled_by
from batcher.results import INPUT_FIELDS

MANIFEST_COLUMNS: Final = ("path", "key", "account", *INPUT_FIELDS)
SHOWN_EXPIRING: Final = 10


@dataclass(slots=True, kw_only=True)
class Report:
    """Counts over the latest line of every key."""

    rows: int = 0
    lines: int = 0
    unreadable_lines: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_error: Counter[tuple[str, str]] = field(default_factory=Counter)
    expiring: list[tuple[float, str, str]] = field(default_factory=list)
    needs_work: int = 0


def latest_lines(path: Path) -> tuple[list[bytes], int, int]:
    """The latest line of every key in file order, the number of lines, and unreadable ones."""
    latest: dict[str, bytes] = {}
    lines = unreadable = 0
    for line in _lines(path):
        lines += 1
        try:
            latest[journal_key_of(orjson.loads(line))] = line
        except (orjson.JSONDecodeError, KeyError, TypeError):
            unreadable += 1
    return list(latest.values()), lines, unreadable


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            for line in handle:
                if line.endswith(b"\n") and line.strip():
                    yield line
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror}") from exc


def build_report(
    path: Path,
    *,
    expiring_within_s: float,
    policy: ResumePolicy,
    failed_manifest: Path | None = None,
    now: float | None = None,
) -> Report:
    """Tally ``path``; write the rows that still need work to ``failed_manifest`` if given."""
    now = time.time() if now is None else now
    latest, lines, unreadable = latest_lines(path)
    report = Report(lines=lines, unreadable_lines=unreadable)
    needing_work: list[dict[str, Any]] = []
    for line in latest:
        record = orjson.loads(line)
        _count(report, record, now, expiring_within_s)
        if settled_by(record, policy, now) is not Settled.OK:
            needing_work.append(record)
    report.needs_work = len(needing_work)
    report.expiring.sort()
    if failed_manifest is not None:
        write_manifest(failed_manifest, (manifest_row(record) for record in needing_work))
    return report


def _count(report: Report, record: dict[str, Any], now: float, expiring_within_s: float) -> None:
    report.rows += 1
    status = str(record.get("status"))
    report.by_status[status] += 1
    error = record.get("error")
    if isinstance(error, dict):
        report.by_error[(status, str(error.get("type")))] += 1
    expires_at = record.get("expires_at")
    if status == "ok" and isinstance(expires_at, str):
        moment = datetime.fromisoformat(expires_at).timestamp()
        if moment - now <= expiring_within_s:
            report.expiring.append((moment, str(record.get("key")), str(record.get("media_id"))))


def manifest_row(record: dict[str, Any]) -> dict[str, Any]:
    """A results line turned back into the manifest row it came from."""
    given = record.get("input") if record.get("status") == "invalid" else record
    values = {name: record.get(name) for name in ("path", "key", "account")}
    if isinstance(given, dict):
        values.update({name: given.get(name) for name in INPUT_FIELDS})
    row = {name: value for name, value in values.items() if value is not None}
    meta = record.get("meta")
    if isinstance(meta, dict):
        row.update({name: value for name, value in meta.items() if name not in row})
    return row


def write_manifest(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV when ``path`` ends in ``.csv``, else as JSONL."""
    try:
        if path.suffix.lower() == ".csv":
            _write_csv(path, list(rows))
        else:
            with path.open("wb") as handle:
                for row in rows:
                    handle.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
    except OSError as exc:
        raise ResultsError(f"cannot write manifest {path}: {exc.strerror}") from exc


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    extra = sorted({name for row in rows for name in row} - set(MANIFEST_COLUMNS))
    columns = [*MANIFEST_COLUMNS, *extra]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: _csv_cell(row.get(name)) for name in columns})


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    return str(value)


def format_report(report: Report, path: Path, *, expiring_within_s: float) -> str:
    """The human-readable report."""
    hours = expiring_within_s / 3600
    lines = [f"{path}: {report.rows:,} rows (latest of {report.lines:,} lines per key)"]
    if report.unreadable_lines:
        lines.append(f"  {report.unreadable_lines:,} unreadable line(s) ignored")
    for status in ("ok", "failed", "invalid"):
        lines.append(f"  {status:<8} {report.by_status.get(status, 0):>10,}")
        errors = sorted(
            (count, kind) for (where, kind), count in report.by_error.items() if where == status
        )
        lines.extend(f"    {kind:<28} {count:>8,}" for count, kind in reversed(errors))
    lines.append(f"  ok ids expiring within {hours:g} h: {len(report.expiring):,}")
    for moment, key, media_id in report.expiring[:SHOWN_EXPIRING]:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
        lines.append(f"    {when}  {media_id}  {key}")
    if len(report.expiring) > SHOWN_EXPIRING:
        lines.append(f"    … and {len(report.expiring) - SHOWN_EXPIRING:,} more")
    lines.append(f"  rows that still need work: {report.needs_work:,}")
    return "\n".join(lines)
