"""Facts about ``POST /2/media/upload/initialize`` that client and simulator share.

Written from the official OpenAPI description (``InitializeMediaUploadRequest`` and friends);
``tests/test_contract_conformance.py`` checks every constant here against that document, so a
change in the spec shows up as a failing test rather than a silent drift.
"""

from __future__ import annotations

import re
from typing import Final

INITIALIZE_PATH: Final = "/2/media/upload/initialize"
DEFAULT_BASE_URL: Final = "https://api.x.com"

MEDIA_TYPES: Final = frozenset(
    {
        "video/mp4",
        "video/webm",
        "video/mp2t",
        "video/quicktime",
        "text/srt",
        "text/vtt",
        "image/jpeg",
        "image/gif",
        "image/bmp",
        "image/png",
        "image/webp",
        "image/pjpeg",
        "image/tiff",
        "model/gltf-binary",
        "model/vnd.usdz+zip",
    }
)

MEDIA_CATEGORIES: Final = frozenset(
    {
        "amplify_video",
        "tweet_gif",
        "tweet_image",
        "tweet_video",
        "dm_gif",
        "dm_image",
        "dm_video",
        "subtitles",
    }
)

REQUEST_FIELDS: Final = frozenset(
    {"media_type", "total_bytes", "media_category", "additional_owners", "shared"}
)
TOTAL_BYTES_MIN: Final = 0
TOTAL_BYTES_MAX: Final = 17_179_869_184
USER_ID_PATTERN: Final = re.compile(r"^[0-9]{1,19}$")
MEDIA_ID_PATTERN: Final = re.compile(r"^[0-9]{1,19}$")

# Upload sessions live a day for post media and fifteen days for amplify video (X's docs).
EXPIRES_AFTER_SECS_DEFAULT: Final = 86_400
EXPIRES_AFTER_SECS_AMPLIFY: Final = 1_295_999

# Rate limits of the initialize endpoint (X's docs): per user per window, per app per day.
USER_WINDOW_LIMIT: Final = 1_875
USER_WINDOW_SECS: Final = 900
APP_DAILY_LIMIT: Final = 180_000

PROBLEM_TYPE_PREFIX: Final = "https://api.x.com/2/problems/"
INVALID_REQUEST_TYPE: Final = PROBLEM_TYPE_PREFIX + "invalid-request"
INTERNAL_ERROR_TYPE: Final = PROBLEM_TYPE_PREFIX + "internal-error"
RESOURCE_UNAVAILABLE_TYPE: Final = PROBLEM_TYPE_PREFIX + "resource-unavailable"
