"""Where an account's credentials come from, and how they are kept out of sight.

A secret is read from the environment or from a file, never from a command-line value, and the
objects holding it never show it: not in ``repr()``, ``str()`` or any message.

The runner only knows the :class:`Credentials` protocol: ask for the ``Authorization`` value of
the next request, and say when the API answered 401 to it (a refreshing scheme may then renew).
Three schemes implement it: :class:`BearerToken` (a fixed OAuth 2.0 user token),
:class:`~batcher.oauth2.OAuth2RefreshingCredentials` and :class:`~batcher.oauth1.OAuth1Credentials`.

An account whose credentials can no longer sign raises a
:class:`~batcher.errors.CredentialsError` (see that module for the tree); the runner stops that
account and leaves its rows for the next run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from batcher.errors import ConfigError
from batcher.oauth1 import OAuth1Credentials

log = logging.getLogger(__name__)

TOKEN_ENV: Final = "X_ACCESS_TOKEN"
API_KEY_ENV: Final = "X_API_KEY"
API_SECRET_ENV: Final = "X_API_SECRET"
ACCESS_TOKEN_SECRET_ENV: Final = "X_ACCESS_TOKEN_SECRET"
DEFAULT_ACCOUNT: Final = "default"
REDACTED: Final = "***"


class Credentials(Protocol):
    """How one account signs its requests."""

    @property
    def fixed_authorization(self) -> str | None:
        """The header when it never changes (a fixed token), else None.

        Lets the runner skip an await per request (about 1 µs a row) where nothing can change.
        """
        ...

    async def authorization(self, method: str, url: str) -> str:
        """The ``Authorization`` header value for the next request to ``url``."""
        ...

    async def after_unauthorized(self, rejected: str) -> bool:
        """The API answered 401 to ``rejected``: renew if possible; True when a retry may pass."""
        ...


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A fixed OAuth 2.0 user access token (it cannot renew itself)."""

    token: str = field(repr=False)
    # Built once: asked for every request, and the client keys its request heads by it.
    _header: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_header", f"Bearer {self.token}")

    def __repr__(self) -> str:
        return f"BearerToken({REDACTED})"

    @property
    def fixed_authorization(self) -> str:
        """``Bearer <token>``, the same for every request."""
        return self._header

    async def authorization(self, method: str, url: str) -> str:
        """``Bearer <token>``."""
        return self.fixed_authorization

    async def after_unauthorized(self, rejected: str) -> bool:
        """A fixed token stays refused."""
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """One X user the run acts for, and how its requests are signed."""

    name: str
    credentials: Credentials


def bearer_account(name: str, token: str) -> Account:
    """An account with a fixed OAuth 2.0 user access token."""
    return Account(name=name, credentials=BearerToken(token))


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSet:
    """The accounts of a run; rows without an ``account`` column use ``default``."""

    default: Account
    others: Mapping[str, Account] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Every account name, the default first."""
        return [self.default.name, *(name for name in self.others if name != self.default.name)]

    def get(self, name: str | None) -> Account | None:
        """The account a row names (``None`` or the default's name: the default)."""
        if name is None or name == self.default.name:
            return self.default
        return self.others.get(name)


def redact_authorization(value: str) -> str:
    """An ``Authorization`` value safe to log: the scheme only (``Bearer ***``)."""
    scheme = value.partition(" ")[0]
    return f"{scheme} {REDACTED}" if scheme else REDACTED


def load_default_account(
    *, environ: Mapping[str, str] | None = None, token_file: Path | None = None
) -> Account:
    """The account of ``--token-file``, else the one the environment describes.

    See :func:`default_credentials_from_env`.
    """
    if token_file is not None:
        return bearer_account(DEFAULT_ACCOUNT, read_token_file(token_file))
    env = os.environ if environ is None else environ
    return Account(name=DEFAULT_ACCOUNT, credentials=default_credentials_from_env(env))


def default_credentials_from_env(environ: Mapping[str, str]) -> Credentials:
    """OAuth 1.0a when ``X_API_KEY``, ``X_API_SECRET``, ``X_ACCESS_TOKEN`` and
    ``X_ACCESS_TOKEN_SECRET`` are all set; else the bearer token ``X_ACCESS_TOKEN``.

    Setting only some of the OAuth 1.0a variables is refused: sending an OAuth 1.0a access
    token as a bearer token would only earn a puzzling 401.
    """
    names = (API_KEY_ENV, API_SECRET_ENV, TOKEN_ENV, ACCESS_TOKEN_SECRET_ENV)
    values = {name: environ.get(name, "").strip() for name in names}
    oauth1_only = (API_KEY_ENV, API_SECRET_ENV, ACCESS_TOKEN_SECRET_ENV)
    if any(values[name] for name in oauth1_only):
        missing = [name for name in names if not values[name]]
        if missing:
            raise ConfigError(
                f"OAuth 1.0a needs {', '.join(names)}; not set: {', '.join(missing)} "
                f"(or unset {', '.join(oauth1_only)} to use the bearer token {TOKEN_ENV})"
            )
        log.debug("default account: OAuth 1.0a user context from %s", ", ".join(names))
        return OAuth1Credentials(
            consumer_key=values[API_KEY_ENV],
            consumer_secret=values[API_SECRET_ENV],
            access_token=values[TOKEN_ENV],
            access_token_secret=values[ACCESS_TOKEN_SECRET_ENV],
        )
    if not values[TOKEN_ENV]:
        raise ConfigError(
            f"no access token: set {TOKEN_ENV} or pass --token-file PATH "
            "(a user-context OAuth 2.0 token with the media.write scope), or set "
            f"{', '.join(names)} for OAuth 1.0a, or use an accounts file"
        )
    log.debug("default account: OAuth 2.0 bearer token from %s", TOKEN_ENV)
    return BearerToken(values[TOKEN_ENV])


def read_token_file(path: Path) -> str:
    """The first non-blank line of ``path``; the message on failure never shows the content."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read token file {path}: {type(exc).__name__}") from None
    token = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not token:
        raise ConfigError(f"token file {path} is empty")
    return token
