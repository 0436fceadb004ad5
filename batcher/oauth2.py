"""OAuth 2.0 user context that lasts: the access token is refreshed before it expires.

X's access tokens live two hours and a long migration runs for many, so
:class:`OAuth2RefreshingCredentials` renews the token ahead of expiry and once on a 401::

    authorization() ─ fresh? ──yes──▶ Bearer <token>
                         └─no─▶ account lock (anyio) ─▶ file lock (flock) ─▶ re-read the file
                                 └─ someone else refreshed? use theirs : refresh, save, use

One refresh at a time per account: the other workers of the process wait on the account's lock
and then use the new token; other processes wait on the file lock and then read the token the
winner saved. The rotated refresh token is saved (atomically, mode 0600) before the new access
token is used, and that step is shielded from cancellation. A revoked refresh token stops the
account for good (a circuit breaker): every later call raises at once, without a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio

from batcher.errors import ClientRejected, CredentialsError, RefreshTokenRevoked
from batcher.token_endpoint import MEDIA_WRITE_SCOPE, OAuth2Client, refresh_access_token
from batcher.token_store import DEFAULT_LOCK_TIMEOUT_S, TokenState, TokenStore

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``): expiries are shared between processes."""

DEFAULT_MARGIN_S: Final = 60.0
DEFAULT_MARGIN_FRACTION: Final = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshPolicy:
    """When to renew ahead of expiry: once less than ``min(margin_s, margin_fraction ×
    lifetime)`` remains (60 s of a two-hour token; 0.5 s of a five-second one)."""

    margin_s: float = DEFAULT_MARGIN_S
    margin_fraction: float = DEFAULT_MARGIN_FRACTION
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.margin_s < 0 or not 0 <= self.margin_fraction < 1 or self.lock_timeout_s <= 0:
            raise ValueError("margin_s >= 0, 0 <= margin_fraction < 1 and lock_timeout_s > 0")

    def margin_for(self, lifetime_s: float | None) -> float:
        """Seconds before expiry at which a token of ``lifetime_s`` is renewed."""
        if lifetime_s is None:
            return self.margin_s
        return min(self.margin_s, self.margin_fraction * lifetime_s)


class OAuth2RefreshingCredentials:
    """One account's OAuth 2.0 user tokens, renewed as needed (see the module docstring)."""

    __slots__ = (
        "_account",
        "_client",
        "_clock",
        "_failure",
        "_lock",
        "_policy",
        "_renewed_after_401",
        "_state",
        "_store",
        "adopted",
        "refreshes",
    )

    refreshes: int
    adopted: int

    def __init__(
        self,
        *,
        account: str,
        client: OAuth2Client,
        store: TokenStore,
        policy: RefreshPolicy | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._account = account
        self._client = client
        self._store = store
        self._policy = policy or RefreshPolicy()
        self._clock = clock
        self._lock = anyio.Lock()
        self._state: TokenState | None = None
        self._failure: CredentialsError | None = None
        self._renewed_after_401: tuple[str, float] | None = None
        self.refreshes = 0
        self.adopted = 0

    def __repr__(self) -> str:
        state = self._state
        left = "none" if state is None else f"{self._seconds_left(state):.0f}s"
        stopped = " stopped" if self._failure else ""
        return (
            f"<OAuth2RefreshingCredentials {self._account!r} {self._client!r} "
            f"store={str(self._store.path)!r} token_left={left} "
            f"refreshes={self.refreshes} adopted={self.adopted}{stopped}>"
        )

    @property
    def fixed_authorization(self) -> None:
        """The access token changes at every refresh."""
        return None

    async def authorization(self, method: str, url: str) -> str:
        """``Bearer <token>``, renewing first when the token is missing or nearly expired."""
        state = self._state
        if state is None or self._failure is not None or not self._fresh(state):
            state = await self._renew(rejected=None)
        return f"Bearer {state.access_token}"

    async def after_unauthorized(self, rejected: str) -> bool:
        """Renew once after a 401 to ``rejected``; False when that cannot help."""
        scheme, _, token = rejected.partition(" ")
        if scheme.lower() != "bearer" or not token or self._refused_again(token):
            return False
        state = await self._renew(rejected=token)
        if state.access_token == token:
            return False
        self._renewed_after_401 = (state.access_token or "", self._clock())
        return True

    def _refused_again(self, token: str) -> bool:
        """A token fresh from a 401-driven renewal refused again: more renewals won't help."""
        renewed = self._renewed_after_401
        state = self._state
        if renewed is None or renewed[0] != token or state is None:
            return False
        young_s = (state.lifetime_s or 0.0) / 2
        return self._clock() - renewed[1] < young_s

    async def _renew(self, *, rejected: str | None) -> TokenState:
        async with self._lock:
            if self._failure is not None:
                raise _again(self._failure)
            current = self._state
            if current is not None and current.access_token != rejected and self._fresh(current):
                return current  # another worker renewed while this one waited
            try:
                state = await self._renew_across_processes(rejected)
            except (RefreshTokenRevoked, ClientRejected) as exc:
                self._failure = exc
                log.error("%s", exc)
                raise
            self._state = state
            return state

    async def _renew_across_processes(self, rejected: str | None) -> TokenState:
        async with self._store.locked(timeout_s=self._policy.lock_timeout_s):
            stored = await anyio.to_thread.run_sync(self._store.read)
            if stored.access_token not in (None, rejected) and self._fresh(stored):
                self.adopted += 1
                log.debug(
                    "account %s: using the access token saved by another process", self._account
                )
                return stored
            await anyio.to_thread.run_sync(self._store.check_writable)
            return await self._refresh(stored)

    async def _refresh(self, stored: TokenState) -> TokenState:
        sent_at = self._clock()
        log.debug("account %s: refreshing the access token", self._account)
        # The server rotates the refresh token as soon as it answers: the answer must be saved
        # even if this task is cancelled meanwhile (the request has its own timeout).
        with anyio.CancelScope(shield=True):
            grant = await refresh_access_token(
                self._client,
                stored.refresh_token,
                account=self._account,
                token_source=str(self._store.path),
            )
            state = TokenState(
                refresh_token=grant.refresh_token or stored.refresh_token,
                access_token=grant.access_token,
                expires_at=sent_at + grant.expires_in_s,
                lifetime_s=grant.expires_in_s,
            )
            await anyio.to_thread.run_sync(self._store.write, state)
        self.refreshes += 1
        log.debug(
            "account %s: access token refreshed, valid for %.0f s; rotated refresh token saved",
            self._account,
            grant.expires_in_s,
        )
        if grant.scopes is not None and MEDIA_WRITE_SCOPE not in grant.scopes:
            log.warning(
                "account %s: the token's scopes (%s) lack media.write; X will refuse uploads "
                "with 403: re-authorize with the media.write scope",
                self._account,
                " ".join(sorted(grant.scopes)),
            )
        return state

    def _fresh(self, state: TokenState) -> bool:
        return state.access_token is not None and self._seconds_left(
            state
        ) > self._policy.margin_for(state.lifetime_s)

    def _seconds_left(self, state: TokenState) -> float:
        return (state.expires_at or 0.0) - self._clock()


def _again(failure: CredentialsError) -> CredentialsError:
    """A new exception like ``failure`` (re-raising one instance would pile up tracebacks)."""
    return type(failure)(str(failure), account=failure.account)
