"""The accounts file (``--accounts FILE``): which accounts a run acts for, and their credentials.

A TOML file with one table per account; a token comes from an environment variable or from a
file (relative to the accounts file), never from the file itself::

    default = "alice"            # optional: the account of rows without an `account` column

    [accounts.alice]
    token_env = "ALICE_TOKEN"

    [accounts.bob]
    token_file = "secrets/bob.token"

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

from batcher.auth import (
    DEFAULT_ACCOUNT,
    TOKEN_ENV,
    Account,
    AccountSet,
    bearer_account,
    load_default_account,
    read_token_file,
)
from batcher.errors import ConfigError

ACCOUNT_KEYS: Final = frozenset({"token_env", "token_file"})
TOKEN_SOURCES: Final = ("token_env", "token_file")
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
    unknown = sorted(set(table) - ACCOUNT_KEYS)
    if unknown:
        allowed = ", ".join(sorted(ACCOUNT_KEYS))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
    given = [key for key in TOKEN_SOURCES if key in table]
    if len(given) != 1:
        raise ConfigError(f"{where}: give exactly one of token_env or token_file")
    value = table[given[0]]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {given[0]} must be a non-empty string")
    if given[0] == "token_env":
        return bearer_account(name, _token_from_env(value, environ, where))
    return bearer_account(name, _token_from_file(base_dir / value, where))


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"cannot read accounts file {path}: {type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"accounts file {path} is not valid TOML: {exc}") from None


def _token_from_env(variable: str, environ: Mapping[str, str], where: str) -> str:
    token = environ.get(variable, "").strip()
    if not token:
        raise ConfigError(f"{where}: environment variable {variable} is not set or empty")
    return token


def _token_from_file(path: Path, where: str) -> str:
    try:
        return read_token_file(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


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
