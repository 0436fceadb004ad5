"""The simulator's auth: the token endpoint, app-only and scope refusals, shared user windows."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from batcher import contract
from batcher.oauth1 import sign_oauth1
from batcher.simulator import SimulatorServer
from tests.helpers import FakeClock
from tests.oauth_world import (
    APP_ONLY_TOKEN,
    CLIENT_SECRET,
    CONFIDENTIAL_CLIENT,
    OAUTH1,
    PUBLIC_CLIENT,
    REFRESH,
    STATIC_NO_SCOPE_TOKEN,
    initialize,
    oauth_simulator,
    token_url,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def refresh(
    session: aiohttp.ClientSession,
    server: SimulatorServer,
    token: str,
    *,
    client_id: str | None = PUBLIC_CLIENT,
    basic: tuple[str, str] | None = None,
    grant_type: str = "refresh_token",
) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": grant_type, "refresh_token": token}
    if client_id is not None:
        form["client_id"] = client_id
    headers = {}
    if basic is not None:
        pair = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    async with session.post(token_url(server), data=form, headers=headers) as answer:
        return answer.status, orjson.loads(await answer.read())


async def test_a_refresh_rotates_and_each_refresh_token_works_once(
    session: aiohttp.ClientSession,
) -> None:
    async with oauth_simulator(access_token_lifetime_s=5) as server:
        status, answer = await refresh(session, server, REFRESH["alice"])
        assert status == 200
        assert answer["token_type"] == "bearer"
        assert answer["expires_in"] == 5
        assert "media.write" in answer["scope"].split()
        assert answer["refresh_token"] != REFRESH["alice"]
        again, error = await refresh(session, server, REFRESH["alice"])
        assert (again, error["error"]) == (400, "invalid_grant")
        assert server.state.oauth.reused_refresh_tokens == 1
        status, _ = await initialize(session, server, f"Bearer {answer['access_token']}")
        assert status == 200


async def test_a_confidential_client_needs_its_secret(session: aiohttp.ClientSession) -> None:
    async with oauth_simulator() as server:
        token = REFRESH["bob"]
        status, error = await refresh(session, server, token, client_id=CONFIDENTIAL_CLIENT)
        assert (status, error["error"]) == (401, "unauthorized_client")
        wrong = (CONFIDENTIAL_CLIENT, "wrong")
        assert (await refresh(session, server, token, client_id=None, basic=wrong))[0] == 401
        good = (CONFIDENTIAL_CLIENT, CLIENT_SECRET)
        assert (await refresh(session, server, token, client_id=None, basic=good))[0] == 200


async def test_another_clients_refresh_token_and_other_grants_are_refused(
    session: aiohttp.ClientSession,
) -> None:
    async with oauth_simulator() as server:
        assert (await refresh(session, server, REFRESH["bob"]))[0] == 400
        status, error = await refresh(session, server, REFRESH["alice"], grant_type="password")
        assert (status, error["error"]) == (400, "unsupported_grant_type")
        assert (
            await refresh(
                session,
                server,
                REFRESH["bob"],
                client_id=None,
                basic=(CONFIDENTIAL_CLIENT, CLIENT_SECRET),
            )
        )[0] == 200  # still live


async def test_an_expired_access_token_is_a_401(session: aiohttp.ClientSession) -> None:
    clock = FakeClock(time.time())
    async with oauth_simulator(clock=clock, access_token_lifetime_s=5) as server:
        _, answer = await refresh(session, server, REFRESH["alice"])
        header = f"Bearer {answer['access_token']}"
        clock.advance(4.9)
        assert (await initialize(session, server, header))[0] == 200
        clock.advance(0.2)
        assert (await initialize(session, server, header))[0] == 401


async def test_an_app_only_token_gets_the_unsupported_authentication_403(
    session: aiohttp.ClientSession,
) -> None:
    async with oauth_simulator() as server:
        status, body = await initialize(session, server, f"Bearer {APP_ONLY_TOKEN}")
        assert status == 403
        assert body == {
            "title": "Unsupported Authentication",
            "type": "https://api.x.com/2/problems/unsupported-authentication",
            "status": 403,
            "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this "
            "endpoint.  Supported authentication types are [OAuth 1.0a User Context, "
            "OAuth 2.0 User Context].",
        }
        assert server.stats().initialized == 0


async def test_a_token_without_media_write_gets_a_bare_forbidden(
    session: aiohttp.ClientSession,
) -> None:
    async with oauth_simulator() as server:
        status, body = await initialize(session, server, f"Bearer {STATIC_NO_SCOPE_TOKEN}")
        assert (status, body) == (
            403,
            {"title": "Forbidden", "type": "about:blank", "status": 403, "detail": "Forbidden"},
        )


async def test_oauth1_and_oauth2_tokens_of_one_user_share_a_window(
    session: aiohttp.ClientSession,
) -> None:
    async with oauth_simulator(window_limit=10) as server:
        _, answer = await refresh(session, server, REFRESH["dave"])
        url = server.url + contract.INITIALIZE_PATH
        remaining = []
        for header in (
            f"Bearer {answer['access_token']}",
            sign_oauth1(OAUTH1, "POST", url),
            f"Bearer {answer['access_token']}",
        ):
            headers = {"Authorization": header, "Content-Type": "application/json"}
            body = orjson.dumps({"media_type": "image/png", "total_bytes": 5})
            async with session.post(url, data=body, headers=headers) as got:
                remaining.append(int(got.headers["x-rate-limit-remaining"]))
        assert remaining == [9, 8, 7]
