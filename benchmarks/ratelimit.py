"""How close batcher gets to the rate limits' physical minimum, against three common habits.

    python benchmarks/ratelimit.py                       # every variant, 1 and 4 accounts
    python benchmarks/ratelimit.py --variants plain --accounts 4 --phases 0.1
    python benchmarks/ratelimit.py --variants 5xx --accounts 4 --seeds 8   # 8 draws a cell

Each run starts a fresh simulator in a thread of this process (2-s windows of 50 calls,
20 ms ± 10 ms latency) and the client in a process of its own, as a real server would be apart
from its client: sharing one interpreter lock, each would slow the other's answers. The child
waits for a given phase of the server's window, then sends 500 rows with 32 in flight. Printed
per run: wall time, the theoretical minimum, efficiency = minimum / wall, and the 429s.

The minimum, exactly, for the requests each account had to have counted (its rows, plus the 5xx
answers it got within its windows' quota: the server counts those, and their rows need another
request): each account may send ``limit`` in the window it starts in (if a request can still
land in it) and ``limit`` per window after; the run ends when the last window opens plus the
round trips the requests of that window need at the given concurrency (one minimum latency
each). Accounts are counted one by one: 5xx answers do not fall evenly on them.

The baselines are small aiohttp clients with the same rows, concurrency and simulator:
``backoff`` (on a 429, capped exponential backoff with full jitter), ``sleep-reset`` (on a 429,
sleep until ``x-rate-limit-reset`` by the local clock, every worker on its own: the popular SDKs'
habit) and ``aiolimiter`` (``AsyncLimiter(limit, window)`` per account, sleep-reset on a 429).
5xx and transport errors are retried after 10 ms by every client.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import orjson
from aiolimiter import AsyncLimiter

from batcher.api import ClientConfig
from batcher.auth import AccountSet, bearer_account
from batcher.contract import INITIALIZE_PATH
from batcher.runner import Job, RunConfig
from batcher.simulator import Fault, FaultRates, SimulatorConfig, ThreadedSimulator
from batcher.simulator.faults import FaultPlan
from batcher.simulator.server import SimulatorServer
from batcher.simulator.windows import FixedWindows, WindowUsage

WINDOW_S = 2
LIMIT = 50
ROWS = 500
CONCURRENCY = 32
LATENCY_S = 0.01  # the simulator adds uniform(0, JITTER_S): 20 ms ± 10 ms
JITTER_S = 0.02
VARIANTS = {"plain": (0.0, 0.0), "5xx": (0.0, 0.05), "ahead": (0.3, 0.0), "behind": (-0.3, 0.0)}
CLIENTS = ("batcher", "backoff", "sleep-reset", "aiolimiter")
BODY = b'{"media_type":"image/png","total_bytes":1000,"media_category":"tweet_image"}'
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0
ERROR_BACKOFF_S = 0.01
MAX_TRIES = 200
CHILD_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One client's run: what it took and what it cost."""

    client: str
    wall_s: float
    minimum_s: float
    rate_limited: int
    ok: int

    @property
    def efficiency(self) -> float:
        """Minimum over wall time (1.0 is as fast as the limits allow)."""
        return self.minimum_s / self.wall_s


def minimum_s(*, start_server_s: float, requests: Sequence[int], concurrency: int) -> float:
    """The earliest a run can end, in seconds after its start (see the module docstring).

    ``requests``: the requests each account had to have counted.
    """
    lasts = [_last_window(start_server_s, n) for n in requests]
    last_open = max(opens for opens, _ in lasts)
    in_last = sum(count for opens, count in lasts if opens == last_open)
    rounds = math.ceil(in_last / concurrency)
    return last_open + rounds * LATENCY_S - start_server_s


