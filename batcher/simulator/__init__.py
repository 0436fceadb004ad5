"""An X API simulator for ``POST /2/media/upload/initialize`` (aiohttp.web).

It checks requests against the contract, answers in X's shapes, enforces per-token windows
aligned to the clock and an app-wide daily cap, sends the rate-limit headers on every answer,
injects faults (scripted or at seeded rates) and counts what it served::

    async with SimulatorServer(SimulatorConfig(tokens=frozenset({"t"}))) as server:
        server.script([Fault.STATUS_503])        # the next request gets a 503
        ...                                       # talk HTTP to server.url
        assert server.stats().initialized == len(server.issued)
"""

from batcher.simulator.app import authenticate, create_app
from batcher.simulator.config import (
    DEFAULT_TOKEN,
    TOKEN_ENV_VAR,
    SimulatorConfig,
    redact,
    tokens_from_env,
)
from batcher.simulator.faults import Fault, FaultRates
from batcher.simulator.oauth import Identity, OAuth1User, OAuth2App, OAuth2Grant, OAuthConfig
from batcher.simulator.server import SimulatorServer, run_simulator
from batcher.simulator.state import Issued, SimulatorStats
from batcher.simulator.threaded import ThreadedSimulator, start_in_thread
from batcher.simulator.token_endpoint import TOKEN_PATH
from batcher.simulator.validation import Violation, validate_initialize_body

__all__ = [
    "DEFAULT_TOKEN",
    "TOKEN_ENV_VAR",
    "TOKEN_PATH",
    "Fault",
    "FaultRates",
    "Identity",
    "Issued",
    "OAuth1User",
    "OAuth2App",
    "OAuth2Grant",
    "OAuthConfig",
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorStats",
    "ThreadedSimulator",
    "Violation",
    "authenticate",
    "create_app",
    "redact",
    "run_simulator",
    "start_in_thread",
    "tokens_from_env",
    "validate_initialize_body",
]
