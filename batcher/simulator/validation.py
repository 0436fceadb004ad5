"""The simulator's own check of an initialize body, written from the facts in ``contract``.

It follows ``InitializeMediaUploadRequest`` (an object, no unknown properties, enums, bounds,
patterns, JSON types: ``true`` is not an integer) and, like the real endpoint, also requires
``media_type`` and ``total_bytes`` (the schema marks nothing required; X's docs do). It does not
cross-check the type against the category or per-category size limits: X only finds those out
later, from the bytes. ``tests/test_contract_conformance.py`` holds this module to the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from batcher import contract

JSON_CONTENT_TYPE = "application/json"
REQUIRED_FIELDS: tuple[str, ...] = ("media_type", "total_bytes")
BODY = "body"
"""The ``parameter`` named when the body as a whole is wrong (not JSON, not an object)."""

_SHOWN_VALUE_CHARS = 80


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a body is refused; ``parameter`` names the field (or ``"body"``)."""

    parameter: str
    value: str
    message: str


@dataclass(frozen=True, slots=True)
class AcceptedBody:
    """A body that passed every check, with the two fields the answer depends on."""

    fields: Mapping[str, object]
    media_type: str
    media_category: str | None


def parse_initialize_body(raw: bytes, content_type: str) -> AcceptedBody | tuple[Violation, ...]:
    """Parse and check a request body: the accepted body, or every violation found."""
    if content_type != JSON_CONTENT_TYPE:
        return (
            Violation(
                BODY,
                show(content_type),
                f"The request body must be {JSON_CONTENT_TYPE}, not [{content_type}]",
            ),
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return (
            Violation(BODY, show(raw[:_SHOWN_VALUE_CHARS]), f"The request body is not JSON: {exc}"),
        )
    violations = validate_initialize_body(body)
    if violations:
        return violations
    assert isinstance(body, dict)  # validate_initialize_body refused anything else
    return AcceptedBody(
        fields=body, media_type=body["media_type"], media_category=body.get("media_category")
    )


def validate_initialize_body(body: object) -> tuple[Violation, ...]:
    """Every way ``body`` breaks the initialize contract (empty when it is valid)."""
    if not isinstance(body, dict):
        return (Violation(BODY, show(body), "The request body must be a JSON object"),)
    found: list[Violation] = []
    for name, value in body.items():
        check = _CHECKS.get(name)
        message = _unknown(name) if check is None else check(name, value)
        if message is not None:
            found.append(Violation(name, show(value), message))
    for name in REQUIRED_FIELDS:
        if name not in body:
            found.append(Violation(name, "", f"The `{name}` body parameter is missing"))
    return tuple(found)


def show(value: object) -> str:
    """A short printable form of a refused value, for messages and ``parameters``."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            text = repr(value)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[:_SHOWN_VALUE_CHARS] + "…"


def _unknown(name: str) -> str:
    allowed = ", ".join(sorted(contract.REQUEST_FIELDS))
    return f"The `{name}` body parameter is not one of [{allowed}]"


def _check_enum(allowed: frozenset[str]) -> Callable[[str, object], str | None]:
    listed = ", ".join(sorted(allowed))

    def check(name: str, value: object) -> str | None:
        if isinstance(value, str) and value in allowed:
            return None
        return f"The `{name}` body parameter value [{show(value)}] is not one of [{listed}]"

    return check


def _check_total_bytes(name: str, value: object) -> str | None:
    # bool is an int subclass in Python, but JSON's true is not an integer.
    if type(value) is not int:
        return f"The `{name}` body parameter value [{show(value)}] is not an integer"
    if not contract.TOTAL_BYTES_MIN <= value <= contract.TOTAL_BYTES_MAX:
        return (
            f"The `{name}` body parameter value [{value}] is not between "
            f"{contract.TOTAL_BYTES_MIN} and {contract.TOTAL_BYTES_MAX}"
        )
    return None


def _check_additional_owners(name: str, value: object) -> str | None:
    if not isinstance(value, list):
        return f"The `{name}` body parameter value [{show(value)}] is not an array"
    for owner in value:
        if not isinstance(owner, str) or contract.USER_ID_PATTERN.fullmatch(owner) is None:
            return (
                f"The `{name}` body parameter item [{show(owner)}] does not match "
                f"{contract.USER_ID_PATTERN.pattern}"
            )
    return None


def _check_shared(name: str, value: object) -> str | None:
    if isinstance(value, bool):
        return None
    return f"The `{name}` body parameter value [{show(value)}] is not a boolean"


_CHECKS: dict[str, Callable[[str, object], str | None]] = {
    "media_type": _check_enum(contract.MEDIA_TYPES),
    "media_category": _check_enum(contract.MEDIA_CATEGORIES),
    "total_bytes": _check_total_bytes,
    "additional_owners": _check_additional_owners,
    "shared": _check_shared,
}
assert _CHECKS.keys() == contract.REQUEST_FIELDS, "every contract field needs a check"
