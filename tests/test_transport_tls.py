"""TLS on the fast path: certificates are verified, host names checked, keep-alive kept.

The server is an aiohttp.web app on 127.0.0.1 with a certificate from a throwaway CA made by
``trustme`` (skipped where trustme is not installed).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
from aiohttp import web

from batcher.api import ClientConfig, InitializeClient
from batcher.errors import TransportError
from batcher.models import Initialized, InitializeRequest

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.anyio

REQUEST = InitializeRequest(media_type="image/png", media_category="tweet_image", total_bytes=7)


async def handle(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    assert request.headers["Content-Type"] == "application/json"
    data = {"id": str(body["total_bytes"]), "expires_after_secs": 86400}
    return web.Response(body=orjson.dumps({"data": data}), content_type="application/json")


@asynccontextmanager
async def tls_server(identity: str) -> AsyncIterator[tuple[str, ssl.SSLContext, list[object]]]:
    """An https server whose certificate names ``identity``; yields its URL and a trusting ctx."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(identity).configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    peers: list[object] = []

    async def recording_handle(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return await handle(request)

    app = web.Application()
    app.router.add_post("/2/media/upload/initialize", recording_handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}", client_context, peers
    finally:
        await runner.cleanup()


async def test_https_with_a_trusted_certificate_keeps_alive() -> None:
    async with tls_server("127.0.0.1") as (url, trusting, peers):
        config = ClientConfig(base_url=url, ssl_context=trusting, timeout_s=5)
        async with InitializeClient(config) as client:
            for _ in range(5):
                answer = await client.initialize(REQUEST, authorization="Bearer t")
                assert isinstance(answer.result, Initialized)
                assert answer.result.media_id == "7"
    assert len(set(peers)) == 1


async def test_an_untrusted_certificate_is_refused() -> None:
    async with (
        tls_server("127.0.0.1") as (url, _trusting, peers),
        InitializeClient(ClientConfig(base_url=url, timeout_s=5)) as client,
    ):
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.initialize(REQUEST, authorization="Bearer t")
    assert peers == []


async def test_a_certificate_for_another_host_is_refused() -> None:
    async with tls_server("api.example.org") as (url, trusting, peers):
        config = ClientConfig(base_url=url, ssl_context=trusting, timeout_s=5)
        async with InitializeClient(config) as client:
            with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.initialize(REQUEST, authorization="Bearer t")
    assert peers == []
