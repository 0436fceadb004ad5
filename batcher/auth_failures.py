"""What an authentication refusal means and what to do about it, in one sentence for the user.

X's auth refusals are terse (a bare ``Forbidden``, a bare ``Unauthorized``); the runner puts
:func:`describe_auth_failure`'s text in the row's ``error.detail`` and the account-stopped line.
"""

from __future__ import annotations

from typing import Final

from batcher.auth import BearerToken, Credentials
from batcher.oauth1 import OAuth1Credentials
from batcher.oauth2 import OAuth2RefreshingCredentials

MEDIA_WRITE_HINT: Final = (
    "re-authorize the account with the media.write scope (plus offline.access for refresh)"
)
READ_ONLY_HINT: Final = (
    "set the app's permissions to 'Read and write' in the developer portal, then generate "
    "the access token and secret again (old tokens keep the old permissions)"
)


def credentials_scheme(credentials: Credentials) -> str:
    """``oauth2``, ``oauth1``, ``bearer``, or ``other`` for a scheme this module does not know."""
    if isinstance(credentials, OAuth2RefreshingCredentials):
        return "oauth2"
    if isinstance(credentials, OAuth1Credentials):
        return "oauth1"
    return "bearer" if isinstance(credentials, BearerToken) else "other"


def describe_auth_failure(
    http_status: int, error_type: str, title: str, detail: str, scheme: str
) -> str:
    """A clear explanation of a 401 or 403 (``scheme``: ``bearer``, ``oauth2`` or ``oauth1``).

    ``error_type`` is the problem's slug (``unsupported-authentication``, ``forbidden``, …).
    """
    if error_type == "unsupported-authentication" or "Application-Only" in detail:
        return (
            "this endpoint needs a user token: the account's token is an app-only bearer token, "
            "which X refuses here; use an OAuth 2.0 user access token with the media.write scope "
            '(scheme = "oauth2" with a refresh token) or OAuth 1.0a user context (scheme = '
            '"oauth1")'
        )
    if http_status == 403:
        return _forbidden(error_type, title, detail, scheme)
    if http_status == 401:
        return _unauthorized(scheme)
    return f"HTTP {http_status} {title}: {detail}"


def _forbidden(error_type: str, title: str, detail: str, scheme: str) -> str:
    if error_type == "oauth1-permissions":
        return f"the app's OAuth 1.0a permissions are read-only ({detail}): {READ_ONLY_HINT}"
    if error_type == "client-forbidden":
        return (
            f"the app may not use this endpoint ({detail}): attach it to a project with "
            "access to the X API v2 in the developer portal"
        )
    if detail.strip() in ("", "Forbidden") and title.strip() in ("", "Forbidden"):
        if scheme == "oauth1":
            return f"a bare 403 Forbidden: the app is probably read-only: {READ_ONLY_HINT}"
        return (
            "X answered a bare 403 Forbidden: the token probably lacks the media.write scope "
            f"({MEDIA_WRITE_HINT}), or the app is read-only ({READ_ONLY_HINT})"
        )
    return f"HTTP 403 {title}: {detail}"


def _unauthorized(scheme: str) -> str:
    if scheme == "oauth1":
        return (
            "the OAuth 1.0a signature was refused: check that the consumer key and secret and "
            "the access token and secret belong together and were not regenerated, and that "
            "this machine's clock is right"
        )
    if scheme == "oauth2":
        return (
            "the access token was refused even right after a refresh: the account's "
            f"authorization was probably revoked; {MEDIA_WRITE_HINT}"
        )
    return (
        "the token was refused: it expired (OAuth 2.0 access tokens live two hours), was "
        "revoked, or is not a user token; for long runs give the account a refresh token "
        '(scheme = "oauth2")'
    )
