"""The X API simulator, over real HTTP on 127.0.0.1:0 (aiohttp client, anyio on asyncio)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

import batcher.simulator
from batcher import contract
from batcher.simulator import (
    DEFAULT_TOKEN,
    Fault,
    FaultRates,
    SimulatorConfig,
    SimulatorServer,
    redact,
    tokens_from_env,
)
from batcher.simulator.faults import FaultPlan
from tests.helpers import FakeClock

pytestmark = pytest.mark.anyio

TOKEN = "test-token"
OTHER_TOKEN = "other-token"
URL_PATH = contract.INITIALIZE_PATH
VALID: dict[str, object] = {
    "media_type": "image/png",
    "media_category": "tweet_image",
    "total_bytes": 1024,
}
LIMIT_HEADERS = (
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "x-app-limit-24hour-limit",
    "x-app-limit-24hour-remaining",
    "x-app-limit-24hour-reset",
)

MEDIA_ID = re.compile(r"^[0-9]{19}$")


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read completely."""

    status: int
    headers: Mapping[str, str]
    content_type: str
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def header_int(self, name: str) -> int:
        return int(self.headers[name])


def config(**changes: Any) -> SimulatorConfig:
    return SimulatorConfig(tokens=frozenset({TOKEN, OTHER_TOKEN}), **changes)


@asynccontextmanager
async def serve(cfg: SimulatorConfig, **kwargs: Any) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(cfg, **kwargs) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    server: SimulatorServer,
    body: object = VALID,
    *,
    token: str | None = TOKEN,
    raw: bytes | None = None,
    content_type: str = "application/json",
    authorization: str | None = None,
) -> Answer:
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = orjson.dumps(body) if raw is None else raw
    async with session.post(server.url + URL_PATH, data=data, headers=headers) as response:
        return Answer(
            status=response.status,
            headers=dict(response.headers),
            content_type=response.content_type,
            body=await response.read(),
        )


# --- success -------------------------------------------------------------------------------

CATEGORY_CASES = [
    ("tweet_image", "image/jpeg", "3", contract.EXPIRES_AFTER_SECS_DEFAULT),
    ("dm_image", "image/webp", "3", contract.EXPIRES_AFTER_SECS_DEFAULT),
    ("tweet_gif", "image/gif", "16", contract.EXPIRES_AFTER_SECS_DEFAULT),
    ("dm_gif", "image/gif", "16", contract.EXPIRES_AFTER_SECS_DEFAULT),
    ("tweet_video", "video/mp4", "7", contract.EXPIRES_AFTER_SECS_DEFAULT),
    ("dm_video", "video/quicktime", "7", contract.EXPIRES_AFTER_SECS_DEFAULT),
    ("amplify_video", "video/mp4", "7", contract.EXPIRES_AFTER_SECS_AMPLIFY),
    ("subtitles", "text/srt", "18", contract.EXPIRES_AFTER_SECS_DEFAULT),
]


def test_category_cases_cover_the_contract() -> None:
    assert {case[0] for case in CATEGORY_CASES} == contract.MEDIA_CATEGORIES


@pytest.mark.parametrize(
    ("category", "media_type", "prefix", "expires"),
    [pytest.param(*case, id=case[0]) for case in CATEGORY_CASES],
)
async def test_valid_body_of_every_category_is_initialized(
    simulator: SimulatorServer,
    session: aiohttp.ClientSession,
    category: str,
    media_type: str,
    prefix: str,
    expires: int,
) -> None:
    body = {"media_type": media_type, "media_category": category, "total_bytes": 10}
    answer = await post(session, simulator, body)
    assert answer.status == 200
    assert answer.content_type == "application/json"
    data = answer.json()["data"]
    assert MEDIA_ID.fullmatch(data["id"])
    assert data["media_key"] == f"{prefix}_{data['id']}"
    assert data["expires_after_secs"] == expires
    assert simulator.issued[data["id"]] == (TOKEN, body)


