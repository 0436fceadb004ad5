"""The HTTP/1.1 fast path: one origin, keep-alive connections, llhttp parsing the answers.

``aiohttp.ClientSession`` spends most of its ~60 µs per request on machinery a single-endpoint
batch job never uses (URL joining, cookies, tracing, redirects, middlewares, per-request
``ClientRequest``/``ClientResponse`` objects, a timer context per read). This module keeps what
the initialize call needs and nothing else:

* ``asyncio`` transports from ``loop.create_connection`` (TLS via an ``ssl.SSLContext`` that
  verifies certificates and host names by default; ``TCP_NODELAY`` is the loop's default);
* llhttp, the parser of Node.js (and of aiohttp's C extension), through httptools: status
  lines, headers, ``Content-Length`` and chunked bodies, no hand-written HTTP parsing. aiohttp's
  own ``HttpResponseParser`` was used first; it wraps every body in a ``StreamReader`` and
  every head in a ``CIMultiDict``, and cost about 4.5 µs per answer to httptools' 1.5 µs
  (callbacks filling a dict). What llhttp leaves to its caller is here: bodies that end at
  the close, and gzip/deflate ``Content-Encoding``, inflated with a size cap;
* a LIFO pool of idle connections, at most ``max_in_flight`` requests (hence connections) at
  once, and a deadline per request covering connect, write and the whole answer. Deadlines
  are checked by one sweep of the pool every ``DEADLINE_SWEEP_S`` while requests are in
  flight, not by a timer per request: arming and cancelling a loop timer cost about 3 µs on
  uvloop, a tenth of the whole call; so a deadline may fire up to one sweep late.

It raises only builtins and aiohttp's ``HttpProcessingError`` family: ``TimeoutError``,
``OSError``/``ConnectionError`` (TLS errors included), ``HttpProcessingError``.
:func:`batcher.api.transport_error` maps them onto batcher's tree in one place.

Reuse and the one resend
------------------------
Initialize is not idempotent: every request the server *processes* opens an upload session.
Connections the server closed while idle are dropped before use, and connections idle longer
than ``keepalive_s`` are not reused, so the known race is narrow. What remains: a request
written on a *reused* connection that the server closes (FIN or RST) before a single byte of
the answer arrives. That is the signature of the server timing out an idle connection as the
request crossed the wire, and the server application has then not read the request. Such a
request is resent **once** on a **fresh** connection, and the answer says so (``sent == 2``).
A failure on a fresh connection, a timeout, or a close after any answer byte is never resent
here: it reaches the caller, whose retry policy (with its backoff and attempt count) decides.
Worst case (a server that read the request and then dropped the connection silently), the
resend leaves one orphan upload session, which expires on its own: the same outcome as the
runner's own retry of a connection error, minus the backoff.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple, cast
from urllib.parse import urlsplit

from aiohttp.http_exceptions import BadHttpMessage, ContentLengthError
from httptools import HttpParserError, HttpResponseParser

DEFAULT_KEEPALIVE_S: Final = 15.0
# An initialize answer is well under 1 KiB: a body past this is refused, not buffered.
MAX_BODY_BYTES: Final = 512 * 1024
# llhttp bounds no header's size: an answer still without its whole head past this is refused.
MAX_HEAD_BYTES: Final = 64 * 1024
USER_AGENT: Final = "batcher"
DEADLINE_SWEEP_S: Final = 0.05
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class AnswerTooLarge(BadHttpMessage):
    """The answer body grew past what an initialize answer can be."""


class StaleConnection(ConnectionResetError):
    """A reused connection closed before any byte of the answer: the request may be resent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """Where requests go: scheme, host, port, and the request target's path."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str) -> Origin:
        """``https://api.x.com/2/media/upload/initialize`` → its parts (http and https only)."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(scheme=parts.scheme, host=parts.hostname, port=port, path=path)

    @property
    def host_header(self) -> str:
        """The ``Host`` value: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


class RawAnswer(NamedTuple):
    """A complete HTTP answer: status, headers, body (decoded), requests it took.

    A NamedTuple, not a frozen dataclass: one is built per request, several times faster.
    """

    status: int
    headers: Mapping[bytes, bytes]  # names in lower case, values as on the wire
    body: bytes
    sent: int = 1


class Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, get its answer, then the next one.

    llhttp (through httptools) frames the answer: status line, headers, ``Content-Length`` and
    chunked bodies. What llhttp leaves to its caller is done here: an answer with neither
    length nor chunks ends when the connection closes, and a gzip or deflate body is inflated.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_complete",
        "_headed",
        "_headers",
        "_loop",
        "_parser",
        "_received",
        "_transport",
        "_waiter",
        "closed",
        "deadline",
        "idle_since",
        "served",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[RawAnswer] | None = None
        self.deadline = 0.0  # loop time; meaningful while an exchange waits
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._headed = False  # the answer's head is complete
        self._complete = False  # the whole answer is in (and handed to the waiter)
        self._received = 0  # bytes of the current answer so far
        self.closed = False
        self.served = 0
        self.idle_since = loop.time()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "busy" if self._waiter else "idle"
        return f"<Connection {state} served={self.served}>"

    # The parser's callbacks (httptools calls them during feed_data)
    def on_message_begin(self) -> None:
        """An answer starts; a second one in the same exchange means the framing is lost."""
        if self._complete:
            self._abort()  # the first answer went to its waiter; the connection goes
        self._headers, self._body, self._body_size = {}, [], 0
        self._headed = self._complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        """Keep the header under its lower-case name (a repeated header: the last one)."""
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        """The head is in: from now on, a close may be the answer's end (read-until-close)."""
        self._headed = True

    def on_body(self, body: bytes) -> None:
        """Keep the body's bytes, up to what an initialize answer can be."""
        self._body_size += len(body)
        if self._body_size <= MAX_BODY_BYTES:
            self._body.append(body)

    def on_message_complete(self) -> None:
        """Answer the waiter (an informational 1xx is skipped: the real answer follows)."""
        parser = self._parser
        if parser.get_status_code() >= 200:
            self._complete = True
            self._finish(keep_alive=parser.should_keep_alive())

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; answer the waiter once headers and the whole body are in."""
        if self._waiter is None or self._waiter.done():
            self._abort()  # bytes nobody asked for: the connection's framing is lost
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)  # a complete answer is handed over from inside
        except HttpParserError as exc:  # the upgrade signal included: we asked for none
            self._fail(BadHttpMessage(f"malformed answer: {exc}"))
            return
        if self._body_size > MAX_BODY_BYTES:
            self._fail(AnswerTooLarge(f"answer body larger than {MAX_BODY_BYTES} bytes"))
        elif not self._headed and self._received > MAX_HEAD_BYTES:
            self._fail(AnswerTooLarge(f"answer head larger than {MAX_HEAD_BYTES} bytes"))

    def eof_received(self) -> bool | None:
        """The peer closed its side: let the transport close; :meth:`connection_lost` follows."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Complete a read-until-close answer, or fail the request in flight."""
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headed and not self._complete:
            if _ends_at_close(self._parser.get_status_code(), self._headers):
                self._finish(keep_alive=False)
            else:
                self._fail(ContentLengthError("the connection closed before the answer's end"))
            return
        self._fail(self._lost_error(exc))

    def _lost_error(self, exc: Exception | None) -> OSError:
        if not self._received and self.served > 0:
            return StaleConnection("the server closed a reused connection before answering")
        if exc is not None and isinstance(exc, OSError):
            return exc
        where = "mid-answer" if self._received else "before answering"
        return ConnectionResetError(f"the server closed the connection {where}")

    # Requests
    async def exchange(self, request: bytes, deadline: float) -> RawAnswer:
        """Write ``request`` and wait for its complete answer until ``deadline`` (loop time).

        The deadline is enforced by whoever calls :meth:`expire_if_due` (the pool's sweep).
        """
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        waiter: asyncio.Future[RawAnswer] = self._loop.create_future()
        self._waiter = waiter
        self._received = 0
        self._headed = self._complete = False
        self.deadline = deadline
        transport.write(request)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._abort()  # the answer's fate is unknown: this connection's framing too
            raise
        finally:
            self._waiter = None
            self.served += 1
            self.idle_since = self._loop.time()

    def expire_if_due(self, now: float) -> bool:
        """Fail the waiting exchange if its deadline passed; True while one still waits."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return False  # answered: the exchange resumes with it on the loop's next turn
        if now >= self.deadline:
            self._fail(TimeoutError("no complete answer before the deadline"))
            return False
        return True

    def _finish(self, *, keep_alive: bool) -> None:
        headers, chunks = self._headers, self._body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._body_size > MAX_BODY_BYTES or b"content-encoding" in headers:
            try:
                body = _decoded(self._body_size, body, headers.get(b"content-encoding"))
            except BadHttpMessage as exc:
                self._fail(exc)
                return
        if not keep_alive:
            self._close()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            # tuple.__new__: NamedTuple's own __new__ is a Python call (see batcher.api).
            answer = tuple.__new__(RawAnswer, (self._parser.get_status_code(), headers, body, 1))
            waiter.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._abort()

    def _close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Close the connection (idle ones gracefully; safe to call twice)."""
        self._close()


