"""The aiohttp application: ``POST /2/media/upload/initialize`` as X answers it.

One request goes through, in order::

    latency ─▶ auth ──401 / 403 (not counted, no fault drawn; see ``simulator.oauth``)
                 └─▶ count against user window + app day ─▶ fault? ─▶ app cap 429
                     ─▶ user window 429 ─▶ body check 400 ─▶ 200 with a new id

Every request that passed auth is counted against both windows, whatever its answer (429s,
400s and faults included), as X does; every answer to it carries the rate-limit headers.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import NoReturn

from aiohttp import web

from batcher import contract
from batcher.simulator import problems
from batcher.simulator.faults import Fault
from batcher.simulator.oauth import NO_MEDIA_WRITE, UNAUTHORIZED, Identity, Refusal
from batcher.simulator.state import SimulatorState
from batcher.simulator.token_endpoint import OAUTH_KEY, TOKEN_PATH, handle_token
from batcher.simulator.validation import parse_initialize_body
from batcher.simulator.windows import WindowUsage

STATE_KEY = web.AppKey("batcher_simulator_state", SimulatorState)
_LINGER_RESET = struct.pack("ii", 1, 0)
_STATUS_OF_FAULT = {
    Fault.STATUS_500: 500,
    Fault.STATUS_502: 502,
    Fault.STATUS_503: 503,
    Fault.STATUS_504: 504,
}


def create_app(state: SimulatorState) -> web.Application:
    """An application serving the initialize route from ``state``."""
    app = web.Application()
    app[STATE_KEY] = state
    app[OAUTH_KEY] = state.oauth
    app.router.add_post(contract.INITIALIZE_PATH, handle_initialize)
    app.router.add_post(TOKEN_PATH, handle_token)
    return app


def authenticate(request: web.BaseRequest, state: SimulatorState) -> Identity | Refusal:
    """The identity a request proves, or the 401/403 that refuses it.

    Static user tokens (``config.tokens``, each its own user), then the OAuth world of
    ``config.oauth``: issued OAuth 2.0 tokens, app-only tokens, OAuth 1.0a signatures.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        if credentials in state.config.oauth.no_media_write_tokens:
            return NO_MEDIA_WRITE
        if credentials in state.config.tokens:
            return Identity(user=credentials, scheme="oauth2_user")
        return state.oauth.bearer(credentials)
    if scheme.lower() == "oauth":
        return state.oauth.oauth1(request.method, str(request.url), header)
    return UNAUTHORIZED


async def handle_initialize(request: web.Request) -> web.StreamResponse:
    """Answer one initialize call (see the module docstring for the order of checks)."""
    state = request.app[STATE_KEY]
    state.requests += 1
    config = state.config
    if config.latency_s or config.latency_jitter_s:
        await asyncio.sleep(config.latency_s + state.jitter.uniform(0.0, config.latency_jitter_s))
    now_s = state.now()
    identity = authenticate(request, state)
    if isinstance(identity, Refusal):
        state.unauthorized += identity.status == 401
        headers = {"Date": state.http_date(now_s)}
        return _respond(
            state, identity.status, identity.body, headers, problems.PROBLEM_CONTENT_TYPE
        )
    user, app_day = state.hit_windows(identity.user, now_s)
    headers = _limit_headers(state, now_s, user, app_day)
    fault = state.faults.draw()
    if fault is not Fault.NONE:
        state.faults_injected[fault] += 1
        answer = await _inject(request, state, fault, headers)
        if answer is not None:
            return answer
    return await _answer(request, state, identity, headers, user, app_day)


async def _answer(
    request: web.Request,
    state: SimulatorState,
    identity: Identity,
    headers: dict[str, str],
    user: WindowUsage,
    app_day: WindowUsage,
) -> web.Response:
    if app_day.exceeded or user.exceeded:
        state.rate_limited += 1
        body = problems.APP_USAGE_CAPPED if app_day.exceeded else problems.TOO_MANY_REQUESTS
        return _respond(state, 429, body, headers, problems.PROBLEM_CONTENT_TYPE)
    parsed = parse_initialize_body(await request.read(), request.content_type)
    if isinstance(parsed, tuple):
        state.invalid += 1
        body = problems.invalid_request(parsed)
        return _respond(state, 400, body, headers, problems.PROBLEM_CONTENT_TYPE)
    media_id = state.issue(identity.user, parsed.fields)
    body = problems.initialized(media_id, parsed.media_type, parsed.media_category)
    return _respond(state, 200, body, headers, problems.JSON_CONTENT_TYPE)


async def _inject(
    request: web.Request, state: SimulatorState, fault: Fault, headers: dict[str, str]
) -> web.Response | None:
    """Answer (or not) with ``fault``; ``None`` means "carry on with the normal answer"."""
    if fault is Fault.RESET:
        _reset(request)
    if fault is Fault.HANG:
        if await _hang(state):
            return None
        _reset(request)  # released by shutdown: drop the connection like a dying server
    if fault is Fault.STATUS_429:
        headers["x-rate-limit-remaining"] = "0"
        body = problems.TOO_MANY_REQUESTS
        return _respond(state, 429, body, headers, problems.PROBLEM_CONTENT_TYPE)
    status = _STATUS_OF_FAULT.get(fault)
    if status is not None:
        body = problems.SERVER_ERRORS[status]
        return _respond(state, status, body, headers, problems.PROBLEM_CONTENT_TYPE)
    return _malformed(state, fault, headers)


def _malformed(state: SimulatorState, fault: Fault, headers: dict[str, str]) -> web.Response:
    if fault is Fault.GARBAGE:
        body = problems.GARBAGE
    elif fault is Fault.NO_ID:
        body = problems.NO_ID
    else:
        whole = problems.initialized("1" * 19, "image/png", "tweet_image")
        body = whole[: len(whole) // 2]
    return _respond(state, 200, body, headers, problems.JSON_CONTENT_TYPE)


async def _hang(state: SimulatorState) -> bool:
    """Wait ``hang_s``; ``True`` if it ran out, ``False`` if the server is closing."""
    try:
        await asyncio.wait_for(state.closing.wait(), state.config.hang_s)
    except TimeoutError:
        return True
    return False


def _reset(request: web.Request) -> NoReturn:
    """Drop the connection with a TCP RST, and end the handler without an answer."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()
    # aiohttp treats a cancelled handler as a client that went away: no answer, no log.
    raise asyncio.CancelledError


def _limit_headers(
    state: SimulatorState, now_s: float, user: WindowUsage, app_day: WindowUsage
) -> dict[str, str]:
    return {
        "Date": state.http_date(now_s),
        "x-rate-limit-limit": str(user.limit),
        "x-rate-limit-remaining": str(user.remaining),
        "x-rate-limit-reset": str(user.reset_epoch_s),
        "x-app-limit-24hour-limit": str(app_day.limit),
        "x-app-limit-24hour-remaining": str(app_day.remaining),
        "x-app-limit-24hour-reset": str(app_day.reset_epoch_s),
    }


def _respond(
    state: SimulatorState, status: int, body: bytes, headers: dict[str, str], content_type: str
) -> web.Response:
    state.by_status[status] += 1
    return web.Response(status=status, body=body, headers=headers, content_type=content_type)
