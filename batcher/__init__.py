"""batcher: start X API v2 media uploads in bulk.

A manifest of media files goes in; one ``POST /2/media/upload/initialize`` per row goes out,
concurrently and under the API's rate limits; one JSON line per row comes back in a results file.
"""

from batcher.api import Answer, ClientConfig, InitializeClient, RateLimitInfo
from batcher.auth import (
    Account,
    AccountSet,
    BearerToken,
    Credentials,
    bearer_account,
    load_default_account,
)
from batcher.errors import (
    ApiError,
    BadResponse,
    BatcherError,
    ConfigError,
    ManifestError,
    RequestTimeout,
    ResultsError,
    TransportError,
)
from batcher.manifest import Manifest, open_manifest
from batcher.media import inspect_record
from batcher.models import (
    ErrorInfo,
    Initialized,
    InitializeRequest,
    InvalidRow,
    ManifestRecord,
    Status,
    WorkItem,
)
from batcher.ratelimit import WindowGate
from batcher.runner import Job, RunConfig, RunSummary
from batcher.sniff import sniff_media_type

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AccountSet",
    "Answer",
    "ApiError",
    "BadResponse",
    "BatcherError",
    "BearerToken",
    "ClientConfig",
    "ConfigError",
    "Credentials",
    "ErrorInfo",
    "InitializeClient",
    "InitializeRequest",
    "Initialized",
    "InvalidRow",
    "Job",
    "Manifest",
    "ManifestError",
    "ManifestRecord",
    "RateLimitInfo",
    "RequestTimeout",
    "ResultsError",
    "RunConfig",
    "RunSummary",
    "Status",
    "TransportError",
    "WindowGate",
    "WorkItem",
    "__version__",
    "bearer_account",
    "inspect_record",
    "load_default_account",
    "open_manifest",
    "sniff_media_type",
]
