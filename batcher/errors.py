"""The one error tree of batcher.

Exceptions are for failures of the run, never of a single row: a row that cannot be initialized
becomes a result record (data), because one exception escaping a worker would cancel every other
worker of the task group.

    BatcherError
    ├── ConfigError            bad flag, missing token, unreadable accounts file   (exit 2)
    ├── ManifestError          the manifest as a whole cannot be opened or read     (exit 2)
    ├── ResultsError           the results file cannot be opened or read            (exit 2)
    │   └── ResultsWriteError  writing it failed mid-run: disk full, I/O error       (exit 5)
    ├── CredentialsError       an account's credentials cannot sign (that account stops)
    │   ├── RefreshTokenRevoked    the token endpoint refused the refresh token: re-authorize
    │   ├── ClientRejected         the token endpoint refused the client id or secret
    │   ├── TokenEndpointError     token endpoint unreachable or garbled (…, ConnectionError)
    │   └── TokenStoreError        the token file cannot be read, written or locked
    └── ApiError               a failure talking to the API, mapped from aiohttp
        ├── TransportError     connection refused/reset, DNS, TLS (…, ConnectionError)
        ├── RequestTimeout     no complete answer within the timeout (…, TimeoutError)
        └── BadResponse        an answer that is not the JSON the contract promises (…, ValueError)
"""

from __future__ import annotations


class BatcherError(Exception):
    """Root of every error batcher raises on purpose."""


class ConfigError(BatcherError):
    """The run is misconfigured: a flag, an environment variable or a file it names."""


class ManifestError(BatcherError):
    """The manifest cannot be opened or read at all (a bad row is data, not this)."""


class ResultsError(BatcherError):
    """The results file cannot be opened, written or flushed."""


class ResultsWriteError(ResultsError):
    """Writing or flushing the results file failed mid-run (disk full, I/O error)."""


class ApiError(BatcherError):
    """A request to the API failed before a usable answer arrived."""


class TransportError(ApiError, ConnectionError):
    """The connection failed: refused, reset, closed early, DNS or TLS."""


class RequestTimeout(ApiError, TimeoutError):
    """The server did not answer completely within the per-request timeout."""


class BadResponse(ApiError, ValueError):
    """The server answered, but not with the JSON the contract promises."""


class CredentialsError(BatcherError):
    """An account's credentials cannot sign: the runner stops that account, its rows resumable.

    ``retryable`` says whether the same credentials may work later (an outage) or never will.
    """

    account: str
    retryable: bool = False

    def __init__(self, message: str, *, account: str) -> None:
        super().__init__(message)
        self.account = account


class RefreshTokenRevoked(CredentialsError):
    """The token endpoint refused the refresh token (``invalid_grant``): re-authorize."""


class ClientRejected(CredentialsError):
    """The token endpoint refused the client id or secret (``invalid_client``)."""


class TokenEndpointError(CredentialsError, ConnectionError):
    """The token endpoint could not be reached, or answered garbage, after retries."""

    retryable = True


class TokenStoreError(CredentialsError):
    """The token state file cannot be read, written or locked."""

    retryable = True
