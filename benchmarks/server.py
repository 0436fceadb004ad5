"""A minimal keep-alive HTTP server for the benchmarks: the client, not this, must be the limit.

``python -m benchmarks.server [--cpu N]`` prints ``PORT <n>`` on stdout, then answers every
request on 127.0.0.1 with a fixed small JSON 200 (a unique ``data.id`` from a counter) and
rate-limit headers with a limit no run can reach, until stdin closes or SIGTERM arrives.
Requests are framed by ``Content-Length`` only (the clients under test send nothing else).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from email.utils import formatdate
from typing import Final, cast

HUGE_LIMIT: Final = 1_000_000_000
BACKLOG: Final = 4096


class Answers:
    """Builds the answer bytes; the ``Date`` header changes once a second."""

    __slots__ = ("_date_at", "_head", "_reset", "served")

    def __init__(self) -> None:
        self.served = 0
        self._reset = int(time.time()) + 86_400
        self._date_at = 0
        self._head = b""

    def next(self) -> bytes:
        """The complete answer to the next request."""
        self.served += 1
        now = int(time.time())
        if now != self._date_at:
            self._date_at = now
            self._head = (
                "HTTP/1.1 200 OK\r\n"
                f"Date: {formatdate(now, usegmt=True)}\r\n"
                "Content-Type: application/json\r\n"
                f"x-rate-limit-limit: {HUGE_LIMIT}\r\n"
                f"x-rate-limit-remaining: {HUGE_LIMIT - 1}\r\n"
                f"x-rate-limit-reset: {self._reset}\r\n"
                "Content-Length: "
            ).encode()
        media_id = b"%d" % (10**18 + self.served)
        body = b'{"data":{"id":"%s","media_key":"3_%s","expires_after_secs":86400}}' % (
            media_id,
            media_id,
        )
        return b"%s%d\r\n\r\n%s" % (self._head, len(body), body)


class MinimalHttp(asyncio.Protocol):
    """Answers each complete request as soon as it is read; keeps the connection open."""

    __slots__ = ("_answers", "_buffer", "_transport")

    def __init__(self, answers: Answers) -> None:
        self._answers = answers
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        """Answer every complete request in the buffer."""
        buffer = self._buffer + data if self._buffer else data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            length = _content_length(buffer[:end])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            out.append(self._answers.next())
        self._buffer = buffer
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"content-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at)
    return int(head[at + 15 : end if end >= 0 else len(head)])


async def serve(cpu: int | None) -> None:
    """Serve until stdin closes or SIGTERM."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    loop = asyncio.get_running_loop()
    answers = Answers()
    server = await loop.create_server(lambda: MinimalHttp(answers), "127.0.0.1", 0, backlog=BACKLOG)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), stop.set)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main() -> None:
    """Entry point: ``--cpu N`` pins the server to core N."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    with contextlib.suppress(KeyboardInterrupt), runner:
        runner.run(serve(args.cpu))


if __name__ == "__main__":
    main()
