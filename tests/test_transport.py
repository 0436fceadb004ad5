"""The HTTP fast path against a raw scripted server: framing, keep-alive, reconnects, failures.

The simulator checks the contract; this server misbehaves on purpose, byte by byte: each
request it receives is answered by the next *script step* (bytes to write, then keep the
connection, close it, reset it, or hang).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import socket
import ssl
import struct
import zlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp.http_exceptions import (
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    LineTooLong,
    TransferEncodingError,
)

from batcher.api import ClientConfig, InitializeClient, transport_error
from batcher.errors import ApiError, BadResponse, ConfigError, RequestTimeout, TransportError
from batcher.models import Initialized, InitializeRequest
from batcher.transport import DEADLINE_SWEEP_S, AnswerTooLarge, Origin, StaleConnection

pytestmark = pytest.mark.anyio

REQUEST = InitializeRequest(media_type="image/png", media_category="tweet_image", total_bytes=7)
AUTH = "Bearer transport-token"
OK_BODY = orjson.dumps({"data": {"id": "42", "media_key": "3_42", "expires_after_secs": 86400}})
LIMIT_HEADERS = b"x-rate-limit-limit: 10\r\nx-rate-limit-remaining: 9\r\nx-rate-limit-reset: 99\r\n"


def answer(body: bytes = OK_BODY, *, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    """A Content-Length answer."""
    head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n%s%s" % (status, LIMIT_HEADERS, extra)
    return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)


def chunked(body: bytes = OK_BODY, pieces: int = 3) -> bytes:
    """A chunked answer, the body cut into ``pieces`` chunks."""
    size = -(-len(body) // pieces)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded + b"0\r\n\r\n"


def raw_deflate(body: bytes) -> bytes:
    """Deflate without zlib's wrapper, as some servers send ``Content-Encoding: deflate``."""
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


@dataclass(frozen=True)
class Step:
    """How the server handles one request: write ``data``, then ``then``."""

    data: bytes = b""
    then: str = "keep"  # keep | close | reset | hang
    split: bool = False  # write the bytes in two pieces, a loop turn apart


@dataclass
class Script:
    """The server side: steps for the next requests (default: answer OK), what it saw."""

    steps: deque[Step] = field(default_factory=deque)
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    delay_s: float = 0.0
    ids: itertools.count[int] = field(default_factory=itertools.count)
    transports: list[asyncio.Transport] = field(default_factory=list)

    def next_step(self) -> Step:
        if self.steps:
            return self.steps.popleft()
        body = orjson.dumps({"data": {"id": str(next(self.ids))}})
        return Step(answer(body))


