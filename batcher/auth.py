"""Where an account's credentials come from, and how they are kept out of sight.

A token is read from the environment or from a file, never from a command-line value, and the
objects holding it never show it: not in ``repr()``, ``str()`` or any message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from batcher.errors import ConfigError

TOKEN_ENV: Final = "X_ACCESS_TOKEN"
DEFAULT_ACCOUNT: Final = "default"
REDACTED: Final = "***"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """One X user the run acts for; ``token`` is a user-context OAuth 2.0 access token."""

    name: str
    token: str = field(repr=False)

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self.token}"


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


def load_default_account(
    *, environ: Mapping[str, str] | None = None, token_file: Path | None = None
) -> Account:
    """The account whose token is in ``--token-file`` or else ``X_ACCESS_TOKEN``."""
    if token_file is not None:
        return Account(name=DEFAULT_ACCOUNT, token=read_token_file(token_file))
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"no access token: set {TOKEN_ENV} or pass --token-file PATH "
            "(a user-context OAuth 2.0 token with the media.write scope)"
        )
    return Account(name=DEFAULT_ACCOUNT, token=token)


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


def redact(secret: str) -> str:
    """A form of ``secret`` safe to print: never more than its length class."""
    return REDACTED if secret else ""
