"""Stopping a real ``batcher run`` process: signals, --max-duration, a full disk.

The simulator runs in the test's event loop; the run is a subprocess, so signals and exit
codes are the real ones.
"""

from __future__ import annotations

import resource
import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from batcher.simulator import FaultRates, SimulatorServer
from tests.helpers import (
    TOKEN,
    batcher_command,
    cli_env,
    latest_by_key,
    metadata_csv,
    read_results,
    serving,
)

pytestmark = pytest.mark.anyio

EXIT_STOPPED = 3
EXIT_RESULTS_IO = 5


def run_args(server: SimulatorServer, manifest: Path, results: Path, *extra: str) -> list[str]:
    return batcher_command(
        "run", str(manifest), "-o", str(results), "--base-url", server.url, "--no-progress",
        "--concurrency", "8", *extra,
    )  # fmt: skip


async def wait_for_lines(results: Path, count: int, process: Process) -> None:
    with anyio.fail_after(30):
        while not results.exists() or len(results.read_bytes().splitlines()) < count:
            assert process.returncode is None, "the run ended before it could be interrupted"
            await anyio.sleep(0.02)


async def finish(process: Process) -> tuple[int, str]:
    with anyio.fail_after(30):
        assert process.stderr is not None
        stderr = b"".join([chunk async for chunk in process.stderr])
        code = await process.wait()
    return code, stderr.decode()


async def test_sigterm_stops_softly_and_the_next_run_resumes(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 1500)
    results = tmp_path / "r.jsonl"
    async with serving(latency_s=0.02) as server:
        process = await anyio.open_process(
            run_args(server, manifest, results), env=cli_env(X_ACCESS_TOKEN=TOKEN)
        )
        await wait_for_lines(results, 50, process)
        process.send_signal(signal.SIGTERM)
        code, stderr = await finish(process)
        assert code == EXIT_STOPPED, stderr
        assert "stopped early (interrupted by SIGTERM)" in stderr
        assert "Traceback" not in stderr
        written = read_results(results)  # every line whole
        assert 50 <= len(written) < 1500
        resumed = await anyio.run_process(
            run_args(server, manifest, results), env=cli_env(X_ACCESS_TOKEN=TOKEN), check=False
        )
        assert resumed.returncode == 0, resumed.stderr.decode()
    latest = latest_by_key(read_results(results))
    assert len(latest) == 1500
    assert {r["status"] for r in latest.values()} == {"ok"}


async def test_a_second_ctrl_c_cancels_hanging_requests_at_once(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 200)
    results = tmp_path / "r.jsonl"
    # The latency keeps the run going until the hang is switched on: without it, a fast
    # machine finished all 200 rows before the test looked (a flaky failure).
    async with serving(hang_s=600, latency_s=0.02) as server:
        process = await anyio.open_process(
            run_args(server, manifest, results, "--grace", "120s"),
            env=cli_env(X_ACCESS_TOKEN=TOKEN),
        )
        await wait_for_lines(results, 20, process)
        server.set_faults(FaultRates(hang_rate=1.0))  # every request from now on hangs
        await anyio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        await anyio.sleep(0.3)
        assert process.returncode is None  # still waiting for the hanging requests (grace)
        process.send_signal(signal.SIGINT)
        code, stderr = await finish(process)  # well before the 120 s grace period
    assert code == EXIT_STOPPED, stderr
    assert "cancelling requests in flight" in stderr
    assert len(read_results(results)) >= 20


async def test_max_duration_ends_the_run_softly(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 3000)
    results = tmp_path / "r.jsonl"
    async with serving(latency_s=0.05) as server:
        done = await anyio.run_process(
            run_args(server, manifest, results, "--max-duration", "1s"),
            env=cli_env(X_ACCESS_TOKEN=TOKEN),
            check=False,
        )
    assert done.returncode == EXIT_STOPPED, done.stderr.decode()
    assert b"--max-duration of 1 s reached" in done.stderr
    assert 0 < len(read_results(results)) < 3000


def limit_file_size() -> None:
    """In the child: files may not grow past 4 KiB, as if the disk were full."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


async def test_a_full_disk_stops_the_run_with_whole_lines_only(tmp_path: Path) -> None:
    manifest = metadata_csv(tmp_path / "m.csv", 200)
    results = tmp_path / "r.jsonl"
    async with serving() as server:
        done = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                run_args(server, manifest, results),
                env=cli_env(X_ACCESS_TOKEN=TOKEN),
                capture_output=True,
                preexec_fn=limit_file_size,
                timeout=60,
                check=False,
            ),
            abandon_on_cancel=True,
        )
        stderr = done.stderr.decode()
        assert done.returncode == EXIT_RESULTS_IO, stderr
        assert "cannot write results file" in stderr
        assert "run the same command again to resume" in stderr
        assert "Traceback" not in stderr
        data = results.read_bytes()
        assert data.endswith(b"\n")
        assert 0 < len(read_results(results)) < 200
        resumed = await anyio.run_process(
            run_args(server, manifest, results), env=cli_env(X_ACCESS_TOKEN=TOKEN), check=False
        )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert len(latest_by_key(read_results(results))) == 200
