"""The initialize call: keep-alive connections, orjson bodies, answers given a shape.

Requests go through :mod:`batcher.transport` (asyncio transports + llhttp via httptools),
not ``aiohttp.ClientSession``: the session's per-request machinery cost several times the rest
of the pipeline. Everything the transport can raise is translated into :mod:`batcher.errors` in
exactly one place (:func:`transport_error`); everything the server can answer is
turned into an :class:`Answer` by :func:`classify`, so no caller ever sees raw JSON, a parser
error or an ``OSError``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import TracebackType
from typing import Final, NamedTuple, Self

import orjson
from aiohttp.http_exceptions import (
    ContentLengthError,
    HttpProcessingError,
    TransferEncodingError,
)

from batcher.contract import DEFAULT_BASE_URL, INITIALIZE_PATH
from batcher.errors import ApiError, BadResponse, ConfigError, RequestTimeout, TransportError
from batcher.models import ErrorInfo, Initialized, InitializeRequest
from batcher.transport import ConnectionPool, Origin, RawAnswer, json_post, request_head

DEFAULT_MAX_IN_FLIGHT: Final = 64
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
DEFAULT_KEEPALIVE_S: Final = 15.0
PROBLEM_SLUG_MARKER: Final = "/2/problems/"
BODY_EXCERPT_CHARS: Final = 120

# Slugs for problems whose ``type`` is ``about:blank`` (X's 401 and 429 bodies look like that).
SLUG_BY_STATUS: Final[Mapping[int, str]] = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "resource-not-found",
    409: "conflict",
    429: "too-many-requests",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """How to reach the API: where, how many requests at once, how long to wait.

    ``keepalive_s``: an idle connection older than this is closed, not reused (servers close
    idle connections on their own schedule; reusing one they are closing costs a resend).
    ``ssl_context``: for an https ``base_url``; default: the system CAs, verification on.
    """

    base_url: str = DEFAULT_BASE_URL
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    ssl_context: ssl.SSLContext | None = None


class RateLimitInfo(NamedTuple):
    """What one response said about the caller's quota (``None``: header absent or garbled).

    Built for every answer: a NamedTuple, immutable like a frozen dataclass, is built several
    times faster than one (no ``object.__setattr__`` per field), which counts on this path.
    """

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    retry_after_s: float | None = None
    server_time: float | None = None
    app_limit: int | None = None
    app_remaining: int | None = None
    app_reset_at: float | None = None


class Answer(NamedTuple):
    """One HTTP answer, classified: ``result`` is the media id or why there is none.

    ``sent``: HTTP requests it took; 2 when a reused connection closed before answering and the
    request was resent once on a fresh one (see :mod:`batcher.transport`). A NamedTuple for the
    reason given under :class:`RateLimitInfo`.
    """

    http_status: int
    result: Initialized | ErrorInfo
    rate: RateLimitInfo
    sent: int = 1


# The per-answer NamedTuples are built with tuple.__new__ and every field in order: their
# generated __new__ is a Python function (0.3 µs for RateLimitInfo's eight fields, against
# 0.1 µs), and four of them are built for every answer.
_new_tuple: Final = tuple.__new__

_LIMIT: Final = b"x-rate-limit-limit"
_REMAINING: Final = b"x-rate-limit-remaining"
_RESET: Final = b"x-rate-limit-reset"
_RETRY_AFTER: Final = b"retry-after"
_DATE: Final = b"date"
_APP_LIMIT: Final = b"x-app-limit-24hour-limit"
_APP_REMAINING: Final = b"x-app-limit-24hour-remaining"
_APP_RESET: Final = b"x-app-limit-24hour-reset"


def parse_rate_limit(headers: Mapping[bytes, bytes]) -> RateLimitInfo:
    """Read the ``x-rate-limit-*``, ``x-app-limit-24hour-*``, ``Retry-After`` and ``Date``
    headers, tolerating garbage.

    ``headers`` as :class:`~batcher.transport.RawAnswer` has them: lower-case names, values as
    the bytes on the wire.
    """
    get = headers.get
    date, limit, remaining, reset = get(_DATE), get(_LIMIT), get(_REMAINING), get(_RESET)
    retry_after, app_limit = get(_RETRY_AFTER), get(_APP_LIMIT)
    app_remaining, app_reset = get(_APP_REMAINING), get(_APP_RESET)
    # Every answer passes here: plain digits (what X sends) are converted without a call,
    # and the tuple is built without NamedTuple's __new__ (see _new_tuple).
    return _new_tuple(
        RateLimitInfo,
        (
            int(limit) if limit is not None and limit.isdigit() else _int_or_none(limit),
            int(remaining)
            if remaining is not None and remaining.isdigit()
            else _int_or_none(remaining),
            float(reset) if reset is not None and reset.isdigit() else _float_or_none(reset),
            None if retry_after is None else _float_or_none(retry_after),
            None if date is None else _http_date_s(date),
            None if app_limit is None else _int_or_none(app_limit),
            None if app_remaining is None else _int_or_none(app_remaining),
            None if app_reset is None else _float_or_none(app_reset),
        ),
    )


def _int_or_none(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _float_or_none(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@lru_cache(maxsize=4)
def _http_date_s(value: bytes) -> float | None:
    # One Date value per second across every answer: parse it once, not once per answer.
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def classify(http_status: int, body: bytes) -> Initialized | ErrorInfo:
    """Turn a status and body into a media id or an :class:`ErrorInfo` (never raises)."""
    try:
        document = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return _non_json_error(http_status, body)
    if 200 <= http_status < 300:
        return _success_or_error(http_status, document, body)
    return _problem_error(http_status, document)


def _success_or_error(http_status: int, document: object, body: bytes) -> Initialized | ErrorInfo:
    fields: dict[str, object] = document if isinstance(document, dict) else {}
    data = fields.get("data")
    media_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(media_id, str) and media_id:
        media_key = data.get("media_key")
        expires = data.get("expires_after_secs")
        return _new_tuple(
            Initialized,
            (
                media_id,
                media_key if isinstance(media_key, str) else None,
                expires if type(expires) is int else None,
                _problem_list(fields) if "errors" in fields else (),
            ),
        )
    problems = _problem_list(document)
    if problems:
        # A 2xx with only errors[]: the API refused the row but said so in the body.
        return _error_from_problem(http_status, problems[0])
    return ErrorInfo(
        type="bad_response",
        title="Answer without a media id",
        detail=f"HTTP {http_status} carried no data.id: {_excerpt(body)}",
        retryable=True,
    )


def _problem_list(document: object) -> tuple[Mapping[str, object], ...]:
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return ()
    return tuple(item for item in errors if isinstance(item, dict))


def _problem_error(http_status: int, document: object) -> ErrorInfo:
    problem: Mapping[str, object] = document if isinstance(document, dict) else {}
    if "type" not in problem and "title" not in problem:
        nested = _problem_list(document)
        problem = nested[0] if nested else problem
    info = _error_from_problem(http_status, problem)
    nested_details = [str(p.get("message", "")) for p in _problem_list(document) if "message" in p]
    if nested_details:
        details = "; ".join(nested_details)
        return ErrorInfo(
            type=info.type,
            title=info.title,
            detail=f"{info.detail} ({details})",
            retryable=info.retryable,
        )
    return info


def _error_from_problem(http_status: int, problem: Mapping[str, object]) -> ErrorInfo:
    title = problem.get("title")
    detail = problem.get("detail") or problem.get("message")
    return ErrorInfo(
        type=problem_slug(problem.get("type"), http_status),
        title=str(title) if title else f"HTTP {http_status}",
        detail=str(detail) if detail else f"the API answered HTTP {http_status}",
        retryable=is_retryable_status(http_status),
    )


def problem_slug(problem_type: object, http_status: int) -> str:
    """``https://api.x.com/2/problems/invalid-request`` → ``invalid-request``, whatever the host."""
    if isinstance(problem_type, str) and PROBLEM_SLUG_MARKER in problem_type:
        slug = problem_type.rsplit(PROBLEM_SLUG_MARKER, 1)[1].strip("/")
        if slug:
            return slug
    if http_status >= 500:
        return "server-error"
    return SLUG_BY_STATUS.get(http_status, f"http-{http_status}")


