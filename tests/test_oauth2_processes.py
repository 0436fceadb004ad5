"""Two processes refreshing the same account through one token file, at the same time."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import orjson
import pytest

from batcher.simulator.token_endpoint import TOKEN_PATH
from tests.oauth_world import PUBLIC_CLIENT, oauth_simulator, seed_token_file, stored

pytestmark = pytest.mark.anyio

LIFETIME_S = 1.0
RUN_S = 4.0

# Each process calls initialize in a loop for RUN_S, renewing ahead of expiry and once on a 401.
CHILD = """
import sys, time, anyio, aiohttp, orjson
from pathlib import Path
from batcher.oauth2 import OAuth2RefreshingCredentials, RefreshPolicy
from batcher.token_endpoint import OAuth2Client
from batcher.token_store import TokenStore

base_url, token_url, client_id, token_file, run_s = sys.argv[1:6]
body = orjson.dumps({"media_type": "image/png", "media_category": "tweet_image", "total_bytes": 9})

async def main():
    credentials = OAuth2RefreshingCredentials(
        account="alice",
        client=OAuth2Client(client_id=client_id, token_endpoint=token_url, timeout_s=5.0),
        store=TokenStore(Path(token_file), account="alice"),
        policy=RefreshPolicy(margin_fraction=0.3),
    )
    counts = {"ok": 0, "unauthorized": 0, "renewed_after_401": 0, "other": 0}
    deadline = time.monotonic() + float(run_s)
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            for attempt in (1, 2):
                header = await credentials.authorization("POST", base_url)
                headers = {"Authorization": header, "Content-Type": "application/json"}
                async with session.post(base_url, data=body, headers=headers) as answer:
                    status = answer.status
                if status == 401 and attempt == 1 and await credentials.after_unauthorized(header):
                    counts["renewed_after_401"] += 1
                    continue
                key = {200: "ok", 401: "unauthorized"}.get(status, "other")
                counts[key] += 1
                break
            await anyio.sleep(0.01)
    counts["refreshes"] = credentials.refreshes
    counts["adopted"] = credentials.adopted
    print(orjson.dumps(counts).decode())

anyio.run(main)
"""


async def test_two_processes_share_one_account_without_reusing_a_refresh_token(
    tmp_path: Path,
) -> None:
    async with oauth_simulator(access_token_lifetime_s=LIFETIME_S) as server:
        token_file = seed_token_file(tmp_path, "alice")
        argv = [
            sys.executable,
            "-c",
            CHILD,
            server.url + "/2/media/upload/initialize",
            server.url + TOKEN_PATH,
            PUBLIC_CLIENT,
            str(token_file),
            str(RUN_S),
        ]
        outputs: list[dict[str, int]] = []

        async def child() -> None:
            done = await anyio.run_process(argv, check=False)
            assert done.returncode == 0, done.stderr.decode()
            outputs.append(orjson.loads(done.stdout))

        with anyio.fail_after(RUN_S + 30):
            async with anyio.create_task_group() as group:
                group.start_soon(child)
                group.start_soon(child)

        oauth = server.state.oauth
        assert len(outputs) == 2
        for counts in outputs:
            assert counts["ok"] > 10
            assert counts["unauthorized"] == counts["other"] == 0
        assert oauth.reused_refresh_tokens == oauth.refused_refreshes == 0
        assert sum(c["refreshes"] for c in outputs) == oauth.refreshes
        assert oauth.refreshes <= RUN_S / (LIFETIME_S * 0.7) + 3  # one refresh per lifetime
        assert sum(c["adopted"] for c in outputs) > 0  # each used the other's token
        assert oauth.live_refresh_tokens("alice") == {stored(token_file)["refresh_token"]}