def _last_window(start_server_s: float, requests: int) -> tuple[float, int]:
    """When one account's last window opens at the earliest, and how many requests it takes."""
    first_end = (math.floor(start_server_s / WINDOW_S) + 1) * WINDOW_S
    usable_first = first_end - start_server_s > LATENCY_S
    left = requests - (LIMIT if usable_first else 0)
    if left <= 0:
        return start_server_s, requests
    extra_windows = math.ceil(left / LIMIT)
    return first_end + (extra_windows - 1) * WINDOW_S, left - (extra_windows - 1) * LIMIT


class _Watch:
    """Counts the faults drawn for requests within their window's quota: each needs a retry."""

    def __init__(self) -> None:
        self.last_key = ""
        self.last_exceeded = False
        self.faults_within_quota: Counter[str] = Counter()


class _WatchedWindows(FixedWindows):
    __slots__ = ("watch",)

    def __init__(self, watch: _Watch, *, limit: int, window_secs: int) -> None:
        super().__init__(limit=limit, window_secs=window_secs)
        self.watch = watch

    def hit(self, key: str, now_s: float) -> WindowUsage:
        usage = super().hit(key, now_s)
        self.watch.last_key, self.watch.last_exceeded = key, usage.exceeded
        return usage


class _WatchedFaults(FaultPlan):
    __slots__ = ("watch",)

    def __init__(self, watch: _Watch, config: SimulatorConfig) -> None:
        super().__init__(config.faults, seed=config.seed)
        self.watch = watch

    def draw(self) -> Fault:
        fault = super().draw()
        # The handler draws right after counting the request, with no await in between.
        if fault is not Fault.NONE and not self.watch.last_exceeded:
            self.watch.faults_within_quota[self.watch.last_key] += 1
        return fault


def watch_faults(server: SimulatorServer) -> _Watch:
    """Install the counters of :class:`_Watch` in a running simulator (before any request)."""
    watch, config, state = _Watch(), server.config, server.state
    state.user_windows = _WatchedWindows(
        watch, limit=config.window_limit, window_secs=config.window_secs
    )
    state.faults = _WatchedFaults(watch, config)
    return watch


def _needed(server: SimulatorServer, watch: _Watch) -> Counter[str]:
    """Per token: the ids issued plus the faults drawn within quota."""
    needed = Counter(issued.token for issued in server.issued.values())
    needed.update(watch.faults_within_quota)
    return needed