class ScriptedServer(asyncio.Protocol):
    """Reads requests (Content-Length framed) and plays the script's steps."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.script.connections += 1
        self.script.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.script.requests.append(head + b"\r\n\r\n" + rest[:length])
            asyncio.get_running_loop().create_task(self.play(self.script.next_step()))

    async def play(self, step: Step) -> None:
        transport = self.transport
        assert transport is not None
        self.script.in_flight += 1
        self.script.max_in_flight = max(self.script.max_in_flight, self.script.in_flight)
        await asyncio.sleep(self.script.delay_s)
        self.script.in_flight -= 1
        if step.split and step.data:
            transport.write(step.data[: len(step.data) // 2])
            await asyncio.sleep(0.01)
            transport.write(step.data[len(step.data) // 2 :])
        elif step.data:
            transport.write(step.data)
        if step.then == "close":
            transport.close()
        elif step.then == "reset":
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()


@asynccontextmanager
async def scripted_server(*steps: Step) -> AsyncIterator[tuple[int, Script]]:
    script = Script(steps=deque(steps))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ScriptedServer(script), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, script
    finally:
        server.close()
        for transport in script.transports:
            transport.abort()
        await server.wait_closed()
        await asyncio.sleep(0)


@asynccontextmanager
async def client(port: int, **options: object) -> AsyncIterator[InitializeClient]:
    config = ClientConfig(
        base_url=f"http://127.0.0.1:{port}",
        timeout_s=options.pop("timeout_s", 2.0),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )
    async with InitializeClient(config) as initialize_client:
        yield initialize_client


async def send(c: InitializeClient) -> Initialized:
    result = (await c.initialize(REQUEST, authorization=AUTH)).result
    assert isinstance(result, Initialized)
    return result


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(Step(answer()), id="content-length"),
        pytest.param(Step(answer(), split=True), id="content-length-in-two-reads"),
        pytest.param(Step(chunked()), id="chunked"),
        pytest.param(Step(chunked(), split=True), id="chunked-in-two-reads"),
        pytest.param(
            Step(answer(gzip.compress(OK_BODY), extra=b"Content-Encoding: gzip\r\n")), id="gzip"
        ),
        pytest.param(
            Step(answer(zlib.compress(OK_BODY), extra=b"Content-Encoding: deflate\r\n")),
            id="deflate",
        ),
        pytest.param(
            Step(answer(raw_deflate(OK_BODY), extra=b"Content-Encoding: deflate\r\n")),
            id="raw-deflate",
        ),
        pytest.param(Step(answer(extra=b"Content-Encoding: identity\r\n")), id="identity"),
        pytest.param(
            Step(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + OK_BODY, then="close"),
            id="read-until-close",
        ),
        pytest.param(Step(b"HTTP/1.1 100 Continue\r\n\r\n" + answer()), id="after-100-continue"),
    ],
)
async def test_answer_framings(step: Step) -> None:
    async with scripted_server(step) as (port, _script), client(port) as c:
        assert (await send(c)).media_id == "42"
        assert (await send(c)).media_id == "0"  # the connection (or a new one) still works


async def test_the_request_is_exact() -> None:
    async with scripted_server() as (port, script), client(port) as c:
        await send(c)
    head, body = script.requests[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /2/media/upload/initialize HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}".encode() in lines
    assert b"Content-Type: application/json" in lines
    assert AUTH.encode() in b"".join(lines)
    assert orjson.loads(body) == REQUEST.to_body()


async def test_keep_alive_reuses_one_connection() -> None:
    async with scripted_server() as (port, script), client(port) as c:
        for _ in range(20):
            await send(c)
    assert script.connections == 1


async def test_connection_close_header_opens_a_new_connection() -> None:
    step = Step(answer(extra=b"Connection: close\r\n"), then="close")
    async with scripted_server(step) as (port, script), client(port) as c:
        await send(c)
        await send(c)
    assert script.connections == 2


async def test_idle_close_is_noticed_before_reuse() -> None:
    async with scripted_server(Step(answer(), then="close")) as (port, script), client(port) as c:
        await send(c)
        await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
        await send(c)
        assert c.resent == 0
    assert script.connections == 2
    assert len(script.requests) == 2


async def test_reused_connection_closed_unanswered_is_resent_once() -> None:
    steps = (Step(answer()), Step(then="reset"))
    async with scripted_server(*steps) as (port, script), client(port) as c:
        await send(c)
        answered = await c.initialize(REQUEST, authorization=AUTH)
        assert (answered.http_status, answered.sent, c.resent) == (200, 2, 1)
    assert script.connections == 2


async def test_fresh_connection_closed_unanswered_is_not_resent() -> None:
    async with scripted_server(Step(then="reset")) as (port, script), client(port) as c:
        with pytest.raises(TransportError):
            await send(c)
        assert c.resent == 0
    assert len(script.requests) == 1


async def test_the_resend_happens_only_once() -> None:
    steps = (Step(answer()), Step(then="reset"), Step(then="reset"))
    async with scripted_server(*steps) as (port, script), client(port) as c:
        await send(c)
        with pytest.raises(TransportError):
            await send(c)
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    ("step", "error"),
    [
        pytest.param(Step(answer()[:-10], then="reset"), TransportError, id="reset-mid-body"),
        pytest.param(Step(answer()[:-10], then="close"), TransportError, id="close-mid-body"),
        pytest.param(Step(chunked()[:-12], then="close"), TransportError, id="close-mid-chunks"),
        pytest.param(Step(answer()[:30], then="close"), TransportError, id="close-mid-headers"),
        pytest.param(Step(b"SSH-2.0-OpenSSH\r\n\r\n"), BadResponse, id="not-http"),
        pytest.param(Step(b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"), BadResponse, id="bad-header"),
        pytest.param(
            Step(answer(b"\x1f\x8b not gzip", extra=b"Content-Encoding: gzip\r\n")),
            BadResponse,
            id="corrupt-gzip",
        ),
        pytest.param(
            Step(answer(gzip.compress(OK_BODY)[:-12], extra=b"Content-Encoding: gzip\r\n")),
            BadResponse,
            id="truncated-gzip",
        ),
        pytest.param(
            Step(answer(OK_BODY, extra=b"Content-Encoding: br\r\n")),
            BadResponse,
            id="unsupported-encoding",
        ),
        pytest.param(
            Step(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
            BadResponse,
            id="upgrade",
        ),
        pytest.param(Step(then="hang"), RequestTimeout, id="hang"),
        pytest.param(Step(answer()[:-10]), RequestTimeout, id="hang-mid-body"),
    ],
)
async def test_broken_answers_raise_one_api_error(step: Step, error: type[ApiError]) -> None:
    async with scripted_server(Step(answer()), step) as (port, _), client(port, timeout_s=0.3) as c:
        await send(c)
        with pytest.raises(error):
            await send(c)
        assert (await send(c)).media_id == "0"  # the client recovers on a new connection


async def test_header_names_are_read_in_any_case() -> None:
    limits = b"X-Rate-Limit-Limit: 10\r\nX-RATE-LIMIT-REMAINING: 9\r\nx-rate-limit-reset: 99\r\n"
    head = b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n" % (limits, len(OK_BODY))
    async with scripted_server(Step(head + OK_BODY)) as (port, _), client(port) as c:
        rate = (await c.initialize(REQUEST, authorization=AUTH)).rate
    assert (rate.limit, rate.remaining, rate.reset_at) == (10, 9, 99.0)


async def test_bytes_past_the_answer_drop_the_connection_not_the_answer() -> None:
    # Two answers to one request: the first is this request's; the connection's framing is
    # lost, so the next request goes on a new connection.
    async with scripted_server(Step(answer() + answer())) as (port, script), client(port) as c:
        assert (await send(c)).media_id == "42"
        assert (await send(c)).media_id == "0"
    assert script.connections == 2


async def test_every_request_in_flight_gets_its_own_deadline() -> None:
    # Deadlines are swept, not timed one by one: hung requests started at different times each
    # fail about when theirs passes (not before it, and at most a sweep or so after), and a
    # request answered meanwhile is not disturbed.
    steps = [Step(then="hang"), Step(then="hang"), Step(answer()), Step(then="hang")]
    async with scripted_server(*steps) as (port, _), client(port, timeout_s=0.4) as c:
        loop = asyncio.get_running_loop()

        async def timed_out_after(start_delay_s: float) -> float:
            await asyncio.sleep(start_delay_s)
            started = loop.time()
            with pytest.raises(RequestTimeout):
                await send(c)
            return loop.time() - started

        async def answered() -> str:
            await asyncio.sleep(0.15)
            return (await send(c)).media_id

        results = await asyncio.gather(
            timed_out_after(0.0), timed_out_after(0.1), answered(), timed_out_after(0.2)
        )
    waits = [results[0], results[1], results[3]]
    assert results[2] == "42"
    assert all(0.4 <= wait < 0.4 + 10 * DEADLINE_SWEEP_S for wait in waits), waits


async def test_the_deadline_sweep_stops_when_nothing_waits() -> None:
    async with scripted_server(Step(answer())) as (port, _), client(port) as c:
        await send(c)
        pool = c._pool
        assert pool is not None
        async with asyncio.timeout(1.0):  # a few sweeps, however slow the machine
            while pool._sweep_handle is not None:
                await asyncio.sleep(DEADLINE_SWEEP_S)


async def test_an_oversized_answer_is_refused() -> None:
    huge = answer(b"x" * (4 * 1024 * 1024))
    async with scripted_server(Step(huge)) as (port, _script), client(port) as c:
        with pytest.raises(BadResponse):
            await send(c)


@pytest.mark.parametrize(
    ("body", "coding"),
    [
        pytest.param(gzip.compress(bytes(8 << 20)), b"gzip", id="gzip"),
        pytest.param(zlib.compress(bytes(8 << 20)), b"deflate", id="deflate"),
        pytest.param(raw_deflate(bytes(8 << 20)), b"deflate", id="raw-deflate"),
    ],
)
async def test_a_compression_bomb_is_refused_as_too_large(body: bytes, coding: bytes) -> None:
    step = Step(answer(body, extra=b"Content-Encoding: %s\r\n" % coding))
    async with scripted_server(step) as (port, _), client(port) as c:
        with pytest.raises(BadResponse, match="larger than"):
            await send(c)


async def test_an_endless_head_is_refused() -> None:
    # llhttp bounds no header's size: the connection does, long before memory runs short.
    endless = b"HTTP/1.1 200 OK\r\n" + b"x-padding: %s\r\n" % (b"y" * 1000) * 200
    async with scripted_server(Step(endless, then="hang")) as (port, _), client(port) as c:
        with pytest.raises(BadResponse, match="head larger"):
            await send(c)


async def test_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client(port) as c:
        with pytest.raises(TransportError):
            await send(c)


@pytest.mark.parametrize("max_in_flight", [1, 3, 8])
async def test_never_more_than_max_in_flight(max_in_flight: int) -> None:
    async with scripted_server() as (port, script), client(port, max_in_flight=max_in_flight) as c:
        script.delay_s = 0.01
        await asyncio.gather(*(send(c) for _ in range(40)))
    assert script.max_in_flight == max_in_flight
    assert script.connections == max_in_flight


async def test_a_cancelled_request_does_not_poison_the_pool() -> None:
    async with scripted_server(Step(then="hang")) as (port, _script), client(port) as c:
        task = asyncio.ensure_future(send(c))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await send(c)).media_id == "0"


@pytest.mark.parametrize("handed_a_slot", [False, True], ids=["still-waiting", "slot-handed-over"])
async def test_a_request_cancelled_while_waiting_for_a_slot_leaves_the_slot(
    handed_a_slot: bool,
) -> None:
    async with scripted_server() as (port, script), client(port, max_in_flight=1) as c:
        script.delay_s = 0.05
        waiting: list[asyncio.Task[Initialized]] = []
        asyncio.get_running_loop().call_later(
            0.01, lambda: waiting.append(asyncio.ensure_future(send(c)))
        )
        if handed_a_slot:
            # The slot passes to the waiter as this request ends; the waiter has not run yet.
            await send(c)
            waiting[0].cancel()
        else:
            first = asyncio.ensure_future(send(c))
            await asyncio.sleep(0.03)
            waiting[0].cancel()
            await first
        with pytest.raises(asyncio.CancelledError):
            await waiting[0]
        script.delay_s = 0.0
        assert (await asyncio.wait_for(send(c), 1.0)).media_id == "1"
        assert script.max_in_flight == 1


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("ftp://example.com", id="not-http"),
        pytest.param("https://", id="no-host"),
    ],
)
def test_bad_base_url_is_a_config_error(base_url: str) -> None:
    with pytest.raises(ConfigError):
        InitializeClient(ClientConfig(base_url=base_url))


async def test_a_token_with_a_line_break_is_refused_before_sending() -> None:
    async with scripted_server() as (port, script), client(port) as c:
        with pytest.raises(ConfigError):
            await c.initialize(REQUEST, authorization="Bearer a\r\nX-Evil: 1")
    assert script.requests == []


@pytest.mark.parametrize(
    ("url", "host_header"),
    [
        pytest.param("https://api.x.com/2/x", "api.x.com", id="default-https-port"),
        pytest.param("http://api.x.com:80/2/x", "api.x.com", id="default-http-port"),
        pytest.param("http://127.0.0.1:8080/2/x", "127.0.0.1:8080", id="explicit-port"),
        pytest.param("http://[::1]:81/2/x", "[::1]:81", id="ipv6"),
    ],
)
def test_host_header(url: str, host_header: str) -> None:
    assert Origin.from_url(url).host_header == host_header


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        pytest.param(TimeoutError(), RequestTimeout, id="timeout"),
        pytest.param(ConnectionResetError(), TransportError, id="reset"),
        pytest.param(StaleConnection(), TransportError, id="stale"),
        pytest.param(ConnectionRefusedError(), TransportError, id="refused"),
        pytest.param(socket.gaierror(), TransportError, id="dns"),
        pytest.param(ssl.SSLCertVerificationError(), TransportError, id="tls-verify"),
        pytest.param(ContentLengthError("short"), TransportError, id="short-body"),
        pytest.param(TransferEncodingError("short"), TransportError, id="short-chunks"),
        pytest.param(BadStatusLine("SSH"), BadResponse, id="bad-status-line"),
        pytest.param(InvalidHeader("x"), BadResponse, id="bad-header"),
        pytest.param(LineTooLong("x", "8190"), BadResponse, id="line-too-long"),
        pytest.param(ContentEncodingError("gzip"), BadResponse, id="bad-gzip"),
        pytest.param(AnswerTooLarge("big"), BadResponse, id="too-large"),
    ],
)
def test_every_transport_error_is_translated(
    raised: OSError | HttpProcessingError, expected: type[ApiError]
) -> None:
    error = transport_error(raised, "http://x")
    assert type(error) is expected
    assert "http://x" in str(error)
