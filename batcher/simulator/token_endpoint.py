"""``POST /2/oauth2/token`` with ``grant_type=refresh_token``, as X answers it.

A confidential client authenticates with HTTP Basic, a public one names itself with
``client_id`` in the form. Each refresh token works once: the answer carries a new one (and a
new access token that lives ``access_token_lifetime_s``); the old one is refused from then on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Final
from urllib.parse import unquote_plus

import orjson
from aiohttp import web

from batcher.simulator.oauth import OAuthState, token_error

TOKEN_PATH: Final = "/2/oauth2/token"
OAUTH_KEY: Final = web.AppKey("batcher_simulator_oauth", OAuthState)
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_INVALID_TOKEN: Final = "Value passed for the token was invalid."


async def handle_token(request: web.Request) -> web.Response:
    """Answer one token request."""
    oauth = request.app[OAUTH_KEY]
    oauth.token_requests += 1
    form = await request.post()
    client_id = _authenticated_client(request, oauth, form.get("client_id"))
    if client_id is None:
        return _error(401, "unauthorized_client", "Missing valid authorization header")
    if form.get("grant_type") != "refresh_token":
        return _error(400, "unsupported_grant_type", "Only refresh_token is simulated.")
    refresh_token = form.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        return _error(400, "invalid_request", "Missing required parameter [refresh_token].")
    answer = oauth.refresh(client_id, refresh_token)
    if answer is None:
        return _error(400, "invalid_grant", _INVALID_TOKEN)
    return web.Response(
        status=200, body=orjson.dumps(answer), content_type="application/json", headers=_NO_STORE
    )


def _authenticated_client(request: web.Request, oauth: OAuthState, named: object) -> str | None:
    """The client id the request proves: Basic for confidential clients, the form for public."""
    header = request.headers.get("Authorization")
    if header is not None:
        login, password = _decode_basic(header)
        app = oauth.apps.get(login)
        if app is None or app.client_secret is None:
            return None
        return app.client_id if hmac.compare_digest(app.client_secret, password) else None
    app = oauth.apps.get(named) if isinstance(named, str) else None
    return app.client_id if app is not None and app.client_secret is None else None


def _decode_basic(header: str) -> tuple[str, str]:
    """``Basic base64(id:secret)`` (each form-encoded) → (id, secret); ("", "") if garbled."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        pair = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    login, _, password = pair.partition(":")
    return unquote_plus(login), unquote_plus(password)


def _error(status: int, error: str, description: str) -> web.Response:
    body = token_error(error, description)
    return web.Response(
        status=status, body=body, content_type="application/json", headers=_NO_STORE
    )
