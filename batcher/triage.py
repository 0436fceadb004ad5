"""What the reader does with each manifest record before any request: the cheap decisions.

    ManifestRecord ─▶ repeated key? ─▶ settled by an earlier run? ─▶ inspect ─▶ known account?
                         │ invalid        │ skip                       │ invalid    │ invalid
                                                                      └──▶ WorkItem

Runs in a worker thread (inspection stats and reads files), one record at a time, in manifest
order; it is the only owner of the key index, so it needs no lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from batcher.journal import Journal, Settled, duplicate_key, row_key
from batcher.keyindex import KeyIndex
from batcher.manifest import record_key
from batcher.media import inspect_record
from batcher.models import ErrorInfo, InvalidRow, ManifestRecord, WorkItem


@dataclass(frozen=True, slots=True)
class Skip:
    """A row an earlier run settled: it gets no request and no new line."""

    settled: Settled


Triaged = WorkItem | InvalidRow | Skip


class Triage:
    """Decides, for each record, between a request, an invalid line and a skip."""

    __slots__ = ("_accounts", "_base_dir", "_default_category", "_journal", "_keys")

    def __init__(
        self,
        *,
        base_dir: Path,
        default_category: str | None,
        journal: Journal,
        accounts: frozenset[str | None] | None,
        keys: KeyIndex,
    ) -> None:
        self._base_dir = os.fspath(base_dir)  # a str: inspection joins it once per row
        self._default_category = default_category
        self._journal = journal
        self._accounts = accounts
        self._keys = keys

    def __repr__(self) -> str:
        return f"<Triage {self._keys!r}>"

    def __call__(self, record: ManifestRecord) -> Triaged:
        """The fate of one record."""
        key = record_key(record)
        if key is not None:
            first_row = self._keys.first_row(key, record.row)
            if first_row != record.row:
                return self._repeated(record, key, first_row)
        settled = self._journal.settled_as(row_key(key, record.row))
        if settled is Settled.OK or settled is Settled.FAILED:
            return Skip(settled)
        outcome = inspect_record(
            record, base_dir=self._base_dir, default_category=self._default_category
        )
        if isinstance(outcome, InvalidRow):
            return Skip(Settled.INVALID) if settled is Settled.INVALID else outcome
        if self._accounts is not None and outcome.account not in self._accounts:
            return unknown_account(outcome, sorted(str(a) for a in self._accounts if a))
        return outcome

    def _repeated(self, record: ManifestRecord, key: str, first_row: int) -> Triaged:
        if self._journal.settled_as(duplicate_key(record.row)) is Settled.INVALID:
            return Skip(Settled.INVALID)
        detail = (
            f"row {record.row}: key {key!r} was already used by row {first_row}; "
            "give every row a unique key (or path) and run again"
        )
        return _invalid(record, key, "duplicate_key", "Repeated key", detail)


def _invalid(
    record: ManifestRecord, key: str | None, slug: str, title: str, detail: str
) -> InvalidRow:
    return InvalidRow(
        row=record.row,
        key=key,
        path=record.path,
        account=record.account,
        meta=record.meta,
        error=ErrorInfo(type=slug, title=title, detail=detail, retryable=False),
        source=record,
    )


def unknown_account(item: WorkItem, known: list[str]) -> InvalidRow:
    """The invalid line of a row naming an account the run was not given."""
    detail = (
        f"row {item.row}: account {item.account!r} is not configured "
        f"(known: {', '.join(known) or 'none'}); fix the account column or add the account "
        "to the accounts file"
    )
    return InvalidRow(
        row=item.row,
        key=item.key,
        path=item.path,
        account=item.account,
        meta=item.meta,
        error=ErrorInfo(
            type="unknown_account", title="Unknown account", detail=detail, retryable=False
        ),
    )
