"""One OAuth 2.0 refresh (``grant_type=refresh_token``) against X's token endpoint.

Form-encoded; a confidential client authenticates with HTTP Basic, a public one sends its
``client_id`` in the form. Everything the endpoint or the network can do is mapped here, once,
to a :class:`TokenGrant` or an :class:`~batcher.errors.CredentialsError`; no message holds a
token or the client secret (the server's ``error_description`` is scrubbed of them too).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote_plus

import aiohttp
import anyio
import orjson

from batcher.auth import REDACTED
from batcher.errors import (
    ClientRejected,
    CredentialsError,
    RefreshTokenRevoked,
    TokenEndpointError,
)

log = logging.getLogger(__name__)

DEFAULT_TOKEN_ENDPOINT: Final = "https://api.x.com/2/oauth2/token"
DEFAULT_TOKEN_TIMEOUT_S: Final = 30.0
DEFAULT_TOKEN_ATTEMPTS: Final = 3
DEFAULT_TOKEN_BACKOFF_S: Final = 0.5
DEFAULT_EXPIRES_IN_S: Final = 7200.0
MEDIA_WRITE_SCOPE: Final = "media.write"
_DESCRIPTION_CHARS: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuth2Client:
    """The app an account authorized: its client id, and its secret when it is confidential."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    token_endpoint: str = DEFAULT_TOKEN_ENDPOINT
    timeout_s: float = DEFAULT_TOKEN_TIMEOUT_S
    max_attempts: int = DEFAULT_TOKEN_ATTEMPTS
    backoff_s: float = DEFAULT_TOKEN_BACKOFF_S

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        if self.timeout_s <= 0 or self.max_attempts < 1 or self.backoff_s < 0:
            raise ValueError("timeout_s must be > 0, max_attempts >= 1, backoff_s >= 0")

    def __repr__(self) -> str:
        kind = "confidential" if self.client_secret else "public"
        return f"OAuth2Client(client_id={self.client_id!r}, {kind}, {self.token_endpoint!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenGrant:
    """A successful refresh: the new access token, and the rotated refresh token if sent."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in_s: float
    scopes: frozenset[str] | None

    def __repr__(self) -> str:
        return f"TokenGrant(access_token={REDACTED}, expires_in_s={self.expires_in_s!r})"


async def refresh_access_token(
    client: OAuth2Client, refresh_token: str, *, account: str, token_source: str
) -> TokenGrant:
    """Trade ``refresh_token`` for a new access token, retrying transient failures.

    ``token_source`` (where the refresh token lives) goes into the message when it is refused.
    """
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    headers = {"Accept": "application/json"}
    if client.client_secret is None:
        form["client_id"] = client.client_id
    else:
        headers["Authorization"] = basic_authorization(client.client_id, client.client_secret)
    answer = _Answers(client, account, token_source, (refresh_token, client.client_secret))
    failure = ""
    for attempt in range(1, client.max_attempts + 1):
        try:
            status, body = await _post(client, form, headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            failure = f"cannot reach the token endpoint {client.token_endpoint} ({_name(exc)})"
            answer.maybe_applied = True
        else:
            if status < 500 and status != 429:
                return answer.grant_or_raise(status, body)
            failure = f"the token endpoint {client.token_endpoint} answered HTTP {status}"
        log.debug("account %s: refresh attempt %d failed: %s", account, attempt, failure)
        if attempt < client.max_attempts:
            await anyio.sleep(client.backoff_s * 2 ** (attempt - 1))
    raise TokenEndpointError(
        f"account {account!r}: {failure} (after {client.max_attempts} attempts)", account=account
    )


def basic_authorization(client_id: str, client_secret: str) -> str:
    """HTTP Basic for a confidential client; both parts form-encoded first (RFC 6749 2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


async def _post(
    client: OAuth2Client, form: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=client.timeout_s)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(client.token_endpoint, data=dict(form), headers=dict(headers)) as got,
    ):
        return got.status, await got.read()


class _Answers:
    """Turns one answer of the token endpoint into a grant or the matching error."""

    __slots__ = ("_account", "_client", "_secrets", "_source", "maybe_applied")

    def __init__(
        self,
        client: OAuth2Client,
        account: str,
        token_source: str,
        secrets: tuple[str | None, ...],
    ) -> None:
        self._client = client
        self._account = account
        self._source = token_source
        self._secrets = tuple(s for s in secrets if s)
        self.maybe_applied = False

    def grant_or_raise(self, status: int, body: bytes) -> TokenGrant:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            raise self._fail(TokenEndpointError, f"answered HTTP {status} with no JSON object")
        if status == 200:
            return self._grant(document)
        raise self._refusal(status, document)

    def _grant(self, document: Mapping[str, object]) -> TokenGrant:
        access = document.get("access_token")
        token_type = document.get("token_type", "bearer")
        if not isinstance(access, str) or not access or str(token_type).lower() != "bearer":
            raise self._fail(TokenEndpointError, "answered 200 without a bearer access_token")
        refresh = document.get("refresh_token")
        expires_in = document.get("expires_in")
        scope = document.get("scope")
        return TokenGrant(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in_s=float(expires_in)
            if isinstance(expires_in, int | float) and expires_in > 0
            else DEFAULT_EXPIRES_IN_S,
            scopes=frozenset(scope.split()) if isinstance(scope, str) else None,
        )

    def _refusal(self, status: int, document: Mapping[str, object]) -> CredentialsError:
        error = str(document.get("error") or document.get("title") or f"HTTP {status}")
        description = self._scrub(
            str(document.get("error_description") or document.get("detail") or "")
        )
        said = f"{error}: {description}" if description else error
        if error == "invalid_grant" or (error == "invalid_request" and "token" in description):
            lost = (
                "; an earlier attempt's answer was lost, so the server may have rotated it then"
                if self.maybe_applied
                else ""
            )
            return self._fail(
                RefreshTokenRevoked,
                f"refused the refresh token ({said}): it was revoked, expired or already "
                f"used{lost}. Re-authorize the account (scopes media.write offline.access) and "
                f"save the new refresh token in {self._source}; its rows stay resumable",
            )
        if status == 401 or error in ("invalid_client", "unauthorized_client"):
            return self._fail(
                ClientRejected,
                f"refused the client ({said}): check client_id, and client_secret for a "
                "confidential client (a public client has none)",
            )
        return self._fail(CredentialsError, f"refused the refresh with HTTP {status} ({said})")

    def _fail(self, kind: type[CredentialsError], problem: str) -> CredentialsError:
        where = self._client.token_endpoint
        message = f"account {self._account!r}: the token endpoint {where} {problem}"
        return kind(message, account=self._account)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text[:_DESCRIPTION_CHARS]


def _name(exc: BaseException) -> str:
    return type(exc).__name__
