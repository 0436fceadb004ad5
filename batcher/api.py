"""The initialize call: one shared keep-alive session, orjson bodies, answers given a shape.

Everything aiohttp can raise is translated into :mod:`batcher.errors` in exactly one place
(:func:`translate_transport_errors`); everything the server can answer is turned into an
:class:`Answer` by :func:`classify`, so no caller ever sees raw JSON or an aiohttp exception.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Final, Self

import aiohttp
import orjson

from batcher.contract import DEFAULT_BASE_URL, INITIALIZE_PATH
from batcher.errors import BadResponse, RequestTimeout, TransportError
from batcher.models import ErrorInfo, Initialized, InitializeRequest

DEFAULT_MAX_IN_FLIGHT: Final = 64
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
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
    """How to reach the API: where, how many requests at once, how long to wait."""

    base_url: str = DEFAULT_BASE_URL
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitInfo:
    """What one response said about the caller's quota (``None``: header absent or garbled)."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    retry_after_s: float | None = None
    server_time: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One HTTP answer, classified: ``result`` is the media id or why there is none."""

    http_status: int
    result: Initialized | ErrorInfo
    rate: RateLimitInfo


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo:
    """Read the ``x-rate-limit-*``, ``Retry-After`` and ``Date`` headers, tolerating garbage."""
    return RateLimitInfo(
        limit=_int_header(headers, "x-rate-limit-limit"),
        remaining=_int_header(headers, "x-rate-limit-remaining"),
        reset_at=_float_header(headers, "x-rate-limit-reset"),
        retry_after_s=_float_header(headers, "retry-after"),
        server_time=_date_header(headers),
    )


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _date_header(headers: Mapping[str, str]) -> float | None:
    value = headers.get("date")
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
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
    data = document.get("data") if isinstance(document, dict) else None
    media_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(media_id, str) and media_id:
        media_key = data.get("media_key")
        expires = data.get("expires_after_secs")
        return Initialized(
            media_id=media_id,
            media_key=media_key if isinstance(media_key, str) else None,
            expires_after_secs=expires if type(expires) is int else None,
            warnings=_problem_list(document),
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


@contextmanager
def translate_transport_errors(url: str) -> Iterator[None]:
    """The one place where aiohttp's and asyncio's exceptions become batcher's."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise RequestTimeout(f"no complete answer from {url} within the timeout") from exc
    except aiohttp.ClientPayloadError as exc:
        raise TransportError(f"the connection to {url} broke mid-answer: {exc}") from exc
    except aiohttp.ClientResponseError as exc:
        raise BadResponse(f"malformed HTTP answer from {url}: {exc.message}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(f"cannot talk to {url}: {exc}") from exc


class InitializeClient:
    """Sends initialize calls over one shared keep-alive session.

    Use as ``async with InitializeClient(config) as client``; the session and its connector are
    created inside the running event loop and closed by :meth:`aclose`, which is idempotent.
    """

    __slots__ = ("_config", "_session", "_url")

    _config: ClientConfig
    _session: aiohttp.ClientSession | None
    _url: str

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._session = None
        self._url = config.base_url.rstrip("/") + INITIALIZE_PATH

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "closed"
        return f"<InitializeClient {self._url} max_in_flight={self._config.max_in_flight} {state}>"

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(
            limit=self._config.max_in_flight,
            limit_per_host=self._config.max_in_flight,
            keepalive_timeout=60.0,
        )
        timeout = aiohttp.ClientTimeout(
            total=self._config.timeout_s, sock_connect=self._config.connect_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, raise_for_status=False, auto_decompress=True
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
        """Close the session and its pooled connections (safe to call twice)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def initialize(self, request: InitializeRequest, *, authorization: str) -> Answer:
        """Send one initialize call; raise :class:`~batcher.errors.ApiError` if no answer came.

        ``authorization`` is the full header value (``Bearer …``); it is never logged or echoed.
        """
        session = self._session
        if session is None:
            raise RuntimeError("InitializeClient used outside 'async with'")
        headers = {"Content-Type": "application/json", "Authorization": authorization}
        body = orjson.dumps(request.to_body())
        with translate_transport_errors(self._url):
            async with session.post(self._url, data=body, headers=headers) as response:
                payload = await response.read()
                return Answer(
                    http_status=response.status,
                    result=classify(response.status, payload),
                    rate=parse_rate_limit(response.headers),
                )


__all__ = [
    "Answer",
    "ClientConfig",
    "InitializeClient",
    "RateLimitInfo",
    "classify",
    "parse_rate_limit",
    "problem_slug",
]
