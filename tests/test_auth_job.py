"""Whole jobs on refreshing and signed credentials: nothing leaks, long runs keep going."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from batcher.accounts import load_accounts as load_accounts_file
from batcher.api import ClientConfig
from batcher.auth import AccountSet, bearer_account
from batcher.runner import Job, RunConfig
from batcher.simulator import SimulatorServer
from tests.oauth_world import (
    ALL_SECRETS,
    APP_ONLY_TOKEN,
    CLIENT_SECRET,
    CONFIDENTIAL_CLIENT,
    OAUTH1,
    PUBLIC_CLIENT,
    oauth_simulator,
    seed_token_file,
    stored,
    token_url,
)

pytestmark = pytest.mark.anyio

ACCOUNTS = ("alice", "bob", "dave")  # public OAuth 2.0, confidential OAuth 2.0, OAuth 1.0a
ENV = {
    "BOB_CLIENT_SECRET": CLIENT_SECRET,
    "DAVE_KEY": OAUTH1.consumer_key,
    "DAVE_KEY_SECRET": OAUTH1.consumer_secret,
    "DAVE_TOKEN": OAUTH1.access_token,
    "DAVE_TOKEN_SECRET": OAUTH1.access_token_secret,
}


def accounts_toml(server: SimulatorServer, margin_fraction: float = 0.3) -> str:
    """An accounts file for the three accounts (token files next to it)."""
    return f"""
default = "alice"

[accounts.alice]
scheme = "oauth2"
client_id = "{PUBLIC_CLIENT}"
refresh_token_file = "alice.token"
token_endpoint = "{token_url(server)}"
refresh_margin_fraction = {margin_fraction}

[accounts.bob]
scheme = "oauth2"
client_id = "{CONFIDENTIAL_CLIENT}"
client_secret_env = "BOB_CLIENT_SECRET"
refresh_token_file = "bob.token"
token_endpoint = "{token_url(server)}"
refresh_margin_fraction = {margin_fraction}

[accounts.dave]
scheme = "oauth1"
consumer_key_env = "DAVE_KEY"
consumer_secret_env = "DAVE_KEY_SECRET"
access_token_env = "DAVE_TOKEN"
access_token_secret_env = "DAVE_TOKEN_SECRET"
"""


def load_accounts(path: Path) -> AccountSet:
    """The accounts file as ``batcher run --accounts`` loads it, with the test's environment."""
    return load_accounts_file(path, environ=ENV)


def write_world(folder: Path, server: SimulatorServer, rows: int) -> tuple[Path, Path]:
    """Token files, the accounts file and a manifest spreading ``rows`` over the accounts."""
    for user in ("alice", "bob"):
        seed_token_file(folder, user)
    accounts = folder / "accounts.toml"
    accounts.write_text(accounts_toml(server))
    manifest = folder / "manifest.csv"
    lines = ["key,media_type,total_bytes,media_category,account"]
    lines += [f"k{n},image/png,{1000 + n},tweet_image,{ACCOUNTS[n % 3]}" for n in range(rows)]
    manifest.write_text("\n".join(lines) + "\n")
    return accounts, manifest


def make_job(base_url: str, accounts: Path, manifest: Path, results: Path) -> Job:
    return Job(
        manifest=str(manifest),
        results_path=results,
        accounts=load_accounts(accounts),
        client_config=ClientConfig(base_url=base_url, max_in_flight=16, timeout_s=5.0),
        config=RunConfig(concurrency=16, backoff_base_s=0.01, backoff_cap_s=0.05),
    )


