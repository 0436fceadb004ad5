"""OAuth 1.0a user context: oauthlib's HMAC-SHA1 signatures, checked by the simulator."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from batcher import contract
from batcher.oauth1 import OAuth1Credentials, sign_oauth1
from tests.helpers import FakeClock
from tests.oauth_world import (
    OAUTH1,
    READ_ONLY_OAUTH1,
    initialize,
    oauth_simulator,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_a_signed_request_is_accepted_as_its_user(session: aiohttp.ClientSession) -> None:
    async with oauth_simulator() as server:
        url = server.url + contract.INITIALIZE_PATH
        header = await OAUTH1.authorization("POST", url)
        assert header.startswith("OAuth ")
        assert 'oauth_signature_method="HMAC-SHA1"' in header
        status, body = await initialize(session, server, header)
        assert status == 200, body
        media_id = body["data"]["id"]
        assert server.issued[media_id].token == "dave"  # the user, not a token, keys the window


async def test_the_query_is_signed_and_the_json_body_is_not(
    session: aiohttp.ClientSession,
) -> None:
    async with oauth_simulator() as server:
        url = server.url + contract.INITIALIZE_PATH + "?a=1&b=two%20words"
        header = sign_oauth1(OAUTH1, "post", url)
        assert (await initialize(session, server, header, query="?a=1&b=two%20words"))[0] == 200
        other_query = sign_oauth1(OAUTH1, "POST", url)
        assert (await initialize(session, server, other_query, query="?a=2"))[0] == 401


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda h: h.replace('oauth_signature="', 'oauth_signature="A'), id="signature"
        ),
        pytest.param(lambda h: h.replace("HMAC-SHA1", "PLAINTEXT"), id="method"),
        pytest.param(lambda h: h.replace("oauth_nonce", "oauth_nonc"), id="no-nonce"),
        pytest.param(lambda h: "OAuth garbage", id="garbage"),
    ],
)
async def test_a_tampered_header_is_refused(session: aiohttp.ClientSession, tamper: object) -> None:
    async with oauth_simulator() as server:
        header = sign_oauth1(OAUTH1, "POST", server.url + contract.INITIALIZE_PATH)
        assert callable(tamper)
        status, body = await initialize(session, server, tamper(header))
        assert status == 401
        assert body["title"] == "Unauthorized"


async def test_wrong_secrets_are_refused(session: aiohttp.ClientSession) -> None:
    async with oauth_simulator() as server:
        url = server.url + contract.INITIALIZE_PATH
        for wrong in (
            replace(OAUTH1, consumer_secret="other"),
            replace(OAUTH1, access_token_secret="other"),
            replace(OAUTH1, access_token="99-unknown"),
        ):
            assert (await initialize(session, server, sign_oauth1(wrong, "POST", url)))[0] == 401
        assert server.state.oauth.oauth1_refused == 3


async def test_a_replayed_nonce_and_a_stale_timestamp_are_refused(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock(time.time())
    async with oauth_simulator(clock=clock) as server:
        header = sign_oauth1(OAUTH1, "POST", server.url + contract.INITIALIZE_PATH)
        assert (await initialize(session, server, header))[0] == 200
        assert (await initialize(session, server, header))[0] == 401  # the same nonce again
        clock.advance(301.0)
        fresh = sign_oauth1(OAUTH1, "POST", server.url + contract.INITIALIZE_PATH)
        assert (await initialize(session, server, fresh))[0] == 401


async def test_a_read_only_app_gets_the_permissions_403(session: aiohttp.ClientSession) -> None:
    async with oauth_simulator() as server:
        header = sign_oauth1(READ_ONLY_OAUTH1, "POST", server.url + contract.INITIALIZE_PATH)
        status, body = await initialize(session, server, header)
        assert status == 403
        assert body["type"].endswith("/2/problems/oauth1-permissions")


async def test_oauth1_never_renews_and_never_shows_its_secrets() -> None:
    assert await OAUTH1.after_unauthorized("OAuth x") is False
    shown = f"{OAUTH1!r} {OAUTH1!s}"
    for secret in (
        OAUTH1.consumer_key,
        OAUTH1.consumer_secret,
        OAUTH1.access_token,
        OAUTH1.access_token_secret,
    ):
        assert secret not in shown
    assert shown == "OAuth1Credentials(***) OAuth1Credentials(***)"


def test_an_unknown_method_is_not_signed() -> None:
    with pytest.raises(ValueError, match="BREW"):
        sign_oauth1(
            OAuth1Credentials(
                consumer_key="k", consumer_secret="s", access_token="t", access_token_secret="u"
            ),
            "BREW",
            "https://example.invalid/",
        )
