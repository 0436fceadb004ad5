"""What goes over the wire: exact headers, orjson bodies, the in-flight bound, keep-alive reuse.

A recording server stands in for X here (the simulator checks the contract; this one watches
the client's manners) and counts how many requests it holds at once.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web

from batcher.api import ClientConfig
from batcher.auth import AccountSet, bearer_account
from batcher.runner import Job, RunConfig

pytestmark = pytest.mark.anyio

TOKEN = "wire-token"


@dataclass
class Recorder:
    """What the recording server saw."""

    content_types: set[str] = field(default_factory=set)
    authorizations: set[str] = field(default_factory=set)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    peers: set[object] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10**18))

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.content_types.add(request.headers["Content-Type"])
            self.authorizations.add(request.headers["Authorization"])
            self.peers.add(
                request.transport.get_extra_info("peername") if request.transport else None
            )
            self.bodies.append(orjson.loads(await request.read()))
            await anyio.sleep(0.005)
            data = {"id": str(next(self.ids)), "media_key": "3_1", "expires_after_secs": 86400}
            return web.Response(body=orjson.dumps({"data": data}), content_type="application/json")
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/2/media/upload/initialize", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", recorder
    finally:
        await runner.cleanup()


async def test_requests_are_exact_bounded_and_reuse_connections(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"key": f"k{n}", "media_type": "image/png", "total_bytes": 10 + n, "shared": n % 2 == 0}
        for n in range(200)
    ]
    manifest.write_bytes(b"\n".join(orjson.dumps(row) for row in rows))
    async with recording_server() as (url, recorder):
        job = Job(
            manifest=str(manifest),
            results_path=tmp_path / "out.jsonl",
            accounts=AccountSet(default=bearer_account("default", TOKEN)),
            client_config=ClientConfig(base_url=url, max_in_flight=4),
            config=RunConfig(concurrency=4),
        )
        summary = await job.run()
    assert summary.ok == 200
    assert recorder.content_types == {"application/json"}
    assert recorder.authorizations == {f"Bearer {TOKEN}"}
    assert 1 < recorder.max_in_flight <= 4
    assert len(recorder.peers) <= 4  # keep-alive: a handful of connections for 200 requests
    assert sorted(body["total_bytes"] for body in recorder.bodies) == list(range(10, 210))
    assert recorder.bodies[0].keys() <= {"media_type", "media_category", "total_bytes", "shared"}