def _ends_at_close(status: int, headers: Mapping[bytes, bytes]) -> bool:
    """True for an answer whose body runs until the connection closes (RFC 9112, 6.3)."""
    if status < 200 or status in (204, 304):
        return False
    if b"content-length" in headers:
        return False
    coding = headers.get(b"transfer-encoding", b"").rsplit(b",", 1)[-1].strip().lower()
    return coding != b"chunked"


def _decoded(size: int, body: bytes, coding: bytes | None) -> bytes:
    """The body (``size`` bytes received) without its ``Content-Encoding``: gzip and deflate
    are inflated, others are refused, and so is a body past ``MAX_BODY_BYTES``."""
    if size > MAX_BODY_BYTES:
        raise AnswerTooLarge(f"answer body larger than {MAX_BODY_BYTES} bytes")
    if coding is None or not body:
        return body
    coding = coding.strip().lower()
    if coding in (b"", b"identity"):
        return body
    if coding in (b"gzip", b"x-gzip"):
        return _inflate(body, wbits=16 + zlib.MAX_WBITS)
    if coding == b"deflate":
        # RFC 9110 means zlib-wrapped; some servers send raw deflate. Try both.
        try:
            return _inflate(body, wbits=zlib.MAX_WBITS)
        except AnswerTooLarge:
            raise
        except BadHttpMessage:
            return _inflate(body, wbits=-zlib.MAX_WBITS)
    raise BadHttpMessage(f"unsupported Content-Encoding {coding.decode('latin-1')!r}")


