"""The immutable records that cross module borders.

ManifestRecord ──inspect──▶ WorkItem ──initialize──▶ Initialized ─┐
                     └────▶ InvalidRow                             ├─▶ results line
                                          ErrorInfo (failed) ──────┘

The four made for every row (ManifestRecord, InitializeRequest, WorkItem, Initialized) are
NamedTuples; the rest are frozen dataclasses. Both are immutable and typed, but a frozen
dataclass pays an ``object.__setattr__`` per field when built, which made these four cost more
than a microsecond each on a path where a whole row is budgeted at a few dozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

EMPTY_META: Mapping[str, object] = MappingProxyType({})


class Status(StrEnum):
    """The outcome of one manifest row, as written to the results file."""

    OK = "ok"
    FAILED = "failed"
    INVALID = "invalid"


class ManifestRecord(NamedTuple):
    """One record of the manifest as read, before any check.

    Values are raw: a CSV cell is a string, a JSONL value whatever JSON gave. Empty CSV cells are
    ``None``. ``problem`` is set when the record itself could not be read (a broken JSON line);
    then the other fields are best effort.
    """

    row: int
    path: str | None = None
    key: str | None = None
    media_type: str | None = None
    media_category: str | None = None
    total_bytes: object = None
    additional_owners: object = None
    shared: object = None
    account: str | None = None
    meta: Mapping[str, object] = EMPTY_META
    problem: str | None = None


class InitializeRequest(NamedTuple):
    """The body of one initialize call, already checked against the contract."""

    media_type: str
    media_category: str
    total_bytes: int
    additional_owners: tuple[str, ...] = ()
    shared: bool | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body as the API expects it (optional fields only when set)."""
        body: dict[str, Any] = {
            "media_type": self.media_type,
            "media_category": self.media_category,
            "total_bytes": self.total_bytes,
        }
        if self.additional_owners:
            body["additional_owners"] = list(self.additional_owners)
        if self.shared is not None:
            body["shared"] = self.shared
        return body


class WorkItem(NamedTuple):
    """A row that passed inspection and needs one initialize call."""

    row: int
    key: str
    path: str | None
    account: str | None
    request: InitializeRequest
    meta: Mapping[str, object] = EMPTY_META


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """Why a row did not get a media id: ``type`` is a stable slug users can count on."""

    type: str
    title: str
    detail: str
    retryable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidRow:
    """A row rejected before any request: it is written as ``status: invalid``."""

    row: int
    key: str | None
    path: str | None
    account: str | None
    error: ErrorInfo
    meta: Mapping[str, object] = field(default_factory=lambda: EMPTY_META)
    source: ManifestRecord | None = None


class Initialized(NamedTuple):
    """A successful initialize answer (``data`` of a 2xx)."""

    media_id: str
    media_key: str | None
    expires_after_secs: int | None
    warnings: tuple[Mapping[str, object], ...] = ()