def write_manifest(path: Path, accounts: int) -> None:
    """``ROWS`` path-less rows, the accounts taking turns."""
    lines = ["key,media_type,total_bytes,media_category,account"]
    lines += [f"r{i},image/png,1000,tweet_image,a{i % accounts}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def run_batcher(url: str, tokens: Sequence[str], workdir: Path) -> tuple[int, int]:
    """Run batcher's Job with the window gates; returns (ok rows, 429s)."""
    manifest = workdir / "manifest.csv"
    write_manifest(manifest, len(tokens))
    accounts = AccountSet(
        default=bearer_account("a0", tokens[0]),
        others={f"a{i}": bearer_account(f"a{i}", t) for i, t in enumerate(tokens) if i},
    )
    config = RunConfig(concurrency=CONCURRENCY, backoff_base_s=0.01, max_attempts=20)
    job = Job(
        manifest=str(manifest),
        results_path=workdir / f"results-{time.monotonic_ns()}.jsonl",
        accounts=accounts,
        client_config=ClientConfig(base_url=url, max_in_flight=CONCURRENCY),
        config=config,
    )
    summary = await job.run()
    return summary.ok, summary.rate_limited


def run_client(client: str, url: str, tokens: Sequence[str], workdir: Path) -> tuple[int, int]:
    """Run one client to completion; returns (ok rows, 429s)."""
    if client == "batcher":
        return anyio.run(run_batcher, url, tokens, workdir, backend_options={"use_uvloop": True})
    result = asyncio.run(
        run_baseline(
            client,
            url=url,
            tokens=tokens,
            rows=ROWS,
            concurrency=CONCURRENCY,
            limit=LIMIT,
            window_s=WINDOW_S,
        )
    )
    return result.ok, result.rate_limited


def wait_for_phase(phase_s: float, offset_s: float) -> None:
    """Sleep until the server's clock is ``phase_s`` into one of its windows."""
    server_now = time.time() + offset_s
    wait = (phase_s - server_now % WINDOW_S) % WINDOW_S
    time.sleep(wait if wait > 0.05 else wait + WINDOW_S)


def child_main(argv: Sequence[str]) -> None:
    """In the client's process: wait for the phase, run, print ``{started, wall_s, ok}``."""
    client, url, tokens, phase_s, offset_s, workdir = argv
    token_list = tokens.split(",")
    wait_for_phase(float(phase_s), float(offset_s))
    started = time.time()
    ok, _ = run_client(client, url, token_list, Path(workdir))
    wall_s = time.time() - started
    print(orjson.dumps({"started": started, "wall_s": wall_s, "ok": ok}).decode(), flush=True)


def run_child(
    client: str, url: str, tokens: Sequence[str], phase_s: float, offset_s: float, workdir: Path
) -> tuple[float, float, int]:
    """Run one client in its own process; (started, wall seconds, ok rows)."""
    argv = [sys.executable, "-m", "benchmarks.ratelimit", "--child", client, url]
    argv += [",".join(tokens), repr(phase_s), repr(offset_s), str(workdir)]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        argv, cwd=root, capture_output=True, timeout=CHILD_TIMEOUT_S, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{client} failed: {done.stderr.decode(errors='replace')[-800:]}")
    report = orjson.loads(done.stdout.strip().splitlines()[-1])
    return float(report["started"]), float(report["wall_s"]), int(report["ok"])


def one_run(
    client: str, variant: str, accounts: int, phase_s: float, workdir: Path, seed: int = 0
) -> Outcome:
    """A fresh simulator, one client (in a process of its own), one start phase.

    ``seed`` picks another draw of the simulator's latencies and faults (0: the default).
    """
    offset_s, fail_rate = VARIANTS[variant]
    tokens = [f"tok-{i}" for i in range(accounts)]
    config = SimulatorConfig(
        tokens=frozenset(tokens),
        window_secs=WINDOW_S,
        window_limit=LIMIT,
        latency_s=LATENCY_S,
        latency_jitter_s=JITTER_S,
        clock_offset_s=offset_s,
        faults=FaultRates(fail_5xx_rate=fail_rate),
        seed=int(phase_s * 1000) + 7919 * seed,
    )
    with ThreadedSimulator(config) as simulator:
        watch = simulator.call(watch_faults)
        started, wall, ok = run_child(client, simulator.url, tokens, phase_s, offset_s, workdir)
        stats = simulator.stats()
        needed = simulator.call(lambda server: _needed(server, watch))
    minimum = minimum_s(
        start_server_s=started + offset_s,
        requests=[needed[token] for token in tokens],
        concurrency=CONCURRENCY,
    )
    return Outcome(
        client=client, wall_s=wall, minimum_s=minimum, rate_limited=stats.rate_limited, ok=ok
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the table and print it."""
    args_in = sys.argv[1:] if argv is None else list(argv)
    if args_in[:1] == ["--child"]:
        child_main(args_in[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--accounts", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--phases", nargs="+", type=float, default=[0.1, 0.8, 1.5])
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=CLIENTS)
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="runs per cell, each with another draw of latencies and faults; with more than "
        "one, a summary of median efficiency and most 429s follows",
    )
    args = parser.parse_args(args_in)
    print(
        f"windows {WINDOW_S} s × {LIMIT} calls, {ROWS} rows, {CONCURRENCY} in flight, "
        f"latency {LATENCY_S * 1000:.0f}–{(LATENCY_S + JITTER_S) * 1000:.0f} ms"
    )
    print(
        f"{'variant':8} {'acc':>3} {'phase':>5} {'seed':>4} {'client':12} {'wall s':>7} "
        f"{'min s':>7} {'eff':>5} {'429s':>5} {'ok':>4}"
    )
    cells: dict[tuple[str, int, float, str], list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="batcher-bench-") as tmp:
        for variant in args.variants:
            for accounts in args.accounts:
                for phase in args.phases:
                    for seed in range(args.seeds):
                        for client in args.clients:
                            o = one_run(client, variant, accounts, phase, Path(tmp), seed)
                            cells.setdefault((variant, accounts, phase, client), []).append(o)
                            print(
                                f"{variant:8} {accounts:>3} {phase:>5.2f} {seed:>4} {client:12} "
                                f"{o.wall_s:>7.3f} {o.minimum_s:>7.3f} {o.efficiency:>5.3f} "
                                f"{o.rate_limited:>5} {o.ok:>4}",
                                flush=True,
                            )
    if args.seeds > 1:
        print(summary(cells))


def summary(cells: dict[tuple[str, int, float, str], list[Outcome]]) -> str:
    """Per cell and client over its seeds: median and lowest efficiency, most 429s in a run."""
    lines = [
        f"{'variant':8} {'acc':>3} {'phase':>5} {'client':12} {'runs':>4} {'median eff':>10} "
        f"{'lowest':>6} {'most 429s':>9}"
    ]
    for (variant, accounts, phase, client), outcomes in cells.items():
        efficiencies = [o.efficiency for o in outcomes]
        lines.append(
            f"{variant:8} {accounts:>3} {phase:>5.2f} {client:12} {len(outcomes):>4} "
            f"{statistics.median(efficiencies):>10.3f} {min(efficiencies):>6.3f} "
            f"{max(o.rate_limited for o in outcomes):>9}"
        )
    return "\n".join(lines)


# The baselines ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineResult:
    """What one baseline run did."""

    ok: int
    rate_limited: int
    other_errors: int


@dataclass(slots=True)
class _Tally:
    ok: int = 0
    rate_limited: int = 0
    other_errors: int = 0


async def run_baseline(
    kind: str,
    *,
    url: str,
    tokens: Sequence[str],
    rows: int,
    concurrency: int,
    limit: int,
    window_s: float,
) -> BaselineResult:
    """Send ``rows`` initialize calls spread evenly over ``tokens``."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for row in range(rows):
        queue.put_nowait(tokens[row % len(tokens)])
    limiters = {token: AsyncLimiter(limit, window_s) for token in tokens}
    tally = _Tally()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [
            _worker(kind, session, url + INITIALIZE_PATH, queue, limiters, tally)
            for _ in range(concurrency)
        ]
        await asyncio.gather(*workers)
    return BaselineResult(
        ok=tally.ok, rate_limited=tally.rate_limited, other_errors=tally.other_errors
    )


async def _worker(
    kind: str,
    session: aiohttp.ClientSession,
    url: str,
    queue: asyncio.Queue[str],
    limiters: dict[str, AsyncLimiter],
    tally: _Tally,
) -> None:
    while not queue.empty():
        token = queue.get_nowait()
        await _send_row(kind, session, url, token, limiters[token], tally)


async def _send_row(
    kind: str,
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    limiter: AsyncLimiter,
    tally: _Tally,
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limited = 0
    for _ in range(MAX_TRIES):
        if kind == "aiolimiter":
            await limiter.acquire()
        try:
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                status, reset = response.status, response.headers.get("x-rate-limit-reset")
        except aiohttp.ClientError:
            tally.other_errors += 1
            await asyncio.sleep(ERROR_BACKOFF_S)
            continue
        if status == 200:
            tally.ok += 1
            return
        if status != 429:
            tally.other_errors += 1
            await asyncio.sleep(ERROR_BACKOFF_S)
            continue
        tally.rate_limited += 1
        limited += 1
        await asyncio.sleep(_wait_after_429(kind, limited, reset))


def _wait_after_429(kind: str, limited: int, reset: str | None) -> float:
    if kind == "backoff" or reset is None:
        return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (limited - 1)))
    return max(0.0, float(reset) - time.time())


if __name__ == "__main__":
    main()
