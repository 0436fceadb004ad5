"""How a simulator behaves: accepted tokens, rate-limit windows, clock, latency and faults.

Everything here is plain data. The fault *rates* can be swapped at runtime
(``SimulatorServer.set_faults``); the rest is fixed for the life of a server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from batcher import contract
from batcher.simulator.faults import FaultRates
from batcher.simulator.oauth import OAuthConfig

DEFAULT_TOKEN = "batcher-simulator-token"
"""The bearer token a standalone simulator accepts when ``BATCHER_SIM_TOKEN`` is unset."""

TOKEN_ENV_VAR = "BATCHER_SIM_TOKEN"
"""Environment variable holding the standalone simulator's token(s), comma separated."""

DEFAULT_HANG_S = 3600.0
APP_WINDOW_SECS = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """A simulator's settings; defaults are the real endpoint's limits and no faults.

    ``oauth`` adds OAuth 2.0 apps, grants and refresh, OAuth 1.0a users and app-only tokens
    (see :mod:`batcher.simulator.oauth`); ``tokens`` stay valid static user tokens.
    ``clock_offset_s`` shifts the server's clock (windows, reset headers, ``Date``) against the
    host's, to test clients that must trust the server's reset rather than their own clock.
    """

    tokens: frozenset[str]
    window_secs: int = contract.USER_WINDOW_SECS
    window_limit: int = contract.USER_WINDOW_LIMIT
    app_daily_limit: int = contract.APP_DAILY_LIMIT
    clock_offset_s: float = 0.0
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    seed: int = 0
    faults: FaultRates = field(default_factory=FaultRates)
    hang_s: float = DEFAULT_HANG_S
    oauth: OAuthConfig = field(default_factory=OAuthConfig)

    def __post_init__(self) -> None:
        if isinstance(self.tokens, str):
            raise TypeError("tokens must be a frozenset of strings, not one string")
        if self.window_secs < 1 or self.window_limit < 0 or self.app_daily_limit < 0:
            raise ValueError("window_secs must be >= 1 and limits >= 0")
        if min(self.latency_s, self.latency_jitter_s, self.hang_s) < 0:
            raise ValueError("latency_s, latency_jitter_s and hang_s must be >= 0")


def tokens_from_env(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Tokens from ``BATCHER_SIM_TOKEN`` (comma separated), else ``{DEFAULT_TOKEN}``."""
    raw = (os.environ if environ is None else environ).get(TOKEN_ENV_VAR, "")
    tokens = frozenset(t.strip() for t in raw.split(",") if t.strip())
    return tokens or frozenset({DEFAULT_TOKEN})


def redact(token: str) -> str:
    """A token safe to print: its first few characters and its length, never the whole."""
    shown = token[: min(4, len(token) // 4)]
    return f"{shown}…({len(token)} chars)"