@pytest.mark.parametrize(
    ("changes", "prefix"),
    [
        pytest.param({"total_bytes": contract.TOTAL_BYTES_MIN}, "3", id="total-bytes-min"),
        pytest.param({"total_bytes": contract.TOTAL_BYTES_MAX}, "3", id="total-bytes-max"),
        pytest.param({"additional_owners": []}, "3", id="owners-empty"),
        pytest.param({"additional_owners": ["1", "9" * 19]}, "3", id="owners-1-and-19-digits"),
        pytest.param({"shared": True}, "3", id="shared-true"),
        pytest.param({"shared": False}, "3", id="shared-false"),
        pytest.param({"media_category": None}, "3", id="no-category-image"),
        pytest.param({"media_category": None, "media_type": "image/gif"}, "16", id="no-cat-gif"),
        pytest.param({"media_category": None, "media_type": "video/webm"}, "7", id="no-cat-video"),
    ],
)
async def test_optional_fields_and_bounds_are_accepted(
    simulator: SimulatorServer,
    session: aiohttp.ClientSession,
    changes: dict[str, object],
    prefix: str,
) -> None:
    body = {k: v for k, v in (VALID | changes).items() if v is not None}
    answer = await post(session, simulator, body)
    assert answer.status == 200, answer.body
    assert answer.json()["data"]["media_key"].startswith(prefix + "_")


# --- invalid requests ----------------------------------------------------------------------

INVALID_CASES = [
    pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    pytest.param({"media_type": "image/svg+xml"}, "media_type", id="media-type-not-in-enum"),
    pytest.param({"media_type": "IMAGE/PNG"}, "media_type", id="media-type-case"),
    pytest.param({"media_type": 5}, "media_type", id="media-type-not-string"),
    pytest.param({"media_category": "story"}, "media_category", id="category-not-in-enum"),
    pytest.param({"media_category": None}, "media_category", id="category-null"),
    pytest.param({"total_bytes": True}, "total_bytes", id="total-bytes-bool"),
    pytest.param({"total_bytes": 10.0}, "total_bytes", id="total-bytes-float"),
    pytest.param({"total_bytes": "10"}, "total_bytes", id="total-bytes-string"),
    pytest.param({"total_bytes": -1}, "total_bytes", id="total-bytes-below-min"),
    pytest.param(
        {"total_bytes": contract.TOTAL_BYTES_MAX + 1}, "total_bytes", id="total-bytes-above-max"
    ),
    pytest.param({"additional_owners": "123"}, "additional_owners", id="owners-not-array"),
    pytest.param({"additional_owners": [123]}, "additional_owners", id="owner-not-string"),
    pytest.param({"additional_owners": ["12a"]}, "additional_owners", id="owner-not-digits"),
    pytest.param({"additional_owners": [""]}, "additional_owners", id="owner-empty"),
    pytest.param({"additional_owners": ["1" * 20]}, "additional_owners", id="owner-20-digits"),
    pytest.param({"additional_owners": ["12\n"]}, "additional_owners", id="owner-newline"),
    pytest.param({"shared": "yes"}, "shared", id="shared-not-bool"),
    pytest.param({"shared": 1}, "shared", id="shared-int"),
    pytest.param({"media_type": ...}, "media_type", id="media-type-missing"),
    pytest.param({"total_bytes": ...}, "total_bytes", id="total-bytes-missing"),
]