def read_results(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def assert_all_ok(results: Path, rows: int) -> None:
    records = read_results(results)
    assert len(records) == rows
    assert {r["status"] for r in records} == {"ok"}, [r for r in records if r["status"] != "ok"][:3]
    assert all(r.get("http_status") != 401 for r in records)


def assert_rotations_saved(server: SimulatorServer, folder: Path) -> None:
    oauth = server.state.oauth
    assert oauth.reused_refresh_tokens == 0
    for user in ("alice", "bob"):
        assert oauth.live_refresh_tokens(user) == {
            stored(folder / f"{user}.token")["refresh_token"]
        }


async def test_a_debug_logged_job_leaks_no_secret_anywhere(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from batcher.progress import status_line

    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async with oauth_simulator(access_token_lifetime_s=2) as server:
            accounts, manifest = write_world(tmp_path, server, 90)
            job = make_job(server.url, accounts, manifest, tmp_path / "results.jsonl")
            summary = await job.run()
            shown = [repr(job), repr(summary), str(summary), status_line(job)]
            loaded = load_accounts(accounts)
            shown += [repr(a.credentials) for a in (loaded.default, *loaded.others.values())]
            every_token = server.state.oauth.every_token()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    assert summary.ok == 90
    assert_all_ok(tmp_path / "results.jsonl", 90)
    out, err = capfd.readouterr()
    texts = {"stdout": out, "stderr": err, "shown": "\n".join(shown)}
    for path in tmp_path.iterdir():
        if path.is_file() and not path.name.endswith((".token", ".lock")):
            texts[path.name] = path.read_text(errors="replace")
    assert "refresh" in texts["debug.log"]  # debug logging really was on
    for secret in (*ALL_SECRETS, *every_token):
        for where, text in texts.items():
            assert secret not in text, f"a secret leaked into {where}"


# The second process: its own manifest and results, the same accounts file and token files.
CHILD = """
import sys, anyio
from pathlib import Path
from tests.test_auth_job import make_job

folder = Path(sys.argv[2])
results = folder / "second.jsonl"
job = make_job(sys.argv[1], folder / "accounts.toml", folder / "second.csv", results)
print(anyio.run(job.run).ok)
"""


@pytest.mark.slow
@pytest.mark.timeout(110)
async def test_a_long_run_refreshes_every_five_seconds_with_a_second_process_alongside(
    tmp_path: Path,
) -> None:
    rows = 3 * 40 * 11  # 40 per account per 5-second window: about 55 s
    async with oauth_simulator(access_token_lifetime_s=5, window_limit=40, window_secs=5) as server:
        accounts, manifest = write_world(tmp_path, server, rows)
        second = tmp_path / "second.csv"
        lines = ["key,media_type,total_bytes,media_category,account"]
        lines += [f"s{n},image/png,{2000 + n},tweet_image,alice" for n in range(60)]
        second.write_text("\n".join(lines) + "\n")
        job = make_job(server.url, accounts, manifest, tmp_path / "results.jsonl")
        argv = [sys.executable, "-c", CHILD, server.url, str(tmp_path)]

        async def second_process() -> None:
            await anyio.sleep(10)
            done = await anyio.run_process(argv, check=False, cwd=Path(__file__).parent.parent)
            assert done.returncode == 0, done.stderr.decode()[-2000:]
            assert done.stdout.decode().strip() == "60"

        async with anyio.create_task_group() as group:
            group.start_soon(second_process)
            summary = await job.run()
    assert summary.ok == rows
    assert_all_ok(tmp_path / "results.jsonl", rows)
    assert_all_ok(tmp_path / "second.jsonl", 60)
    assert_rotations_saved(server, tmp_path)
    assert server.state.oauth.refreshes >= 2 * 45 / 5


async def test_a_revoked_refresh_token_stops_its_account_and_leaves_its_rows(
    tmp_path: Path,
) -> None:
    async with oauth_simulator(access_token_lifetime_s=60) as server:
        server.state.oauth.revoke("alice")
        accounts, manifest = write_world(tmp_path, server, 60)
        job = make_job(server.url, accounts, manifest, tmp_path / "results.jsonl")
        summary = await job.run()
    records = read_results(tmp_path / "results.jsonl")
    assert summary.stopped_accounts == ("alice",)
    assert summary.exit_code == 4
    assert {r["account"] for r in records} == {"bob", "dave"}  # alice's rows: no line at all
    assert {r["status"] for r in records} == {"ok"}
    assert len(records) == 40


async def test_an_app_only_token_is_refused_with_a_message_saying_so(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "key,media_type,total_bytes\n" + "".join(f"k{n},image/png,9\n" for n in range(20))
    )
    async with oauth_simulator() as server:
        job = Job(
            manifest=str(manifest),
            results_path=tmp_path / "results.jsonl",
            accounts=AccountSet(default=bearer_account("app", APP_ONLY_TOKEN)),
            client_config=ClientConfig(base_url=server.url, max_in_flight=2),
            config=RunConfig(concurrency=2),
        )
        summary = await job.run()
    records = read_results(tmp_path / "results.jsonl")
    assert summary.stopped_accounts == ("app",)
    assert 5 <= len(records) <= 5 + 2  # the breaker, not twenty identical failures
    for record in records:
        assert record["http_status"] == 403
        assert "needs a user token" in record["error"]["detail"]
        assert APP_ONLY_TOKEN not in orjson.dumps(record).decode()
