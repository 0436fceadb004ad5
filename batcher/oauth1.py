"""OAuth 1.0a user context: every request signed with HMAC-SHA1 by oauthlib.

The signature covers the method, the URL (query included) and the ``oauth_*`` parameters; the
JSON body is not part of the signature base string (only form-encoded bodies are), so the
request is signed with no body and no form content type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER, Client

_REDACTED = "***"
# oauthlib logs the signature base string (consumer key, access token) at DEBUG: with a debug
# root logger that would put credentials in the log, so its records below WARNING are dropped.
logging.getLogger("oauthlib").setLevel(logging.WARNING)
HttpMethod = Literal["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuth1Credentials:
    """A consumer key/secret (the app) and an access token/secret (the user); never renews."""

    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"OAuth1Credentials({_REDACTED})"

    @property
    def fixed_authorization(self) -> None:
        """Every request gets its own nonce and signature."""
        return None

    async def authorization(self, method: str, url: str) -> str:
        """``OAuth oauth_consumer_key="…", …, oauth_signature="…"`` for one request."""
        return sign_oauth1(self, method, url)

    async def after_unauthorized(self, rejected: str) -> bool:
        """A signature refused once is refused again: the keys themselves are wrong."""
        return False


def sign_oauth1(credentials: OAuth1Credentials, method: str, url: str) -> str:
    """The ``Authorization`` value for ``method url``, with a fresh nonce and timestamp."""
    verb = method.upper()
    if verb not in get_args(HttpMethod):
        raise ValueError(f"cannot sign an HTTP {method!r} request")
    client = Client(
        credentials.consumer_key,
        client_secret=credentials.consumer_secret,
        resource_owner_key=credentials.access_token,
        resource_owner_secret=credentials.access_token_secret,
        signature_method=SIGNATURE_HMAC_SHA1,
        signature_type=SIGNATURE_TYPE_AUTH_HEADER,
    )
    _, headers, _ = client.sign(url, http_method=cast(HttpMethod, verb))
    value: str = headers["Authorization"]
    return value
