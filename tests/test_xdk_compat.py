"""The official SDK (xdk, synchronous requests) against the simulator running in a thread.

Proves the simulator's answers satisfy the real client's pydantic models, and that its errors
are errors to that client too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from batcher import contract
from batcher.simulator import Fault, SimulatorConfig, ThreadedSimulator, start_in_thread

xdk = pytest.importorskip("xdk", reason="xdk (the official SDK) is not installed")

TOKEN = "xdk-test-token"


@pytest.fixture(scope="module")
def threaded() -> Iterator[ThreadedSimulator]:
    simulator = start_in_thread(SimulatorConfig(tokens=frozenset({TOKEN})))
    try:
        yield simulator
    finally:
        simulator.stop()


@contextmanager
def xdk_client(url: str, token: str = TOKEN) -> Iterator[Any]:
    """The real SDK client, its requests session closed afterwards."""
    client = xdk.Client(base_url=url, access_token=token)
    try:
        yield client
    finally:
        client.session.close()


def response_of(caught: pytest.ExceptionInfo[requests.HTTPError]) -> requests.Response:
    response = caught.value.response
    assert response is not None
    return response


@pytest.mark.parametrize(
    ("media_type", "category", "prefix", "expires"),
    [
        pytest.param(
            "image/png", "tweet_image", "3", contract.EXPIRES_AFTER_SECS_DEFAULT, id="img"
        ),
        pytest.param("image/gif", "dm_gif", "16", contract.EXPIRES_AFTER_SECS_DEFAULT, id="gif"),
        pytest.param(
            "video/mp4", "amplify_video", "7", contract.EXPIRES_AFTER_SECS_AMPLIFY, id="amplify"
        ),
    ],
)
def test_xdk_parses_the_initialize_answer(
    threaded: ThreadedSimulator, media_type: str, category: str, prefix: str, expires: int
) -> None:
    with xdk_client(threaded.url, TOKEN) as client:
        body = xdk.media.models.InitializeUploadRequest(
            media_type=media_type, media_category=category, total_bytes=2048, shared=False
        )
        response = client.media.initialize_upload(body=body)
        assert isinstance(response, xdk.media.models.InitializeUploadResponse)
        data = response.data
        assert contract.MEDIA_ID_PATTERN.fullmatch(data.id)
        assert data.media_key == f"{prefix}_{data.id}"
        assert data.expires_after_secs == expires
        issued = threaded.issued()[data.id]
        assert issued.token == TOKEN
        assert issued.body == body.model_dump(exclude_none=True)


def test_xdk_raises_on_an_unknown_token(threaded: ThreadedSimulator) -> None:
    with xdk_client(threaded.url, "not-the-token") as client:
        body = xdk.media.models.InitializeUploadRequest(media_type="image/png", total_bytes=1)
        with pytest.raises(requests.HTTPError) as caught:
            client.media.initialize_upload(body=body)
        assert response_of(caught).status_code == 401


def test_xdk_raises_on_an_invalid_body(threaded: ThreadedSimulator) -> None:
    with xdk_client(threaded.url, TOKEN) as client:
        # xdk's model checks enums but not bounds: the simulator is the one to refuse this.
        body = xdk.media.models.InitializeUploadRequest(
            media_type="image/png", total_bytes=contract.TOTAL_BYTES_MAX + 1
        )
        with pytest.raises(requests.HTTPError) as caught:
            client.media.initialize_upload(body=body)
        response = response_of(caught)
        assert response.status_code == 400
        assert response.json()["type"] == contract.INVALID_REQUEST_TYPE
        assert response.headers["x-rate-limit-remaining"].isdigit()


def test_xdk_sees_a_scripted_server_error(threaded: ThreadedSimulator) -> None:
    with xdk_client(threaded.url, TOKEN) as client:
        body = xdk.media.models.InitializeUploadRequest(media_type="image/png", total_bytes=1)
        threaded.script([Fault.STATUS_503])
        with pytest.raises(requests.HTTPError) as caught:
            client.media.initialize_upload(body=body)
        assert response_of(caught).status_code == 503
        assert client.media.initialize_upload(body=body).data.id
        assert threaded.stats().faults[Fault.STATUS_503] == 1


def test_threaded_simulator_stops_cleanly() -> None:
    with ThreadedSimulator(SimulatorConfig(tokens=frozenset({TOKEN}))) as simulator:
        url = simulator.url
        assert url.startswith("http://127.0.0.1:")
    simulator.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.post(url + contract.INITIALIZE_PATH, json={}, timeout=2)


def test_threaded_simulator_reports_a_port_in_use(threaded: ThreadedSimulator) -> None:
    port = int(threaded.url.rpartition(":")[2])
    clash = ThreadedSimulator(SimulatorConfig(tokens=frozenset({TOKEN})), port=port)
    with pytest.raises(RuntimeError, match="could not start"):
        clash.start()
    clash.stop()