@pytest.mark.parametrize(("changes", "field"), INVALID_CASES)
async def test_each_violation_is_a_400_naming_the_field(
    simulator: SimulatorServer,
    session: aiohttp.ClientSession,
    changes: dict[str, object],
    field: str,
) -> None:
    body = {k: v for k, v in (VALID | changes).items() if v is not ...}
    answer = await post(session, simulator, body)
    assert_invalid_request(answer, field)
    assert simulator.issued == {}


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        pytest.param(b'{"media_type": ', "application/json", id="not-json"),
        pytest.param(b"", "application/json", id="empty"),
        pytest.param(b"[1, 2]", "application/json", id="array"),
        pytest.param(b'"text"', "application/json", id="string"),
        pytest.param(orjson.dumps(VALID), "text/plain", id="wrong-content-type"),
        pytest.param(orjson.dumps(VALID), "application/x-www-form-urlencoded", id="form"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(
    simulator: SimulatorServer, session: aiohttp.ClientSession, raw: bytes, content_type: str
) -> None:
    answer = await post(session, simulator, raw=raw, content_type=content_type)
    assert_invalid_request(answer, "body")


async def test_every_violation_of_a_body_is_reported(
    simulator: SimulatorServer, session: aiohttp.ClientSession
) -> None:
    body = {"media_type": "x", "total_bytes": -5, "shared": "no"}
    answer = await post(session, simulator, body)
    named = [next(iter(error["parameters"])) for error in answer.json()["errors"]]
    assert named == ["media_type", "total_bytes", "shared"]


def assert_invalid_request(answer: Answer, field: str) -> None:
    assert answer.status == 400
    assert answer.content_type == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == contract.INVALID_REQUEST_TYPE
    assert problem["title"] == "Invalid Request"
    assert problem["status"] == 400
    assert problem["detail"] == "One or more parameters to your request was invalid."
    assert problem["parameter"] == field
    first = problem["errors"][0]
    assert list(first["parameters"]) == [field]
    assert field in first["message"]


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer not-a-token", id="unknown-token"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param(f"Basic {TOKEN}", id="wrong-scheme"),
        pytest.param(f"Bearer {TOKEN} extra", id="trailing-garbage"),
    ],
)
async def test_unauthenticated_is_a_401_that_counts_nothing(
    simulator: SimulatorServer, session: aiohttp.ClientSession, authorization: str | None
) -> None:
    simulator.script([Fault.STATUS_503])  # a 401 must not use up a scripted fault
    answer = await post(session, simulator, token=None, authorization=authorization)
    assert answer.status == 401
    assert answer.content_type == "application/problem+json"
    assert answer.json() == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    assert not set(LIMIT_HEADERS) & {name.lower() for name in answer.headers}
    assert simulator.state.faults.scripted == 1
    assert simulator.stats().unauthorized == 1


async def test_the_bearer_scheme_is_case_insensitive(
    simulator: SimulatorServer, session: aiohttp.ClientSession
) -> None:
    answer = await post(session, simulator, token=None, authorization=f"bearer {TOKEN}")
    assert answer.status == 200


# --- rate limits ---------------------------------------------------------------------------

FAULT_ANSWERS = [
    Fault.NONE,
    Fault.STATUS_429,
    Fault.STATUS_500,
    Fault.STATUS_502,
    Fault.STATUS_503,
    Fault.STATUS_504,
    Fault.GARBAGE,
    Fault.TRUNCATED,
    Fault.NO_ID,
]


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.value) for f in FAULT_ANSWERS])
async def test_every_answer_to_an_authenticated_request_has_the_limit_headers(
    session: aiohttp.ClientSession, fault: Fault
) -> None:
    clock = FakeClock(1_800_000_100.5)
    async with serve(config(window_limit=10, app_daily_limit=100), clock=clock) as server:
        server.script([fault])
        answer = await post(session, server)
        assert answer.status in {200, 429, 500, 502, 503, 504}
        expected_remaining = 0 if fault is Fault.STATUS_429 else 9
        assert answer.header_int("x-rate-limit-limit") == 10
        assert answer.header_int("x-rate-limit-remaining") == expected_remaining
        assert answer.header_int("x-rate-limit-reset") == 1_800_000_900
        assert answer.header_int("x-app-limit-24hour-limit") == 100
        assert answer.header_int("x-app-limit-24hour-remaining") == 99
        assert answer.header_int("x-app-limit-24hour-reset") == 1_800_057_600
        assert parsedate_to_datetime(answer.headers["Date"]).timestamp() == 1_800_000_100


async def test_window_counts_every_request_and_rolls_over(session: aiohttp.ClientSession) -> None:
    clock = FakeClock(1_800_000_000.0)
    async with serve(config(window_limit=3, window_secs=60), clock=clock) as server:
        statuses = []
        for body in (VALID, {"total_bytes": -1}, VALID, VALID, VALID):
            answer = await post(session, server, body)
            statuses.append((answer.status, answer.header_int("x-rate-limit-remaining")))
        assert statuses == [(200, 2), (400, 1), (200, 0), (429, 0), (429, 0)]
        assert answer.json() == {
            "title": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
            "detail": "Too Many Requests",
        }
        assert answer.header_int("x-rate-limit-reset") == 1_800_000_060
        clock.now = 1_800_000_060.0
        answer = await post(session, server)
        assert (answer.status, answer.header_int("x-rate-limit-remaining")) == (200, 2)
        assert answer.header_int("x-rate-limit-reset") == 1_800_000_120
        assert server.stats().rate_limited == 2


