"""Who a request is, as X decides it: OAuth 2.0 user tokens, OAuth 1.0a signatures, refusals.

    Authorization: Bearer <static token>     ─▶ that token is the user (``config.tokens``)
    Authorization: Bearer <issued token>     ─▶ its grant's user, until it expires (401 after)
    Authorization: Bearer <app-only token>   ─▶ 403 unsupported-authentication
    Authorization: OAuth oauth_…             ─▶ HMAC-SHA1 checked with oauthlib; timestamp
                                                within the window, nonce never seen before
    anything else                            ─▶ 401

A token whose grant lacks ``media.write`` (or a static one listed in ``no_media_write_tokens``)
gets X's bare 403 "Forbidden"; a read-only OAuth 1.0a app gets the oauth1-permissions 403.
Every token of one user shares that user's rate-limit window (``Identity.user``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, cast

import orjson
from oauthlib.oauth1 import Client
from oauthlib.oauth1.rfc5849 import signature, utils

from batcher import contract
from batcher.oauth1 import HttpMethod
from batcher.simulator import problems

MEDIA_WRITE: Final = "media.write"
DEFAULT_SCOPES: Final = frozenset({"tweet.read", "users.read", MEDIA_WRITE, "offline.access"})
DEFAULT_ACCESS_TOKEN_LIFETIME_S: Final = 7200.0
DEFAULT_TIMESTAMP_WINDOW_S: Final = 300.0
_OAUTH1_REQUIRED: Final = frozenset(
    f"oauth_{name}"
    for name in ("consumer_key", "token", "signature_method", "timestamp", "nonce", "signature")
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request acts for. ``user`` keys the rate-limit windows."""

    user: str
    scheme: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """An authentication answer other than "go on": status and problem body."""

    status: int
    body: bytes


