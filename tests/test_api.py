"""Answers the server can give, and the shape each one takes (pure: no network)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batcher.api import classify, parse_rate_limit, problem_slug
from batcher.models import ErrorInfo, Initialized


def body(document: object) -> bytes:
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("problem_type", "status", "slug"),
    [
        pytest.param(
            "https://api.x.com/2/problems/invalid-request", 400, "invalid-request", id="x-host"
        ),
        pytest.param(
            "https://api.twitter.com/2/problems/usage-capped",
            429,
            "usage-capped",
            id="twitter-host",
        ),
        pytest.param("about:blank", 429, "too-many-requests", id="about-blank-429"),
        pytest.param("about:blank", 401, "unauthorized", id="about-blank-401"),
        pytest.param(None, 503, "server-error", id="no-type-5xx"),
        pytest.param(None, 418, "http-418", id="unknown-status"),
    ],
)
def test_problem_slug_ignores_the_host(problem_type: object, status: int, slug: str) -> None:
    assert problem_slug(problem_type, status) == slug


def test_success_gives_id_key_and_expiry() -> None:
    data = {
        "id": "1234567890123456789",
        "media_key": "3_1234567890123456789",
        "expires_after_secs": 86400,
    }
    result = classify(200, body({"data": data}))
    assert result == Initialized(
        media_id="1234567890123456789", media_key="3_1234567890123456789", expires_after_secs=86400
    )


def test_success_with_errors_keeps_them_as_warnings() -> None:
    warning = {"title": "Partial", "detail": "owner 1 unknown", "type": "about:blank"}
    result = classify(200, body({"data": {"id": "1"}, "errors": [warning]}))
    assert isinstance(result, Initialized)
    assert result.warnings == (warning,)


@pytest.mark.parametrize(
    ("status", "payload", "slug", "retryable"),
    [
        pytest.param(200, b"<html>oops</html>", "bad_response", True, id="200-not-json"),
        pytest.param(200, b'{"data": {"id": "12', "bad_response", True, id="200-truncated"),
        pytest.param(200, body({"data": {}}), "bad_response", True, id="200-no-id"),
        pytest.param(200, b"", "bad_response", True, id="200-empty"),
        pytest.param(502, b"<html>Bad Gateway</html>", "bad_response", True, id="502-html"),
        pytest.param(400, b"nope", "bad_response", False, id="400-not-json"),
        pytest.param(
            400,
            body(
                {
                    "type": "https://api.x.com/2/problems/invalid-request",
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "errors": [{"message": "total_bytes must be an integer"}],
                }
            ),
            "invalid-request",
            False,
            id="400-problem",
        ),
        pytest.param(
            401,
            body(
                {
                    "title": "Unauthorized",
                    "type": "about:blank",
                    "status": 401,
                    "detail": "Unauthorized",
                }
            ),
            "unauthorized",
            False,
            id="401",
        ),
        pytest.param(
            403, body({"title": "Forbidden", "status": 403}), "forbidden", False, id="403-bare"
        ),
        pytest.param(
            429,
            body({"title": "Too Many Requests", "type": "about:blank", "status": 429}),
            "too-many-requests",
            True,
            id="429",
        ),
        pytest.param(503, body({"title": "Service Unavailable"}), "server-error", True, id="503"),
        pytest.param(
            200,
            body({"errors": [{"type": "https://api.x.com/2/problems/resource-unavailable"}]}),
            "resource-unavailable",
            False,
            id="200-errors-only",
        ),
    ],
)
def test_failures_become_error_info(
    status: int, payload: bytes, slug: str, retryable: bool
) -> None:
    result = classify(status, payload)
    assert isinstance(result, ErrorInfo)
    assert (result.type, result.retryable) == (slug, retryable)
    assert result.detail


def test_nested_error_messages_reach_the_detail() -> None:
    payload = body(
        {
            "type": "https://api.x.com/2/problems/invalid-request",
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "errors": [{"message": "media_type is not one of the allowed values"}],
        }
    )
    result = classify(400, payload)
    assert isinstance(result, ErrorInfo)
    assert "media_type is not one of the allowed values" in result.detail


def test_non_json_detail_quotes_the_start_of_the_body() -> None:
    result = classify(502, b"<html>upstream connect error</html>")
    assert isinstance(result, ErrorInfo)
    assert "upstream connect error" in result.detail
    assert "502" in result.detail


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {
                b"x-rate-limit-limit": b"1875",
                b"x-rate-limit-remaining": b"12",
                b"x-rate-limit-reset": b"1700000900",
            },
            (1875, 12, 1700000900.0, None),
            id="all-three",
        ),
        pytest.param({b"retry-after": b"7"}, (None, None, None, 7.0), id="retry-after-only"),
        pytest.param(
            {
                b"x-rate-limit-limit": b"lots",
                b"x-rate-limit-remaining": b"",
                b"x-rate-limit-reset": b"soon",
            },
            (None, None, None, None),
            id="garbage",
        ),
    ],
)
def test_rate_limit_headers(
    headers: dict[bytes, bytes], expected: tuple[int | None, int | None, float | None, float | None]
) -> None:
    rate = parse_rate_limit(headers)
    assert (rate.limit, rate.remaining, rate.reset_at, rate.retry_after_s) == expected


def _as_int(text: bytes) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _as_float(text: bytes) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


HEADER_VALUES = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.text(alphabet="0123456789²٣ +-.eE_x", max_size=12),
    st.text(max_size=8),
)


@given(limit=HEADER_VALUES, remaining=HEADER_VALUES, reset=HEADER_VALUES, app=HEADER_VALUES)
@example(limit="²", remaining="٣", reset="-5", app=" 7 ")
@example(limit="12", remaining="0", reset="1700000900", app="")
def test_rate_limit_numbers_are_what_python_reads_or_none(
    limit: str, remaining: str, reset: str, app: str
) -> None:
    # The digits-only shortcut must agree with int()/float() on everything else: signs,
    # blanks, superscripts, other scripts' digits (as their UTF-8 bytes), garbage.
    wire = [value.encode() for value in (limit, remaining, reset, app)]
    rate = parse_rate_limit(
        {
            b"x-rate-limit-limit": wire[0],
            b"x-rate-limit-remaining": wire[1],
            b"x-rate-limit-reset": wire[2],
            b"x-app-limit-24hour-remaining": wire[3],
        }
    )
    assert (rate.limit, rate.remaining, rate.reset_at) == (
        _as_int(wire[0]),
        _as_int(wire[1]),
        _as_float(wire[2]),
    )
    assert (rate.app_limit, rate.app_remaining) == (None, _as_int(wire[3]))


def test_date_header_gives_server_time() -> None:
    rate = parse_rate_limit({b"date": b"Tue, 01 Dec 2026 18:00:00 GMT"})
    assert rate.server_time == 1796148000.0
