"""The ``batcher`` command as a user runs it: a real subprocess, exit codes, clean stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest

from batcher.simulator import SimulatorConfig, SimulatorServer

pytestmark = pytest.mark.anyio

TOKEN = "cli-secret-token-123"


def batcher_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("X_", "BATCHER_"))}
    env.update(extra)
    return env


async def run_batcher(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "batcher", *args], env=env, check=False
        )


def write_manifest(path: Path, *, bad_rows: int = 0) -> Path:
    lines = ["key,media_type,total_bytes"] + [f"k{n},image/png,{100 + n}" for n in range(20)]
    lines += [f"bad{n},image/png,not-a-number" for n in range(bad_rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_a_clean_run_exits_0_with_stdout_empty(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv")
    async with SimulatorServer(SimulatorConfig(tokens=frozenset({TOKEN}))) as server:
        done = await run_batcher(
            "-v", "run", str(manifest), "-o", str(tmp_path / "r.jsonl"), "--base-url", server.url,
            env=batcher_env(X_ACCESS_TOKEN=TOKEN),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""
    assert b"20 ok, 0 failed, 0 invalid" in done.stderr
    assert TOKEN.encode() not in done.stderr
    assert len((tmp_path / "r.jsonl").read_bytes().splitlines()) == 20


async def test_base_url_from_the_environment_and_token_from_a_file(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", bad_rows=2)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    async with SimulatorServer(SimulatorConfig(tokens=frozenset({TOKEN}))) as server:
        done = await run_batcher(
            "run", str(manifest), "-o", str(tmp_path / "r.jsonl"), "--token-file", str(token_file),
            env=batcher_env(X_API_BASE_URL=server.url),
        )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    statuses = [
        orjson.loads(line)["status"] for line in (tmp_path / "r.jsonl").read_bytes().splitlines()
    ]
    assert statuses.count("ok") == 20
    assert statuses.count("invalid") == 2


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["run", "MANIFEST", "-o", "r.jsonl"], {}, b"no access token", id="no-token"),
        pytest.param(
            ["run", "missing.csv", "-o", "r.jsonl"],
            {"X_ACCESS_TOKEN": TOKEN},
            b"missing.csv",
            id="missing-manifest",
        ),
        pytest.param(
            ["run", "MANIFEST", "-o", "r.jsonl", "--concurrency", "0"],
            {"X_ACCESS_TOKEN": TOKEN},
            b"must be at least 1",
            id="bad-flag",
        ),
        pytest.param(
            ["run", "MANIFEST", "-o", "r.jsonl", "--token", TOKEN],
            {},
            b"unrecognized arguments",
            id="no-token-flag",
        ),
        pytest.param(
            ["run", "MANIFEST", "-o", "no-such-dir/r.jsonl"],
            {"X_ACCESS_TOKEN": TOKEN},
            b"cannot open results file",
            id="unwritable-results",
        ),
    ],
)
async def test_usage_and_config_errors_exit_2_in_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: bytes
) -> None:
    manifest = write_manifest(tmp_path / "m.csv")
    args = [str(manifest) if a == "MANIFEST" else a for a in args]
    args = [str(tmp_path / a) if a.endswith(".jsonl") else a for a in args]
    done = await run_batcher(*args, env=batcher_env(**env, X_API_BASE_URL="http://127.0.0.1:9"))
    assert done.returncode == 2
    assert message in done.stderr
    assert b"Traceback" not in done.stderr
    assert TOKEN.encode() not in done.stderr


async def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    done = await run_batcher(
        "demo", "--dir", str(tmp_path / "demo"), "--rows", "60", env=batcher_env()
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Results:" in done.stdout
    assert b"invalid" in done.stderr
    results = (tmp_path / "demo" / "results.jsonl").read_bytes()
    records = [orjson.loads(line) for line in results.splitlines()]
    assert sum(r["status"] == "invalid" for r in records) == 6
    assert sum(r["status"] == "ok" for r in records) == 61


async def test_accounts_file_routes_rows_by_their_account_column(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        'default = "alice"\n'
        '[accounts.alice]\ntoken_env = "ALICE_TOKEN"\n'
        '[accounts.bob]\ntoken_file = "bob.token"\n'
    )
    (tmp_path / "bob.token").write_text("bob-secret\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "key,media_type,total_bytes,account\n"
        "a1,image/png,10,alice\na2,image/png,11,\nb1,image/png,12,bob\nc1,image/png,13,carol\n"
    )
    tokens = frozenset({"alice-secret", "bob-secret"})
    async with SimulatorServer(SimulatorConfig(tokens=tokens)) as server:
        done = await run_batcher(
            "run", str(manifest), "-o", str(tmp_path / "r.jsonl"), "--accounts", str(accounts),
            "--base-url", server.url, env=batcher_env(ALICE_TOKEN="alice-secret"),
        )  # fmt: skip
        tokens_used = {issued.token for issued in server.issued.values()}
    assert done.returncode == 1, done.stderr.decode()  # carol is no configured account
    records = {
        record["key"]: record
        for record in map(orjson.loads, (tmp_path / "r.jsonl").read_bytes().splitlines())
    }
    assert {key: r["status"] for key, r in records.items()} == {
        "a1": "ok",
        "a2": "ok",
        "b1": "ok",
        "c1": "invalid",
    }
    assert records["c1"]["error"]["type"] == "unknown_account"
    assert tokens_used == tokens
    assert b"secret" not in done.stderr


async def test_validate_checks_offline_and_says_what_to_fix(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", bad_rows=2)
    done = await run_batcher("validate", str(manifest), env=batcher_env())
    assert done.returncode == 1
    assert b"22 rows, 20 valid, 2 invalid" in done.stdout
    assert b"bad_field" in done.stdout
    assert b"row 21 (bad0): total_bytes 'not-a-number'" in done.stdout
    clean = write_manifest(tmp_path / "clean.csv")
    assert (await run_batcher("validate", str(clean), env=batcher_env())).returncode == 0


async def test_simulate_serves_until_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "batcher", "simulate", "--port", "0", "--window-secs", "5"]
    env = batcher_env(BATCHER_SIM_TOKEN="sim-secret-token")
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        with anyio.fail_after(30):
            line = (await process.stdout.receive()).decode()
        assert "sim-secret-token" not in line  # the token is shown redacted
        url = line.split("listening on ", 1)[1].split()[0]
        body = {"media_type": "image/png", "total_bytes": 10, "media_category": "tweet_image"}
        headers = {"Authorization": "Bearer sim-secret-token"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/2/media/upload/initialize", json=body, headers=headers) as answer,
        ):
            assert answer.status == 200
            assert answer.headers["x-rate-limit-limit"] == "1875"
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await process.wait() == 0


async def blocked_on_fifo(pid: int) -> None:
    """Wait until ``pid`` sleeps opening a FIFO (so the interpreter has fully started)."""
    wchan = Path(f"/proc/{pid}/wchan")
    with anyio.fail_after(30):
        while "partner" not in wchan.read_text() and "fifo" not in wchan.read_text():
            await anyio.sleep(0.05)


async def test_ctrl_c_outside_a_run_exits_130_without_a_traceback(tmp_path: Path) -> None:
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)  # opening it blocks until a writer comes: the command waits there
    command = [sys.executable, "-m", "batcher", "report", str(fifo)]
    async with await anyio.open_process(command, env=batcher_env()) as process:
        await blocked_on_fifo(process.pid)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            code = await process.wait()
        assert process.stderr is not None
        stderr = await process.stderr.receive()
    assert code == 130
    assert b"batcher: interrupted" in stderr
    assert b"Traceback" not in stderr
