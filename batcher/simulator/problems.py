"""The bodies the simulator answers with, in X's shapes, serialized once where they never change.

Problems are RFC 7807 objects (``type``, ``title``, ``detail``, ``status``) sent as
``application/problem+json``; X uses ``about:blank`` for auth and rate-limit problems and
``https://api.x.com/2/problems/<slug>`` for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson

from batcher import contract
from batcher.simulator.validation import Violation

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
JSON_CONTENT_TYPE: Final = "application/json"
ABOUT_BLANK: Final = "about:blank"
USAGE_CAPPED_TYPE: Final = contract.PROBLEM_TYPE_PREFIX + "usage-capped"
INVALID_REQUEST_DETAIL: Final = "One or more parameters to your request was invalid."

MEDIA_KEY_PREFIXES: Final = {
    "tweet_image": "3",
    "dm_image": "3",
    "tweet_video": "7",
    "dm_video": "7",
    "amplify_video": "7",
    "tweet_gif": "16",
    "dm_gif": "16",
    "subtitles": "18",
}
"""``media_key`` prefix per category: X's 3 (image), 7 (video), 16 (gif); 18 is ours, for
subtitles (X documents none). Without a category the media type decides (see ``media_key``)."""


def problem(*, title: str, detail: str, status: int, type_: str = ABOUT_BLANK) -> bytes:
    """One problem object, serialized."""
    return orjson.dumps({"title": title, "type": type_, "status": status, "detail": detail})


UNAUTHORIZED: Final = problem(title="Unauthorized", detail="Unauthorized", status=401)
TOO_MANY_REQUESTS: Final = problem(
    title="Too Many Requests", detail="Too Many Requests", status=429
)
APP_USAGE_CAPPED: Final = orjson.dumps(
    {
        "title": "UsageCapExceeded",
        "type": USAGE_CAPPED_TYPE,
        "status": 429,
        "detail": "Usage cap exceeded: daily app limit of this endpoint",
        "period": "Daily",
        "scope": "App",
    }
)
SERVER_ERRORS: Final = {
    500: problem(
        title="Internal Error",
        detail="Internal Server Error",
        status=500,
        type_=contract.INTERNAL_ERROR_TYPE,
    ),
    502: problem(title="Bad Gateway", detail="Bad Gateway", status=502),
    503: problem(title="Service Unavailable", detail="Service Unavailable", status=503),
    504: problem(title="Gateway Timeout", detail="Gateway Timeout", status=504),
}
GARBAGE: Final = b"<html><body><h1>Something went wrong</h1></body></html>\n"
NO_ID: Final = orjson.dumps({"data": {}})


def invalid_request(violations: Sequence[Violation]) -> bytes:
    """X's 400 invalid-request problem.

    ``errors[]`` holds one entry per violation (its message names the field; ``parameters`` maps
    the field to the refused value); ``parameter``/``value`` (fields of the spec's
    ``InvalidRequestProblem``) repeat the first one. ``detail`` is X's fixed sentence.
    """
    first = violations[0]
    return orjson.dumps(
        {
            "errors": [
                {"message": v.message, "parameters": {v.parameter: [v.value]}} for v in violations
            ],
            "title": "Invalid Request",
            "detail": INVALID_REQUEST_DETAIL,
            "type": contract.INVALID_REQUEST_TYPE,
            "status": 400,
            "parameter": first.parameter,
            "value": first.value,
        }
    )


def initialized(media_id: str, media_type: str, media_category: str | None) -> bytes:
    """The 200 body for a new upload session."""
    expires = (
        contract.EXPIRES_AFTER_SECS_AMPLIFY
        if media_category == "amplify_video"
        else contract.EXPIRES_AFTER_SECS_DEFAULT
    )
    key = media_key(media_id, media_type, media_category)
    return orjson.dumps({"data": {"id": media_id, "media_key": key, "expires_after_secs": expires}})


def media_key(media_id: str, media_type: str, media_category: str | None) -> str:
    """``<prefix>_<id>``; the prefix comes from the category, else from the media type."""
    if media_category is not None:
        return f"{MEDIA_KEY_PREFIXES[media_category]}_{media_id}"
    if media_type == "image/gif":
        return f"16_{media_id}"
    major = media_type.partition("/")[0]
    prefix = {"image": "3", "video": "7", "text": "18"}.get(major, "3")
    return f"{prefix}_{media_id}"