def _inflate(body: bytes, *, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits=wbits)
    try:
        inflated = inflater.decompress(body, MAX_BODY_BYTES)
    except zlib.error as exc:
        raise BadHttpMessage(f"the compressed body is corrupt: {exc}") from None
    if inflater.unconsumed_tail:  # stopped at the cap with input left: a bomb, or just huge
        raise AnswerTooLarge(f"answer body larger than {MAX_BODY_BYTES} bytes when inflated")
    if not inflater.eof:
        raise BadHttpMessage("the compressed body is truncated")
    return inflated


class ConnectionPool:
    """Requests to one origin over at most ``max_connections`` keep-alive connections.

    Create it inside the running loop; :meth:`aclose` (idempotent) closes every connection.
    """

    __slots__ = (
        "_connect_timeout_s",
        "_connections",
        "_free",
        "_idle",
        "_keepalive_s",
        "_loop",
        "_slot_waiters",
        "_ssl",
        "_sweep_handle",
        "max_connections",
        "opened",
        "origin",
        "resent",
    )

    def __init__(
        self,
        origin: Origin,
        *,
        max_connections: int,
        connect_timeout_s: float,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = origin
        self.max_connections = max_connections
        self.opened = 0
        self.resent = 0
        self._loop = asyncio.get_running_loop()
        self._free = max_connections
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._idle: deque[Connection] = deque()
        self._connections: set[Connection] = set()
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._ssl: ssl.SSLContext | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        if origin.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()

    def __repr__(self) -> str:
        return (
            f"<ConnectionPool {self.origin.scheme}://{self.origin.host_header} "
            f"open={len(self._connections)} idle={len(self._idle)} opened={self.opened} "
            f"resent={self.resent}>"
        )

    async def request(self, data: bytes, timeout_s: float) -> RawAnswer:
        """Send one complete request (bytes on the wire) and return its answer."""
        if self._free > 0 and not self._slot_waiters:
            self._free -= 1  # no await: a free slot costs nothing (asyncio.Semaphore did)
        else:
            await self._wait_for_slot()
        # Every request passes here: the usual cases are written out rather than called.
        try:
            now = self._loop.time()
            deadline = now + timeout_s
            idle = self._idle
            connection = idle.pop() if idle else None
            if (
                connection is None
                or connection.closed
                or connection.idle_since < now - self._keepalive_s
            ):
                connection = await self._another_connection(connection, deadline)
            if self._sweep_handle is None:
                self._watch_deadlines()
            try:
                return await connection.exchange(data, deadline)
            except StaleConnection:
                self.resent += 1
                self._discard(connection)
                connection = await self._connect(deadline)
                self._watch_deadlines()
                answer = await connection.exchange(data, deadline)
                return RawAnswer(answer.status, answer.headers, answer.body, sent=2)
            finally:
                if connection.closed:
                    self._connections.discard(connection)
                else:
                    idle.append(connection)
        finally:
            if self._slot_waiters:
                self._release_slot()
            else:
                self._free += 1

    async def _wait_for_slot(self) -> None:
        """Wait in line until a finishing request hands over its slot."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # handed a slot it will not use: pass it on
            raise

    def _release_slot(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # done: cancelled while it waited
                waiter.set_result(None)
                return
        self._free += 1

    def _watch_deadlines(self) -> None:
        if self._sweep_handle is None:
            self._sweep_handle = self._loop.call_later(DEADLINE_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        """Expire the exchanges past their deadline; sweep again while any still waits."""
        now = self._loop.time()
        waiting = False
        for connection in list(self._connections):
            waiting = connection.expire_if_due(now) or waiting
        self._sweep_handle = (
            self._loop.call_later(DEADLINE_SWEEP_S, self._sweep) if waiting else None
        )

    async def _another_connection(self, unusable: Connection | None, deadline: float) -> Connection:
        """Drop ``unusable`` (the last idle one, if any); take a usable idle one or connect."""
        if unusable is not None:
            self._discard(unusable)
        idle, oldest_usable = self._idle, self._loop.time() - self._keepalive_s
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= oldest_usable:
                return connection
            self._discard(connection)
        return await self._connect(deadline)

    def _discard(self, connection: Connection) -> None:
        connection.close()
        self._connections.discard(connection)

    async def _connect(self, deadline: float) -> Connection:
        origin, loop = self.origin, self._loop
        connection = Connection(loop)
        server_hostname = origin.host if self._ssl is not None else None
        async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout_s)):
            await loop.create_connection(
                lambda: connection,
                origin.host,
                origin.port,
                ssl=self._ssl,
                server_hostname=server_hostname,
            )
        self.opened += 1
        self._connections.add(connection)
        return connection

    async def aclose(self) -> None:
        """Close every connection; requests still in flight fail. Safe to call twice."""
        connections, self._connections = self._connections, set()
        self._idle.clear()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.sleep(0)  # let the transports report connection_lost


def request_head(origin: Origin, authorization: str) -> bytes:
    """Everything of a JSON POST before the ``Content-Length`` digits (fixed per token)."""
    if any(ch in authorization for ch in "\r\n\0"):
        raise ValueError("the Authorization value contains a line break or NUL")
    return (
        f"POST {origin.path} HTTP/1.1\r\n"
        f"Host: {origin.host_header}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Accept: application/json\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: {authorization}\r\n"
        "Content-Length: "
    ).encode("latin-1")


def json_post(head: bytes, body: bytes) -> bytes:
    """The complete request: ``head`` from :func:`request_head`, then the length and body."""
    return b"%s%d\r\n\r\n%s" % (head, len(body), body)


__all__ = [
    "AnswerTooLarge",
    "Connection",
    "ConnectionPool",
    "Origin",
    "RawAnswer",
    "StaleConnection",
    "json_post",
    "request_head",
]