def is_retryable_status(http_status: int) -> bool:
    """5xx, 429 and 408 may succeed later; every other status is the same on a retry."""
    return http_status >= 500 or http_status in (408, 429)


def _non_json_error(http_status: int, body: bytes) -> ErrorInfo:
    return ErrorInfo(
        type="bad_response",
        title="Answer is not JSON",
        detail=f"HTTP {http_status} with a body that is not valid JSON: {_excerpt(body)}",
        retryable=http_status < 400 or is_retryable_status(http_status),
    )


def _excerpt(body: bytes) -> str:
    text = body[:BODY_EXCERPT_CHARS].decode("utf-8", "replace")
    more = "…" if len(body) > BODY_EXCERPT_CHARS else ""
    return repr(text + more)


def transport_error(exc: OSError | HttpProcessingError, url: str) -> ApiError:
    """The one place where the transport's exceptions become batcher's (raise it ``from exc``).

    A function called in an ``except`` rather than a context manager around the call: entering
    and leaving one cost more than the rest of the call's bookkeeping.
    """
    if isinstance(exc, TimeoutError):
        return RequestTimeout(f"no complete answer from {url} within the timeout")
    if isinstance(exc, ContentLengthError | TransferEncodingError):
        return TransportError(f"the connection to {url} broke mid-answer: {exc}")
    if isinstance(exc, HttpProcessingError):
        return BadResponse(f"malformed HTTP answer from {url}: {exc}")
    # ConnectionError, ssl.SSLError (certificate verification included), DNS failures.
    return TransportError(f"cannot talk to {url}: {exc}")


