"""The file that keeps one OAuth 2.0 account's tokens across refreshes, runs and processes.

Refresh tokens rotate on every use, so the new one must be on disk before anything else happens:
a crash after the refresh but before the save would lose the account. The file is replaced
atomically (a temporary file, mode 0600, fsynced, renamed over the old one, directory fsynced),
so a reader sees the old state or the new one, never half of either.

It also keeps the latest access token and its expiry, so a second process on the same account
uses that token instead of refreshing again. A sibling ``.lock`` file, held with ``flock``,
makes one process at a time refresh (``flock`` locks belong to an open file, so two objects in
one process exclude each other too; the lock file is never deleted, which would race).

The file may start as the bare refresh token (one line, as the user saved it); batcher writes
it back as JSON: ``{"version": 1, "refresh_token": …, "access_token": …, "expires_at": …}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import orjson

from batcher.auth import REDACTED
from batcher.errors import TokenStoreError

log = logging.getLogger(__name__)

FILE_MODE: Final = 0o600
FORMAT_VERSION: Final = 1
DEFAULT_LOCK_TIMEOUT_S: Final = 60.0
LOCK_POLL_S: Final = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenState:
    """What the store holds: the refresh token, and the latest access token if any."""

    refresh_token: str = field(repr=False)
    access_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    lifetime_s: float | None = None

    def __repr__(self) -> str:
        access = REDACTED if self.access_token else None
        return (
            f"TokenState(refresh_token={REDACTED}, access_token={access}, "
            f"expires_at={self.expires_at!r}, lifetime_s={self.lifetime_s!r})"
        )


class TokenStore:
    """One account's token file and its lock; ``seed`` gives the first refresh token when the
    file does not exist yet (a refresh token from an environment variable)."""

    __slots__ = ("_account", "_seed", "lock_path", "path")

    path: Path
    lock_path: Path

    def __init__(self, path: Path, *, account: str, seed: Callable[[], str] | None = None) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._account = account
        self._seed = seed

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r})"

    def read(self) -> TokenState:
        """The stored state (the seed when there is no file yet)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if self._seed is None:
                raise self._error("does not exist") from None
            return TokenState(refresh_token=self._seed())
        except OSError as exc:
            raise self._error(f"cannot be read ({type(exc).__name__})") from None
        self._warn_if_shared()
        return self._parse(raw)

    def _parse(self, raw: bytes) -> TokenState:
        text = raw.decode("utf-8-sig", "replace").strip()
        if not text.startswith("{"):
            token = text.splitlines()[0].strip() if text else ""
            if not token:
                raise self._error("is empty")
            return TokenState(refresh_token=token)
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise self._error("is not valid JSON") from None
        refresh = document.get("refresh_token") if isinstance(document, dict) else None
        if not isinstance(refresh, str) or not refresh:
            raise self._error("holds no refresh_token")
        access = document.get("access_token")
        return TokenState(
            refresh_token=refresh,
            access_token=access if isinstance(access, str) and access else None,
            expires_at=_number(document.get("expires_at")),
            lifetime_s=_number(document.get("lifetime_s")),
        )

    def check_writable(self) -> None:
        """Fail before a refresh, not after, when the new token could not be saved."""
        folder = self.path.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            raise self._error(f"cannot be replaced: folder {folder} is not writable")

    def write(self, state: TokenState) -> None:
        """Replace the file atomically with ``state`` (0600, fsynced file and folder)."""
        document = {
            "version": FORMAT_VERSION,
            "refresh_token": state.refresh_token,
            "access_token": state.access_token,
            "expires_at": state.expires_at,
            "lifetime_s": state.lifetime_s,
        }
        payload = orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            _write_synced(temp, payload)
            os.replace(temp, self.path)
            _fsync_folder(self.path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise self._error(f"cannot be written ({type(exc).__name__})") from None

    @contextlib.asynccontextmanager
    async def locked(self, *, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> AsyncIterator[None]:
        """Hold the account's lock file (polling, so a cancelled waiter leaves at once)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            problem = f"lock {self.lock_path} cannot be opened ({type(exc).__name__})"
            raise self._error(problem) from None
        try:
            await _acquire(fd, timeout_s, lambda: self._error(_lock_timeout(timeout_s)))
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _warn_if_shared(self) -> None:
        with contextlib.suppress(OSError):
            if stat.S_IMODE(self.path.stat().st_mode) & 0o077:
                log.warning(
                    "account %s: token file %s is readable by other users; "
                    "batcher rewrites it with mode 0600 at the next refresh",
                    self._account,
                    self.path,
                )

    def _error(self, problem: str) -> TokenStoreError:
        return TokenStoreError(
            f"account {self._account!r}: token file {self.path} {problem}", account=self._account
        )


async def _acquire(fd: int, timeout_s: float, timed_out: Callable[[], Exception]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise timed_out() from None
            await anyio.sleep(LOCK_POLL_S)
        else:
            return


def _lock_timeout(timeout_s: float) -> str:
    return f"stayed locked by another process for {timeout_s:.0f} s"


def _write_synced(path: Path, payload: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as file:
        file.write(payload)
        file.flush()
        os.fsync(file.fileno())


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
