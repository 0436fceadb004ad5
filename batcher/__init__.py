"""batcher: start X API v2 media uploads in bulk.

A manifest of media files goes in; one ``POST /2/media/upload/initialize`` per row goes out,
concurrently and under the API's rate limits; one JSON line per row comes back in a results file.
"""

from batcher.accounts import load_accounts
from batcher.api import Answer, ClientConfig, InitializeClient, RateLimitInfo
from batcher.auth import (
    Account,
    AccountSet,
    BearerToken,
    Credentials,
    bearer_account,
    default_credentials_from_env,
    load_default_account,
)
from batcher.auth_failures import describe_auth_failure
from batcher.credentials import parse_credentials
from batcher.errors import (
    ApiError,
    BadResponse,
    BatcherError,
    ClientRejected,
    ConfigError,
    CredentialsError,
    ManifestError,
    RefreshTokenRevoked,
    RequestTimeout,
    ResultsError,
    ResultsWriteError,
    TokenEndpointError,
    TokenStoreError,
    TransportError,
)
from batcher.journal import ResumePolicy
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
from batcher.oauth1 import OAuth1Credentials
from batcher.oauth2 import OAuth2RefreshingCredentials, RefreshPolicy
from batcher.ratelimit import AccountGate, Gate, WindowGate, build_gates
from batcher.results import FsyncPolicy
from batcher.runner import Job, RunConfig, RunSummary
from batcher.sniff import sniff_media_type
from batcher.token_endpoint import OAuth2Client

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AccountGate",
    "AccountSet",
    "Answer",
    "ApiError",
    "BadResponse",
    "BatcherError",
    "BearerToken",
    "ClientConfig",
    "ClientRejected",
    "ConfigError",
    "Credentials",
    "CredentialsError",
    "ErrorInfo",
    "FsyncPolicy",
    "Gate",
    "InitializeClient",
    "InitializeRequest",
    "Initialized",
    "InvalidRow",
    "Job",
    "Manifest",
    "ManifestError",
    "ManifestRecord",
    "OAuth1Credentials",
    "OAuth2Client",
    "OAuth2RefreshingCredentials",
    "RateLimitInfo",
    "RefreshPolicy",
    "RefreshTokenRevoked",
    "RequestTimeout",
    "ResultsError",
    "ResultsWriteError",
    "ResumePolicy",
    "RunConfig",
    "RunSummary",
    "Status",
    "TokenEndpointError",
    "TokenStoreError",
    "TransportError",
    "WindowGate",
    "WorkItem",
    "__version__",
    "bearer_account",
    "build_gates",
    "default_credentials_from_env",
    "describe_auth_failure",
    "inspect_record",
    "load_accounts",
    "load_default_account",
    "open_manifest",
    "parse_credentials",
    "sniff_media_type",
]