class InitializeClient:
    """Sends initialize calls over a pool of keep-alive connections to the API.

    Use as ``async with InitializeClient(config) as client``; the pool is created inside the
    running event loop and closed by :meth:`aclose`, which is idempotent. At most
    ``config.max_in_flight`` requests (and connections) at once.
    """

    __slots__ = ("_config", "_heads", "_origin", "_pool", "_url")

    _config: ClientConfig
    _heads: dict[str, bytes]
    _origin: Origin
    _pool: ConnectionPool | None
    _url: str

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._pool = None
        self._url = config.base_url.rstrip("/") + INITIALIZE_PATH
        try:
            self._origin = Origin.from_url(self._url)
        except ValueError as exc:
            raise ConfigError(f"bad API base URL: {exc}") from None
        self._heads = {}

    def __repr__(self) -> str:
        state = repr(self._pool) if self._pool is not None else "closed"
        return f"<InitializeClient {self._url} max_in_flight={self._config.max_in_flight} {state}>"

    @property
    def resent(self) -> int:
        """Requests resent once on a fresh connection after a reused one closed unanswered."""
        return 0 if self._pool is None else self._pool.resent

    async def __aenter__(self) -> Self:
        config = self._config
        self._pool = ConnectionPool(
            self._origin,
            max_connections=config.max_in_flight,
            connect_timeout_s=config.connect_timeout_s,
            keepalive_s=config.keepalive_s,
            ssl_context=config.ssl_context,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections (safe to call twice)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    async def initialize(self, request: InitializeRequest, *, authorization: str) -> Answer:
        """Send one initialize call; raise :class:`~batcher.errors.ApiError` if no answer came.

        ``authorization`` is the full header value (``Bearer …``); it is never logged or echoed.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError("InitializeClient used outside 'async with'")
        data = json_post(self._head(authorization), orjson.dumps(request.to_body()))
        try:
            raw = await pool.request(data, self._config.timeout_s)
        except (OSError, HttpProcessingError) as exc:  # TimeoutError is an OSError
            raise transport_error(exc, self._url) from exc
        return answer_from(raw)

    def _head(self, authorization: str) -> bytes:
        head = self._heads.get(authorization)
        if head is None:
            try:
                head = request_head(self._origin, authorization)
            except ValueError:
                raise ConfigError(
                    "the access token contains characters a header cannot carry"
                ) from None
            if len(self._heads) > 64:
                self._heads.clear()  # refreshed tokens: keep only the recent ones
            self._heads[authorization] = head
        return head


def answer_from(raw: RawAnswer) -> Answer:
    """Classify a complete HTTP answer."""
    status = raw.status
    return _new_tuple(
        Answer, (status, classify(status, raw.body), parse_rate_limit(raw.headers), raw.sent)
    )


__all__ = [
    "Answer",
    "ClientConfig",
    "InitializeClient",
    "RateLimitInfo",
    "answer_from",
    "classify",
    "parse_rate_limit",
    "problem_slug",
    "transport_error",
]
