"""The accounts file (``--accounts FILE``): which accounts a run acts for, and their credentials.

A TOML file with one table per account. Every secret comes from an environment variable
(``*_env``) or from a file (``*_file``, relative to the accounts file), never from the accounts
file itself; :mod:`batcher.credentials` reads the keys of each scheme::

    default = "alice"            # optional: the account of rows without an `account` column

    [accounts.alice]             # a fixed OAuth 2.0 user token (scheme = "bearer", the default)
    token_env = "ALICE_TOKEN"

    [accounts.bob]               # OAuth 2.0 with a rotating refresh token
    scheme = "oauth2"
    client_id = "..."
    refresh_token_file = "tokens/bob"

Without ``default`` (and without an account named ``default``), rows without an account use
``X_ACCESS_TOKEN``. Messages name the file and the account, never a token.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from batcher.auth import DEFAULT_ACCOUNT, TOKEN_ENV, Account, AccountSet, load_default_account
from batcher.credentials import CREDENTIAL_KEYS, parse_credentials
from batcher.errors import ConfigError

ACCOUNT_NAME: Final = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def load_accounts(path: Path, *, environ: Mapping[str, str] = os.environ) -> AccountSet:
    """Read ``path`` and the credentials it points to; :class:`ConfigError` on any problem."""
    document = _read_toml(path)
    tables = document.get("accounts")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"accounts file {path}: no [accounts.NAME] table")
    unknown = sorted(set(document) - {"accounts", "default"})
    if unknown:
        raise ConfigError(f"accounts file {path}: unknown top-level key(s) {', '.join(unknown)}")
    accounts = {
        name: parse_account(name, table, base_dir=path.parent, environ=environ, source=path)
        for name, table in tables.items()
    }
    default = _default_account(path, document.get("default"), accounts, environ)
    others = {name: account for name, account in accounts.items() if name != default.name}
    return AccountSet(default=default, others=others)


def parse_account(
    name: str,
    table: object,
    *,
    base_dir: Path,
    environ: Mapping[str, str],
    source: Path,
) -> Account:
    """One ``[accounts.NAME]`` table as an :class:`Account` (extend here for new schemes)."""
    where = f"accounts file {source}, account {name!r}"
    if ACCOUNT_NAME.fullmatch(name) is None:
        raise ConfigError(f"{where}: use letters, digits and _ . @ - in account names")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table [accounts.{name}]")
    unknown = sorted(set(table) - CREDENTIAL_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    # An account without a scheme is a fixed OAuth 2.0 user token (token_env / token_file).
    settings = {"scheme": "bearer", **table}
    try:
        credentials = parse_credentials(name, settings, base_dir, environ)
    except ConfigError as exc:
        raise ConfigError(f"accounts file {source}: {exc}") from None
    return Account(name=name, credentials=credentials)


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"cannot read accounts file {path}: {type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"accounts file {path} is not valid TOML: {exc}") from None


def _default_account(
    path: Path, named: object, accounts: Mapping[str, Account], environ: Mapping[str, str]
) -> Account:
    if named is not None:
        if not isinstance(named, str) or named not in accounts:
            known = ", ".join(sorted(accounts))
            raise ConfigError(
                f"accounts file {path}: default = {named!r} names no account (known: {known})"
            )
        return accounts[named]
    if DEFAULT_ACCOUNT in accounts:
        return accounts[DEFAULT_ACCOUNT]
    try:
        return load_default_account(environ=environ)
    except ConfigError:
        raise ConfigError(
            f"no default account for rows without an account column: set {TOKEN_ENV}, or add "
            f'default = "NAME" to accounts file {path}'
        ) from None


__all__ = ["load_accounts", "parse_account"]