UNAUTHORIZED: Final = Refusal(401, problems.UNAUTHORIZED)
APP_ONLY: Final = Refusal(
    403,
    problems.problem(
        title="Unsupported Authentication",
        detail="Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
        "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
        status=403,
        type_=contract.PROBLEM_TYPE_PREFIX + "unsupported-authentication",
    ),
)
NO_MEDIA_WRITE: Final = Refusal(
    403, problems.problem(title="Forbidden", detail="Forbidden", status=403)
)
OAUTH1_READ_ONLY: Final = Refusal(
    403,
    problems.problem(
        title="Forbidden",
        detail="Your client app is not configured with the appropriate oauth1 app permissions "
        "for this endpoint.",
        status=403,
        type_=contract.PROBLEM_TYPE_PREFIX + "oauth1-permissions",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuth2App:
    """An OAuth 2.0 client: confidential with a secret (HTTP Basic), public without."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuth2Grant:
    """A user's authorization of an app: the refresh token it starts with, and its scopes."""

    user: str
    client_id: str
    refresh_token: str = field(repr=False)
    scopes: frozenset[str] = DEFAULT_SCOPES


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuth1User:
    """OAuth 1.0a user context: an app's consumer key/secret and a user's token/secret."""

    user: str
    consumer_key: str
    consumer_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthConfig:
    """The simulator's OAuth world; empty by default (only ``SimulatorConfig.tokens`` work)."""

    apps: tuple[OAuth2App, ...] = ()
    grants: tuple[OAuth2Grant, ...] = ()
    oauth1_users: tuple[OAuth1User, ...] = ()
    app_only_tokens: frozenset[str] = frozenset()
    no_media_write_tokens: frozenset[str] = frozenset()
    access_token_lifetime_s: float = DEFAULT_ACCESS_TOKEN_LIFETIME_S
    timestamp_window_s: float = DEFAULT_TIMESTAMP_WINDOW_S

    def __post_init__(self) -> None:
        if self.access_token_lifetime_s <= 0 or self.timestamp_window_s <= 0:
            raise ValueError("access_token_lifetime_s and timestamp_window_s must be > 0")


@dataclass(frozen=True, slots=True)
class _Issued:
    grant: OAuth2Grant
    expires_at: float


class OAuthState:
    """Live OAuth state: current refresh tokens, issued access tokens, seen nonces, counters."""

    __slots__ = (
        "_access",
        "_clock",
        "_live_refresh",
        "_nonces",
        "_oauth1",
        "_used_refresh",
        "apps",
        "config",
        "oauth1_refused",
        "refreshes",
        "refused_refreshes",
        "reused_refresh_tokens",
        "token_requests",
    )

    def __init__(self, config: OAuthConfig, *, clock: Callable[[], float]) -> None:
        self.config = config
        self.apps = {app.client_id: app for app in config.apps}
        self._clock = clock
        self._live_refresh = {grant.refresh_token: grant for grant in config.grants}
        self._used_refresh: set[str] = set()
        self._access: dict[str, _Issued] = {}
        self._oauth1 = {(u.consumer_key, u.access_token): u for u in config.oauth1_users}
        self._nonces: dict[tuple[str, str, str], float] = {}
        self.token_requests = self.refreshes = self.refused_refreshes = 0
        self.reused_refresh_tokens = self.oauth1_refused = 0

    def __repr__(self) -> str:
        return (
            f"OAuthState(refreshes={self.refreshes}, refused_refreshes={self.refused_refreshes}, "
            f"reused_refresh_tokens={self.reused_refresh_tokens})"
        )

    def refresh(self, client_id: str, refresh_token: str) -> dict[str, object] | None:
        """Rotate ``refresh_token`` (single use): the token answer, or None if refused."""
        grant = self._live_refresh.pop(refresh_token, None)
        if grant is None or grant.client_id != client_id:
            if grant is not None:
                self._live_refresh[refresh_token] = grant  # another client's: leave it alone
            self.refused_refreshes += 1
            self.reused_refresh_tokens += refresh_token in self._used_refresh
            return None
        self._used_refresh.add(refresh_token)
        self.refreshes += 1
        access, rotated = f"sim-at-{secrets.token_urlsafe(24)}", secrets.token_urlsafe(32)
        lifetime_s = self.config.access_token_lifetime_s
        self._access[access] = _Issued(grant, self._clock() + lifetime_s)
        self._live_refresh[rotated] = grant
        return {
            "token_type": "bearer",
            "expires_in": int(lifetime_s) if lifetime_s == int(lifetime_s) else lifetime_s,
            "access_token": access,
            "scope": " ".join(sorted(grant.scopes)),
            "refresh_token": rotated,
        }

    def revoke(self, user: str) -> None:
        """Revoke every refresh and access token of ``user`` (as "remove app access" does)."""
        self._live_refresh = {t: g for t, g in self._live_refresh.items() if g.user != user}
        self._access = {t: i for t, i in self._access.items() if i.grant.user != user}

    def live_refresh_tokens(self, user: str) -> frozenset[str]:
        """The refresh tokens of ``user`` that would be accepted now (for tests)."""
        return frozenset(t for t, g in self._live_refresh.items() if g.user == user)

    def every_token(self) -> frozenset[str]:
        """Every access and refresh token issued or configured so far (for leak tests)."""
        configured = {g.refresh_token for g in self.config.grants}
        return frozenset({*configured, *self._used_refresh, *self._live_refresh, *self._access})

    def bearer(self, token: str) -> Identity | Refusal:
        """The identity an issued or app-only bearer token proves."""
        if token in self.config.app_only_tokens:
            return APP_ONLY
        issued = self._access.get(token)
        if issued is None or self._clock() >= issued.expires_at:
            return UNAUTHORIZED
        if MEDIA_WRITE not in issued.grant.scopes:
            return NO_MEDIA_WRITE
        return Identity(user=issued.grant.user, scheme="oauth2_user")

    def oauth1(self, method: str, url: str, header: str) -> Identity | Refusal:
        """Check an OAuth 1.0a ``Authorization`` header for ``method url``."""
        verdict = self._verify_oauth1(method, url, header)
        if verdict is UNAUTHORIZED:
            self.oauth1_refused += 1
        return verdict

    def _verify_oauth1(self, method: str, url: str, header: str) -> Identity | Refusal:
        try:
            params = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(header)}
        except (ValueError, IndexError):
            return UNAUTHORIZED
        if not params.keys() >= _OAUTH1_REQUIRED or params["oauth_signature_method"] != "HMAC-SHA1":
            return UNAUTHORIZED
        user = self._oauth1.get((params["oauth_consumer_key"], params["oauth_token"]))
        if user is None or not self._timely(params["oauth_timestamp"]):
            return UNAUTHORIZED
        if not _signature_ok(method, url, header, params["oauth_signature"], user):
            return UNAUTHORIZED
        nonce = (user.consumer_key, params["oauth_token"], params["oauth_nonce"])
        if nonce in self._nonces:
            return UNAUTHORIZED  # a replayed request
        self._remember(nonce, float(params["oauth_timestamp"]))
        return OAUTH1_READ_ONLY if user.read_only else Identity(user=user.user, scheme="oauth1")

    def _timely(self, timestamp: str) -> bool:
        try:
            sent_s = float(timestamp)
        except ValueError:
            return False
        return abs(self._clock() - sent_s) <= self.config.timestamp_window_s

    def _remember(self, nonce: tuple[str, str, str], timestamp_s: float) -> None:
        self._nonces[nonce] = timestamp_s
        if len(self._nonces) % 4096 == 0:  # forget nonces whose timestamps are refused anyway
            oldest = self._clock() - self.config.timestamp_window_s
            self._nonces = {n: t for n, t in self._nonces.items() if t >= oldest}


def _signature_ok(method: str, url: str, header: str, sent: str, user: OAuth1User) -> bool:
    """Recompute the HMAC-SHA1 signature: method, URL, query and ``oauth_*`` (never the body)."""
    query = url.partition("?")[2].partition("#")[0]
    collected = signature.collect_parameters(uri_query=query, headers={"Authorization": header})
    normalized = signature.normalize_parameters(cast(dict[str, str], collected))
    base = signature.signature_base_string(
        cast(HttpMethod, method.upper()), signature.base_string_uri(url), normalized
    )
    keys = Client(
        user.consumer_key,
        client_secret=user.consumer_secret,
        resource_owner_key=user.access_token,
        resource_owner_secret=user.access_token_secret,
    )
    expected = signature.sign_hmac_sha1_with_client(base, keys)
    return hmac.compare_digest(str(expected), sent)


def token_error(error: str, description: str) -> bytes:
    """The token endpoint's error body (RFC 6749 shape, as X sends it)."""
    return orjson.dumps({"error": error, "error_description": description})
