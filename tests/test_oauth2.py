"""OAuth 2.0 refreshing credentials against the simulator's token endpoint (127.0.0.1:0)."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from batcher.errors import (
    ClientRejected,
    CredentialsError,
    RefreshTokenRevoked,
    TokenEndpointError,
    TokenStoreError,
)
from batcher.oauth2 import OAuth2RefreshingCredentials, RefreshPolicy
from batcher.token_store import TokenStore
from tests.helpers import FakeClock
from tests.oauth_world import (
    ALL_SECRETS,
    CLIENT_SECRET,
    REFRESH,
    initialize,
    oauth2_client,
    oauth2_credentials,
    oauth_simulator,
    seed_token_file,
    stored,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_the_first_call_refreshes_saves_the_rotated_token_0600_and_is_accepted(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with oauth_simulator() as server:
        credentials = oauth2_credentials(server, tmp_path, "alice")
        header = await credentials.authorization("POST", server.url)
        status, _ = await initialize(session, server, header)
        assert status == 200
        saved = stored(tmp_path / "alice.token")
        assert saved["refresh_token"] != REFRESH["alice"]
        assert server.state.oauth.live_refresh_tokens("alice") == {saved["refresh_token"]}
        assert header == f"Bearer {saved['access_token']}"
        assert stat.S_IMODE((tmp_path / "alice.token").stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
        assert credentials.refreshes == 1


async def test_a_confidential_client_authenticates_with_basic(tmp_path: Path) -> None:
    async with oauth_simulator() as server:
        credentials = oauth2_credentials(server, tmp_path, "bob")
        assert (await credentials.authorization("POST", server.url)).startswith("Bearer ")
        wrong = oauth2_credentials(server, tmp_path / "..", "bob", client_secret="nope")
        with pytest.raises(ClientRejected, match="client_secret"):
            await wrong.authorization("POST", server.url)


async def test_refreshes_ahead_of_expiry_and_not_before(tmp_path: Path) -> None:
    clock = FakeClock(time.time())
    async with oauth_simulator(clock=clock, access_token_lifetime_s=100.0) as server:
        policy = RefreshPolicy(margin_s=60.0, margin_fraction=0.1)  # 10 s of 100 s
        credentials = oauth2_credentials(server, tmp_path, "alice", policy=policy, clock=clock)
        first = await credentials.authorization("POST", server.url)
        clock.advance(89.0)
        assert await credentials.authorization("POST", server.url) == first
        clock.advance(2.0)  # 9 s left: under the margin
        second = await credentials.authorization("POST", server.url)
        assert second != first
        assert server.state.oauth.refreshes == 2


async def test_a_401_renews_once_and_the_retry_passes(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server_clock, client_clock = FakeClock(time.time()), FakeClock(time.time())
    async with oauth_simulator(clock=server_clock, access_token_lifetime_s=100.0) as server:
        credentials = oauth2_credentials(server, tmp_path, "alice", clock=client_clock)
        header = await credentials.authorization("POST", server.url)
        server_clock.advance(101.0)  # the server thinks it expired; the client does not
        assert (await initialize(session, server, header))[0] == 401
        assert await credentials.after_unauthorized(header) is True
        renewed = await credentials.authorization("POST", server.url)
        assert renewed != header
        assert (await initialize(session, server, renewed))[0] == 200
        # A late worker reporting the old header gets the new token without another refresh.
        assert await credentials.after_unauthorized(header) is True
        assert server.state.oauth.refreshes == 2
        # The brand-new token refused at once: renewing again would not help.
        assert await credentials.after_unauthorized(renewed) is False
        assert await credentials.after_unauthorized("OAuth whatever") is False


async def test_many_concurrent_callers_share_one_refresh(tmp_path: Path) -> None:
    async with oauth_simulator() as server:
        credentials = oauth2_credentials(server, tmp_path, "alice")
        headers: list[str] = []

        async def call() -> None:
            headers.append(await credentials.authorization("POST", server.url))

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(call)
        assert len(set(headers)) == 1
        assert server.state.oauth.token_requests == 1

        renewed: list[bool] = []

        async def after_401() -> None:
            renewed.append(await credentials.after_unauthorized(headers[0]))

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(after_401)
        assert renewed == [True] * 50
        assert server.state.oauth.token_requests == 2


async def test_a_second_object_on_the_same_file_uses_the_saved_token(tmp_path: Path) -> None:
    async with oauth_simulator() as server:
        first = oauth2_credentials(server, tmp_path, "alice")
        second = oauth2_credentials(server, tmp_path, "alice")
        header = await first.authorization("POST", server.url)
        assert await second.authorization("POST", server.url) == header
        assert (second.refreshes, second.adopted) == (0, 1)
        assert server.state.oauth.refreshes == 1


async def test_a_revoked_refresh_token_stops_the_account_for_good(tmp_path: Path) -> None:
    async with oauth_simulator() as server:
        credentials = oauth2_credentials(server, tmp_path, "alice")
        header = await credentials.authorization("POST", server.url)
        server.state.oauth.revoke("alice")
        with pytest.raises(RefreshTokenRevoked) as caught:
            await credentials.after_unauthorized(header)
        assert isinstance(caught.value, CredentialsError)
        assert caught.value.account == "alice"
        message = str(caught.value)
        assert "Re-authorize" in message
        assert "alice.token" in message
        assert not any(secret in message for secret in _secrets_of(tmp_path))
        requests = server.state.oauth.token_requests
        with pytest.raises(RefreshTokenRevoked):
            await credentials.authorization("POST", server.url)
        assert server.state.oauth.token_requests == requests  # the breaker is open
        assert "stopped" in repr(credentials)


async def test_an_unreachable_token_endpoint_is_a_clear_retryable_error(tmp_path: Path) -> None:
    async with oauth_simulator() as server:
        dead = "http://127.0.0.1:9/2/oauth2/token"  # discard port: nothing listens
        credentials = oauth2_credentials(server, tmp_path, "alice", token_endpoint=dead)
        with pytest.raises(TokenEndpointError, match="cannot reach") as caught:
            await credentials.authorization("POST", server.url)
        assert caught.value.retryable
        assert REFRESH["alice"] not in str(caught.value)
        assert (tmp_path / "alice.token").read_text().strip() == REFRESH["alice"]


async def test_a_refresh_token_from_the_environment_seeds_the_state_file(tmp_path: Path) -> None:
    async with oauth_simulator() as server:
        state_file = tmp_path / "alice.json"
        credentials = OAuth2RefreshingCredentials(
            account="alice",
            client=oauth2_client(server, "alice"),
            store=TokenStore(state_file, account="alice", seed=lambda: REFRESH["alice"]),
        )
        await credentials.authorization("POST", server.url)
        saved = stored(state_file)["refresh_token"]
        assert server.state.oauth.live_refresh_tokens("alice") == {saved}


async def test_a_state_file_in_a_missing_folder_fails_before_the_token_is_used_up(
    tmp_path: Path,
) -> None:
    async with oauth_simulator() as server:
        credentials = OAuth2RefreshingCredentials(
            account="alice",
            client=oauth2_client(server, "alice"),
            store=TokenStore(
                tmp_path / "missing" / "alice.json", account="alice", seed=lambda: REFRESH["alice"]
            ),
        )
        with pytest.raises(TokenStoreError, match="cannot be opened"):
            await credentials.authorization("POST", server.url)
        assert server.state.oauth.token_requests == 0


async def test_a_token_without_media_write_is_warned_about_and_refused(
    tmp_path: Path, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with oauth_simulator() as server:
        credentials = oauth2_credentials(server, tmp_path, "carol")
        with caplog.at_level(logging.WARNING, logger="batcher"):
            header = await credentials.authorization("POST", server.url)
        assert "lack media.write" in caplog.text
        status, body = await initialize(session, server, header)
        assert (status, body) == (
            403,
            {"title": "Forbidden", "type": "about:blank", "status": 403, "detail": "Forbidden"},
        )


async def test_nothing_shows_a_secret(tmp_path: Path) -> None:
    async with oauth_simulator() as server:
        credentials = oauth2_credentials(server, tmp_path, "bob")
        await credentials.authorization("POST", server.url)
        store = TokenStore(tmp_path / "bob.token", account="bob")
        shown = " ".join([repr(credentials), str(credentials), repr(store), repr(store.read())])
        for secret in (*ALL_SECRETS, *_secrets_of(tmp_path)):
            assert secret not in shown
        assert CLIENT_SECRET not in repr(oauth2_client(server, "bob"))


def _secrets_of(folder: Path) -> list[str]:
    """Every token now saved in ``folder``'s token files."""
    found: list[str] = []
    for path in folder.glob("*.token"):
        text = path.read_text()
        if text.startswith("{"):
            saved = stored(path)
            found += [saved["refresh_token"], saved["access_token"]]
        else:
            found.append(text.strip())
    return found


def test_seed_token_file_is_plain_text(tmp_path: Path) -> None:
    path = seed_token_file(tmp_path, "alice")
    assert path.read_text() == REFRESH["alice"] + "\n"
