"""The bare HTTP client loops the pipeline is compared with, one per process.

``python -m benchmarks.clients KIND URL ROWS CONCURRENCY`` sends ROWS initialize-shaped POSTs
(orjson body, JSON answer parsed, ``data.id`` read) with CONCURRENCY in flight and prints one
JSON line: ``{"ok": n, "wall_s": s, "cpu_s": s}`` (CPU of the loop alone, this process).

KIND: ``aiohttp`` (one shared session, orjson, uvloop: the best-practice loop),
``aiohttp-per-request`` (a new session per request), ``httpx`` (one ``httpx.AsyncClient``),
``requests`` (one ``requests.Session`` per thread, CONCURRENCY threads at most 32),
``batcher-client`` (batcher's own ``InitializeClient``, the fast path, without the pipeline),
``raw-protocol`` (the floor: a bare ``asyncio.Protocol`` per connection that writes the request
bytes and cuts answers by ``Content-Length`` only — enough for the benchmark server, not an HTTP
client; it shows what the kernel and the loop cost before any client code).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import orjson

PATH: Final = "/2/media/upload/initialize"
HEADERS: Final = {"Content-Type": "application/json", "Authorization": "Bearer bench-token"}
MAX_THREADS: Final = 32


def body(n: int) -> bytes:
    """The JSON body of row ``n``."""
    return orjson.dumps(
        {"media_type": "image/png", "media_category": "tweet_image", "total_bytes": 1000 + n}
    )


def media_id(payload: bytes) -> str:
    """The answer's ``data.id``."""
    document: Any = orjson.loads(payload)
    return str(document["data"]["id"])


async def pump(send: Callable[[int], Awaitable[str]], rows: int, concurrency: int) -> int:
    """Run ``send`` for rows 0..rows-1, ``concurrency`` at once; count the ids received."""
    counter: Iterator[int] = iter(range(rows))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for n in counter:
            received = await send(n)
            ok += bool(received)  # after the await: no lost update

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


async def shared_session(url: str, rows: int, concurrency: int) -> int:
    """(c) one ClientSession, a connector as wide as the concurrency."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(n: int) -> str:
            async with session.post(url, data=body(n), headers=HEADERS) as response:
                return media_id(await response.read())

        return await pump(send, rows, concurrency)


async def session_per_request(url: str, rows: int, concurrency: int) -> int:
    """(d) a new ClientSession (and connection) for every request."""
    import aiohttp

    async def send(n: int) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body(n), headers=HEADERS) as response,
        ):
            return media_id(await response.read())

    return await pump(send, rows, concurrency)


async def httpx_client(url: str, rows: int, concurrency: int) -> int:
    """(e) one httpx.AsyncClient with a pool as wide as the concurrency."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def send(n: int) -> str:
            response = await client.post(url, content=body(n), headers=HEADERS)
            return media_id(response.content)

        return await pump(send, rows, concurrency)


def requests_threads(url: str, rows: int, concurrency: int) -> int:
    """(f) requests, one Session per thread, at most 32 threads."""
    import requests

    local = threading.local()

    def send(n: int) -> str:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return media_id(session.post(url, data=body(n), headers=HEADERS).content)

    with ThreadPoolExecutor(max_workers=min(concurrency, MAX_THREADS)) as pool:
        return sum(bool(i) for i in pool.map(send, range(rows), chunksize=64))


async def batcher_client(url: str, rows: int, concurrency: int) -> int:
    """(g) batcher's InitializeClient (the fast path) alone, without the pipeline."""
    from batcher.api import ClientConfig, InitializeClient
    from batcher.models import Initialized, InitializeRequest

    config = ClientConfig(base_url=url.removesuffix(PATH), max_in_flight=concurrency)
    authorization = HEADERS["Authorization"]
    async with InitializeClient(config) as client:

        async def send(n: int) -> str:
            request = InitializeRequest(
                media_type="image/png", media_category="tweet_image", total_bytes=1000 + n
            )
            answer = await client.initialize(request, authorization=authorization)
            return answer.result.media_id if isinstance(answer.result, Initialized) else ""

        return await pump(send, rows, concurrency)


class _RawConnection(asyncio.Protocol):
    """One connection of :func:`raw_protocol`: answers framed by ``Content-Length`` only."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        start = self.buffer.lower().find(b"content-length:", 0, end)
        length = int(self.buffer[start + 15 : self.buffer.find(b"\r\n", start)])
        if len(self.buffer) >= end + 4 + length and self.waiter is not None:
            answer = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.waiter.set_result(answer)


async def raw_protocol(url: str, rows: int, concurrency: int) -> int:
    """(h) the floor: raw request bytes over one bare protocol per worker, no HTTP client."""
    loop = asyncio.get_running_loop()
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: {HEADERS['Authorization']}\r\nContent-Length: "
    ).encode()
    free: list[_RawConnection] = []

    async def send(n: int) -> str:
        if free:
            connection = free.pop()
        else:
            _, connection = await loop.create_connection(_RawConnection, host, int(port))
        payload = body(n)
        connection.waiter = loop.create_future()
        assert connection.transport is not None
        connection.transport.write(b"%s%d\r\n\r\n%s" % (head, len(payload), payload))
        answer = await connection.waiter
        free.append(connection)
        return media_id(answer)

    return await pump(send, rows, concurrency)


ASYNC_KINDS: Final = {
    "raw-protocol": raw_protocol,
    "batcher-client": batcher_client,
    "aiohttp": shared_session,
    "aiohttp-per-request": session_per_request,
    "httpx": httpx_client,
}


def run(kind: str, url: str, rows: int, concurrency: int) -> int:
    """Run one kind to completion (uvloop for the async ones when installed)."""
    if kind == "requests":
        return requests_threads(url, rows, concurrency)
    loop_factory: Any = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(ASYNC_KINDS[kind](url, rows, concurrency))


def main() -> None:
    """Entry point: KIND URL ROWS CONCURRENCY → one JSON line."""
    kind, base_url, rows, concurrency = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5])
    started, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    ok = run(kind, base_url + PATH, rows, concurrency)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    wall_s = time.perf_counter() - started
    sys.stdout.write(orjson.dumps({"ok": ok, "wall_s": wall_s, "cpu_s": cpu_s}).decode() + "\n")


if __name__ == "__main__":
    main()
