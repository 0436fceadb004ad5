"""Credentials from one account's table of the accounts file.

Secrets are never written in the accounts file: each comes from an environment variable
(``<name>_env = "VARIABLE"``) or a file (``<name>_file = "path"``, relative to the accounts
file's folder). A table that holds a secret inline is refused. The scheme is always explicit::

    [accounts.alice]                      # OAuth 2.0 user context, refreshed as needed
    scheme = "oauth2"
    client_id = "M1M5R3BMVy13QmpScXkzTUt5OE46MTpjaQ"
    client_secret_env = "X_CLIENT_SECRET" # confidential clients only
    refresh_token_file = "tokens/alice"   # rewritten (0600) at every refresh: tokens rotate

    [accounts.bob]                        # OAuth 1.0a user context
    scheme = "oauth1"
    consumer_key_env = "X_API_KEY"
    consumer_secret_env = "X_API_SECRET"
    access_token_env = "BOB_ACCESS_TOKEN"
    access_token_secret_env = "BOB_ACCESS_TOKEN_SECRET"

    [accounts.carol]                      # a fixed OAuth 2.0 user token (two hours at most)
    scheme = "bearer"
    token_env = "CAROL_TOKEN"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from batcher.auth import BearerToken, Credentials, read_token_file
from batcher.errors import ConfigError
from batcher.oauth1 import OAuth1Credentials
from batcher.oauth2 import OAuth2RefreshingCredentials, RefreshPolicy
from batcher.token_endpoint import DEFAULT_TOKEN_ENDPOINT, OAuth2Client
from batcher.token_store import TokenStore

SCHEMES: Final = ("oauth2", "oauth1", "bearer")
SECRET_NAMES: Final = (
    "token",
    "client_secret",
    "refresh_token",
    "consumer_key",
    "consumer_secret",
    "access_token",
    "access_token_secret",
)
"""Values that may only come from ``<name>_env`` or ``<name>_file``, never inline."""

SETTING_KEYS: Final = frozenset(
    {
        "scheme",
        "client_id",
        "token_endpoint",
        "state_file",
        "refresh_margin_s",
        "refresh_margin_fraction",
        "token_timeout_s",
    }
)
CREDENTIAL_KEYS: Final = SETTING_KEYS | {
    f"{name}_{source}" for name in SECRET_NAMES for source in ("env", "file")
}
"""Every key :func:`parse_credentials` reads; an accounts loader may check for typos with it."""


def parse_credentials(
    name: str, table: Mapping[str, object], base_dir: Path, environ: Mapping[str, str]
) -> Credentials:
    """The credentials ``[accounts.<name>]`` describes; :class:`ConfigError` says what to fix."""
    keys = _Keys(name, table, base_dir, environ)
    keys.refuse_inline_secrets()
    scheme = keys.text("scheme")
    if scheme == "bearer":
        return BearerToken(keys.secret("token"))
    if scheme == "oauth1":
        return OAuth1Credentials(
            consumer_key=keys.secret("consumer_key"),
            consumer_secret=keys.secret("consumer_secret"),
            access_token=keys.secret("access_token"),
            access_token_secret=keys.secret("access_token_secret"),
        )
    if scheme == "oauth2":
        return _oauth2(keys)
    shown = "missing" if scheme is None else repr(scheme)
    raise keys.error(f"scheme is {shown}: set scheme to one of {', '.join(map(repr, SCHEMES))}")


def _oauth2(keys: _Keys) -> OAuth2RefreshingCredentials:
    client_id = keys.text("client_id")
    if not client_id:
        raise keys.error("scheme 'oauth2' needs client_id (the app's OAuth 2.0 client id)")
    client = OAuth2Client(
        client_id=client_id,
        client_secret=keys.optional_secret("client_secret"),
        token_endpoint=keys.text("token_endpoint") or DEFAULT_TOKEN_ENDPOINT,
        timeout_s=keys.number("token_timeout_s", 30.0),
    )
    policy = RefreshPolicy(
        margin_s=keys.number("refresh_margin_s", 60.0),
        margin_fraction=keys.number("refresh_margin_fraction", 0.1),
    )
    return OAuth2RefreshingCredentials(
        account=keys.account, client=client, store=_token_store(keys), policy=policy
    )


def _token_store(keys: _Keys) -> TokenStore:
    """``refresh_token_file`` is also the state file; ``refresh_token_env`` seeds ``state_file``."""
    token_file = keys.path("refresh_token_file")
    variable = keys.text("refresh_token_env")
    if (token_file is None) == (variable is None):
        raise keys.error(
            "scheme 'oauth2' needs exactly one of refresh_token_file or refresh_token_env"
        )
    if token_file is not None:
        return TokenStore(token_file, account=keys.account)
    state_file = keys.path("state_file")
    if state_file is None:
        raise keys.error(
            "refresh_token_env needs state_file too: refresh tokens rotate on every use, so the "
            "new one must be saved there (the variable only seeds the first run)"
        )
    if state_file.exists():
        return TokenStore(state_file, account=keys.account)  # the variable's token is used up
    seed = keys.secret("refresh_token")
    return TokenStore(state_file, account=keys.account, seed=lambda: seed)


class _Keys:
    """Typed reads of one account table; every message names the account and the key."""

    __slots__ = ("_base_dir", "_environ", "_table", "account")

    def __init__(
        self, account: str, table: Mapping[str, object], base_dir: Path, environ: Mapping[str, str]
    ) -> None:
        self.account = account
        self._table = table
        self._base_dir = base_dir
        self._environ = environ

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"account {self.account!r}: {problem}")

    def refuse_inline_secrets(self) -> None:
        for name in SECRET_NAMES:
            if name in self._table:
                raise self.error(
                    f"{name} must not be written in the accounts file (it would sit in plain "
                    f'text next to the settings): use {name}_env = "VARIABLE" or '
                    f'{name}_file = "path"'
                )

    def text(self, key: str) -> str | None:
        value = self._table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{key} must be a non-empty string")
        return value.strip()

    def number(self, key: str, default: float) -> float:
        value = self._table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.error(f"{key} must be a number >= 0")
        return float(value)

    def path(self, key: str) -> Path | None:
        text = self.text(key)
        return None if text is None else self._base_dir / Path(text).expanduser()

    def secret(self, name: str) -> str:
        value = self.optional_secret(name)
        if value is None:
            raise self.error(f"needs {name}_env (an environment variable) or {name}_file")
        return value

    def optional_secret(self, name: str) -> str | None:
        variable, file = self.text(f"{name}_env"), self.path(f"{name}_file")
        if variable is not None and file is not None:
            raise self.error(f"give {name}_env or {name}_file, not both")
        if file is not None:
            return _read(file, self.error)
        if variable is None:
            return None
        value = self._environ.get(variable, "").strip()
        if not value:
            raise self.error(f"environment variable {variable} ({name}_env) is not set")
        return value


def _read(path: Path, error: Callable[[str], ConfigError]) -> str:
    try:
        return read_token_file(path)
    except ConfigError as exc:
        raise error(str(exc)) from None
