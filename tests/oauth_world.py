"""A small OAuth world for the auth tests: apps, users, their secrets, and builders.

Every secret is a distinctive string, so a test can grep any output for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from batcher import contract
from batcher.oauth1 import OAuth1Credentials
from batcher.oauth2 import OAuth2RefreshingCredentials, RefreshPolicy
from batcher.simulator import SimulatorConfig, SimulatorServer
from batcher.simulator.oauth import OAuth1User, OAuth2App, OAuth2Grant, OAuthConfig
from batcher.simulator.state import Clock
from batcher.simulator.token_endpoint import TOKEN_PATH
from batcher.token_endpoint import OAuth2Client
from batcher.token_store import TokenStore

PUBLIC_CLIENT = "public-client-id"
CONFIDENTIAL_CLIENT = "confidential-client-id"
CLIENT_SECRET = "SECRET-client-8f3a1c"
REFRESH = {
    "alice": "SECRET-refresh-alice-0c9d",
    "bob": "SECRET-refresh-bob-77e2",
    "carol": "SECRET-refresh-carol-5b10",
    "dave": "SECRET-refresh-dave-4411",
}
CONFIDENTIAL_USERS = frozenset({"bob"})
NO_MEDIA_WRITE_USERS = frozenset({"carol"})
APP_ONLY_TOKEN = "SECRET-app-only-bearer-91ab"
STATIC_NO_SCOPE_TOKEN = "SECRET-static-no-media-write-3e3e"
OAUTH1 = OAuth1Credentials(
    consumer_key="SECRET-consumer-key-a1",
    consumer_secret="SECRET-consumer-secret-b2",
    access_token="1234567890-SECRET-access-c3",
    access_token_secret="SECRET-access-secret-d4",
)
READ_ONLY_OAUTH1 = OAuth1Credentials(
    consumer_key="SECRET-ro-consumer-key-e5",
    consumer_secret="SECRET-ro-consumer-secret-f6",
    access_token="55-SECRET-ro-access-g7",
    access_token_secret="SECRET-ro-access-secret-h8",
)
ALL_SECRETS = (
    CLIENT_SECRET,
    APP_ONLY_TOKEN,
    *REFRESH.values(),
    OAUTH1.consumer_secret,
    OAUTH1.access_token,
    OAUTH1.access_token_secret,
    OAUTH1.consumer_key,
)
VALID_BODY = {"media_type": "image/png", "media_category": "tweet_image", "total_bytes": 1024}


def oauth_config(**changes: Any) -> OAuthConfig:
    """Two apps, four OAuth 2.0 users (carol without media.write), dave also on OAuth 1.0a."""
    grants = tuple(
        OAuth2Grant(
            user=user,
            client_id=CONFIDENTIAL_CLIENT if user in CONFIDENTIAL_USERS else PUBLIC_CLIENT,
            refresh_token=token,
            scopes=frozenset({"offline.access", "tweet.read"})
            if user in NO_MEDIA_WRITE_USERS
            else frozenset({"offline.access", "media.write", "tweet.read"}),
        )
        for user, token in REFRESH.items()
    )
    settings: dict[str, Any] = {
        "apps": (
            OAuth2App(client_id=PUBLIC_CLIENT),
            OAuth2App(client_id=CONFIDENTIAL_CLIENT, client_secret=CLIENT_SECRET),
        ),
        "grants": grants,
        "oauth1_users": (
            _oauth1_user("dave", OAUTH1, read_only=False),
            _oauth1_user("erin", READ_ONLY_OAUTH1, read_only=True),
        ),
        "app_only_tokens": frozenset({APP_ONLY_TOKEN}),
        "no_media_write_tokens": frozenset({STATIC_NO_SCOPE_TOKEN}),
        **changes,
    }
    return OAuthConfig(**settings)


def _oauth1_user(user: str, credentials: OAuth1Credentials, *, read_only: bool) -> OAuth1User:
    return OAuth1User(
        user=user,
        consumer_key=credentials.consumer_key,
        consumer_secret=credentials.consumer_secret,
        access_token=credentials.access_token,
        access_token_secret=credentials.access_token_secret,
        read_only=read_only,
    )


@asynccontextmanager
async def oauth_simulator(
    *,
    clock: Clock = time.time,
    window_limit: int = 1_000_000,
    window_secs: int = 900,
    **oauth: Any,
) -> AsyncIterator[SimulatorServer]:
    """A simulator on 127.0.0.1:0 with :func:`oauth_config` (and ``oauth`` changes to it)."""
    config = SimulatorConfig(
        tokens=frozenset({"static-user-token"}),
        window_limit=window_limit,
        window_secs=window_secs,
        oauth=oauth_config(**oauth),
    )
    async with SimulatorServer(config, clock=clock) as server:
        yield server


def token_url(server: SimulatorServer) -> str:
    """The simulator's token endpoint."""
    return server.url + TOKEN_PATH


def oauth2_client(server: SimulatorServer, user: str, **changes: Any) -> OAuth2Client:
    """The client ``user`` authorized, pointed at the simulator's token endpoint."""
    confidential = user in CONFIDENTIAL_USERS
    settings: dict[str, Any] = {
        "client_id": CONFIDENTIAL_CLIENT if confidential else PUBLIC_CLIENT,
        "client_secret": CLIENT_SECRET if confidential else None,
        "token_endpoint": token_url(server),
        "timeout_s": 5.0,
        "backoff_s": 0.01,
        **changes,
    }
    return OAuth2Client(**settings)


def seed_token_file(folder: Path, user: str) -> Path:
    """``folder/<user>.token`` holding the user's first refresh token, as a user saves it."""
    path = folder / f"{user}.token"
    if not path.exists():
        path.write_text(REFRESH[user] + "\n")
        path.chmod(0o644)
    return path


def oauth2_credentials(
    server: SimulatorServer,
    folder: Path,
    user: str,
    *,
    policy: RefreshPolicy | None = None,
    clock: Callable[[], float] = time.time,
    **client: Any,
) -> OAuth2RefreshingCredentials:
    """Refreshing credentials for ``user`` whose token file lives in ``folder``."""
    path = seed_token_file(folder, user)
    return OAuth2RefreshingCredentials(
        account=user,
        client=oauth2_client(server, user, **client),
        store=TokenStore(path, account=user),
        policy=policy,
        clock=clock,
    )


def stored(path: Path) -> dict[str, Any]:
    """The token file batcher wrote, parsed."""
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


async def initialize(
    session: aiohttp.ClientSession,
    server: SimulatorServer,
    authorization: str,
    *,
    query: str = "",
) -> tuple[int, dict[str, Any]]:
    """POST one valid initialize body with ``authorization``: status and parsed body."""
    url = server.url + contract.INITIALIZE_PATH + query
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    async with session.post(url, data=orjson.dumps(VALID_BODY), headers=headers) as answer:
        return answer.status, orjson.loads(await answer.read())