async def test_windows_are_per_token(session: aiohttp.ClientSession) -> None:
    async with serve(config(window_limit=1), clock=FakeClock(1_800_000_000.0)) as server:
        assert (await post(session, server, token=TOKEN)).status == 200
        assert (await post(session, server, token=TOKEN)).status == 429
        other = await post(session, server, token=OTHER_TOKEN)
        assert (other.status, other.header_int("x-rate-limit-remaining")) == (200, 0)


async def test_windows_follow_the_real_clock(session: aiohttp.ClientSession) -> None:
    async with serve(config(window_limit=3, window_secs=1)) as server:
        await anyio.sleep(1.0 - time.time() % 1.0 + 0.01)  # start at the top of a second
        answers = [await post(session, server) for _ in range(4)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        reset = answers[-1].header_int("x-rate-limit-reset")
        assert reset == int(time.time()) + 1
        await anyio.sleep(reset - time.time() + 0.01)
        answer = await post(session, server)
        assert (answer.status, answer.header_int("x-rate-limit-remaining")) == (200, 2)


async def test_app_daily_cap_spans_tokens_and_resets_at_midnight(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock(1_800_000_000.0)
    async with serve(config(app_daily_limit=2), clock=clock) as server:
        assert (await post(session, server, token=TOKEN)).status == 200
        assert (await post(session, server, token=OTHER_TOKEN)).status == 200
        capped = await post(session, server, token=OTHER_TOKEN)
        assert capped.status == 429
        assert capped.json()["type"] == contract.PROBLEM_TYPE_PREFIX + "usage-capped"
        assert capped.header_int("x-app-limit-24hour-remaining") == 0
        assert capped.header_int("x-app-limit-24hour-reset") == 1_800_057_600
        assert capped.header_int("x-rate-limit-remaining") == contract.USER_WINDOW_LIMIT - 2
        clock.now = 1_800_057_600.0
        assert (await post(session, server)).status == 200


async def test_clock_offset_moves_reset_and_date(session: aiohttp.ClientSession) -> None:
    offset_s = -3 * 86_400 + 1234.5
    async with serve(config(clock_offset_s=offset_s)) as server:
        answer = await post(session, server)
        server_now = time.time() + offset_s
    reset = answer.header_int("x-rate-limit-reset")
    assert reset % contract.USER_WINDOW_SECS == 0
    assert 0 < reset - server_now <= contract.USER_WINDOW_SECS + 1
    date = parsedate_to_datetime(answer.headers["Date"]).timestamp()
    assert abs(date - server_now) < 3


# --- faults --------------------------------------------------------------------------------

MALFORMED = [
    pytest.param(Fault.GARBAGE, id="garbage"),
    pytest.param(Fault.TRUNCATED, id="truncated"),
]


@pytest.mark.parametrize("fault", MALFORMED)
async def test_malformed_200_is_not_json(
    simulator: SimulatorServer, session: aiohttp.ClientSession, fault: Fault
) -> None:
    simulator.script([fault])
    answer = await post(session, simulator)
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer.body)
    assert simulator.issued == {}


async def test_no_id_fault_is_json_without_an_id(
    simulator: SimulatorServer, session: aiohttp.ClientSession
) -> None:
    simulator.script([Fault.NO_ID])
    answer = await post(session, simulator)
    assert (answer.status, answer.json()) == (200, {"data": {}})


@pytest.mark.parametrize(
    ("fault", "status", "problem_type"),
    [
        pytest.param(Fault.STATUS_500, 500, contract.INTERNAL_ERROR_TYPE, id="500"),
        pytest.param(Fault.STATUS_502, 502, "about:blank", id="502"),
        pytest.param(Fault.STATUS_503, 503, "about:blank", id="503"),
        pytest.param(Fault.STATUS_504, 504, "about:blank", id="504"),
        pytest.param(Fault.STATUS_429, 429, "about:blank", id="429"),
    ],
)
async def test_scripted_status_then_back_to_normal(
    simulator: SimulatorServer,
    session: aiohttp.ClientSession,
    fault: Fault,
    status: int,
    problem_type: str,
) -> None:
    simulator.script([fault, Fault.NONE])
    failed = await post(session, simulator)
    assert (failed.status, failed.json()["type"]) == (status, problem_type)
    assert failed.content_type == "application/problem+json"
    assert [(await post(session, simulator)).status for _ in range(2)] == [200, 200]
    assert simulator.stats().faults == {fault: 1}


async def test_reset_drops_the_connection(
    simulator: SimulatorServer, session: aiohttp.ClientSession
) -> None:
    simulator.script([Fault.RESET])
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(session, simulator)
    assert (await post(session, simulator)).status == 200
    stats = simulator.stats()
    assert (stats.requests, stats.initialized, dict(stats.faults)) == (2, 1, {Fault.RESET: 1})


async def test_hang_outlasts_the_client_timeout(session: aiohttp.ClientSession) -> None:
    async with serve(config(hang_s=3600)) as server:
        server.script([Fault.HANG])
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                server.url + URL_PATH,
                json=VALID,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
        assert (await post(session, server)).status == 200


async def test_a_short_hang_is_a_slow_answer(session: aiohttp.ClientSession) -> None:
    async with serve(config(hang_s=0.2)) as server:
        server.script([Fault.HANG])
        started = time.perf_counter()
        assert (await post(session, server)).status == 200
        assert time.perf_counter() - started >= 0.2


async def test_latency_delays_every_answer(session: aiohttp.ClientSession) -> None:
    async with serve(config(latency_s=0.1, latency_jitter_s=0.05)) as server:
        started = time.perf_counter()
        assert (await post(session, server)).status == 200
        assert 0.1 <= time.perf_counter() - started < 2.0


async def test_faults_can_start_and_stop_mid_run(
    simulator: SimulatorServer, session: aiohttp.ClientSession
) -> None:
    assert (await post(session, simulator)).status == 200
    simulator.set_faults(FaultRates(fail_5xx_rate=1.0))
    statuses = {(await post(session, simulator)).status for _ in range(20)}
    assert statuses <= {500, 502, 503, 504}
    assert len(statuses) > 1
    simulator.set_faults()
    assert (await post(session, simulator)).status == 200


async def test_seeded_rates_over_http_are_counted(session: aiohttp.ClientSession) -> None:
    rates = FaultRates(fail_5xx_rate=0.2, garbage_rate=0.1, no_id_rate=0.1, reset_rate=0.1)
    async with serve(config(seed=7, faults=rates)) as server:
        for _ in range(200):
            with suppress(aiohttp.ClientConnectionError):
                await post(session, server)
        stats = server.stats()
    assert stats.requests == 200
    faulted = sum(stats.faults.values())
    assert 60 <= faulted <= 140
    assert stats.by_status[200] == stats.initialized + stats.faults.get(
        Fault.GARBAGE, 0
    ) + stats.faults.get(Fault.NO_ID, 0)
    assert sum(stats.by_status.values()) == 200 - stats.faults.get(Fault.RESET, 0)


def test_seeded_fractions_are_right_and_reproducible() -> None:
    rates = FaultRates(
        fail_5xx_rate=0.1,
        reset_rate=0.05,
        hang_rate=0.05,
        garbage_rate=0.02,
        truncated_rate=0.02,
        no_id_rate=0.01,
    )
    draws = 20_000
    plan_a, plan_b = FaultPlan(rates, seed=42), FaultPlan(rates, seed=42)
    seq_a = [plan_a.draw() for _ in range(draws)]
    assert seq_a == [plan_b.draw() for _ in range(draws)]
    assert seq_a != [FaultPlan(rates, seed=43).draw() for _ in range(draws)]
    server_errors = sum(f.value.startswith("status_5") for f in seq_a)
    assert server_errors / draws == pytest.approx(0.10, abs=0.01)
    assert seq_a.count(Fault.RESET) / draws == pytest.approx(0.05, abs=0.008)
    assert seq_a.count(Fault.NO_ID) / draws == pytest.approx(0.01, abs=0.004)
    assert seq_a.count(Fault.NONE) / draws == pytest.approx(0.75, abs=0.015)


@pytest.mark.parametrize(
    "rates",
    [
        pytest.param({"reset_rate": -0.1}, id="negative"),
        pytest.param({"hang_rate": 1.5}, id="above-one"),
        pytest.param({"fail_5xx_rate": 0.6, "garbage_rate": 0.6}, id="sum-above-one"),
    ],
)
def test_impossible_rates_are_refused(rates: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultRates(**rates)


# --- bookkeeping ---------------------------------------------------------------------------


async def test_stats_count_what_was_served(
    simulator: SimulatorServer, session: aiohttp.ClientSession
) -> None:
    simulator.script([Fault.NONE, Fault.STATUS_503])
    await post(session, simulator)
    await post(session, simulator)
    await post(session, simulator, {"media_type": "nope", "total_bytes": 1})
    await post(session, simulator, token="wrong")
    await post(session, simulator)
    stats = simulator.stats()
    assert stats.requests == 5
    assert stats.initialized == 2 == len(simulator.issued)
    assert (stats.unauthorized, stats.invalid, stats.rate_limited) == (1, 1, 0)
    assert stats.by_status == {200: 2, 503: 1, 400: 1, 401: 1}
    assert stats.faults == {Fault.STATUS_503: 1}


async def test_ids_are_unique_over_ten_thousand_requests(
    session: aiohttp.ClientSession,
) -> None:
    total, workers = 10_000, 50
    seen: list[str] = []

    async def worker(first: int) -> None:
        for n in range(first, total, workers):
            answer = await post(session, server, VALID | {"total_bytes": n})
            seen.append(answer.json()["data"]["id"])

    async with serve(config(window_limit=total)) as server:
        async with anyio.create_task_group() as group:
            for first in range(workers):
                group.start_soon(worker, first)
        issued = dict(server.issued)
    assert len(seen) == len(set(seen)) == len(issued) == total
    assert all(MEDIA_ID.fullmatch(media_id) for media_id in seen)
    assert {entry.body["total_bytes"] for entry in issued.values()} == set(range(total))


# --- lifecycle -----------------------------------------------------------------------------


async def test_shutdown_is_prompt_with_a_hanging_request(session: aiohttp.ClientSession) -> None:
    server = SimulatorServer(config(faults=FaultRates(hang_rate=1.0)))
    await server.start()
    outcome: list[BaseException] = []

    async def hanging_call() -> None:
        try:
            await post(session, server)
        except aiohttp.ClientError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(hanging_call)
        with anyio.fail_after(5):
            while server.stats().requests == 0:
                await anyio.sleep(0.01)
        started = time.perf_counter()
        await server.aclose()
        assert time.perf_counter() - started < 1.0
    assert len(outcome) == 1
    assert isinstance(outcome[0], aiohttp.ClientConnectionError)
    await server.aclose()  # idempotent


async def test_url_needs_a_started_server() -> None:
    server = SimulatorServer(config())
    with pytest.raises(RuntimeError, match="start"):
        _ = server.url
    async with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0
    await server.aclose()


def test_tokens_come_from_the_environment_or_the_default() -> None:
    assert tokens_from_env({}) == {DEFAULT_TOKEN}
    assert tokens_from_env({"BATCHER_SIM_TOKEN": " a1, b2 ,"}) == {"a1", "b2"}


def test_redacted_tokens_never_show_the_secret() -> None:
    secret = "sk-abcdefghijklmnopqrstuvwxyz"
    shown = redact(secret)
    assert secret not in shown
    assert shown.startswith("sk-a")
    assert "ab" not in redact("ab")


def test_exported_names_exist() -> None:
    for name in batcher.simulator.__all__:
        assert hasattr(batcher.simulator, name), name


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_standalone_simulator_prints_a_redacted_line_and_stops_on_signal(
    sig: signal.Signals,
) -> None:
    secret = "standalone-secret-token-123"
    repo = Path(__file__).resolve().parents[1]
    env = os.environ | {"BATCHER_SIM_TOKEN": secret, "PYTHONPATH": str(repo)}
    code = "from batcher.simulator import run_simulator; run_simulator(port=0)"
    with subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=10)
    assert re.match(r"batcher simulator listening on http://127\.0\.0\.1:\d+ ", line), line
    assert secret not in line
    assert process.returncode == 0, stderr.decode()
