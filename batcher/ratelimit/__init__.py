"""Per-account rate gates driven by the API's rate-limit headers.

Every account gets one :class:`AccountGate`, a composite the dispatcher asks, without blocking,
whether a request may go now::

    AccountGate ─┬─ WindowGate   the user's fixed window (x-rate-limit-*), one per account
                 ├─ AppGate      the app-wide 24-hour cap (x-app-limit-24hour-*), shared
                 └─ Pacer        --max-rate, evenly spaced, no initial burst (optional)

Reset times are in the server's clock. :class:`ServerClock` (shared) bounds the offset between
the server's clock and ours from every answer's ``Date`` and reset headers, so a gate reopens
when the *server's* window has turned, whichever way the local clock is off. While the bounds
are wide, each window's last few slots go as *tick probes*, staggered around one whole second
of the server's clock inside the window: their ``Date`` narrows the bounds to a few round
trips, and a window then opens at ``reset - lo`` at the latest, which is never early.

Modules: ``base`` (the :class:`Gate` protocol, defaults), ``clock`` (:class:`ServerClock`),
``window`` (:class:`WindowGate`), ``app`` (:class:`AppGate`), ``pacing`` (:class:`Pacer`),
``gates`` (:class:`AccountGate`, :func:`build_gates`).
"""

from __future__ import annotations

from batcher.ratelimit.app import AppGate, AppLimitInfo, app_limit_of
from batcher.ratelimit.base import DEFAULT_RESET_MARGIN_S, Clock, Gate
from batcher.ratelimit.clock import ServerClock
from batcher.ratelimit.gates import AccountGate, build_gates
from batcher.ratelimit.pacing import Pacer
from batcher.ratelimit.window import WindowGate

__all__ = [
    "DEFAULT_RESET_MARGIN_S",
    "AccountGate",
    "AppGate",
    "AppLimitInfo",
    "Clock",
    "Gate",
    "Pacer",
    "ServerClock",
    "WindowGate",
    "app_limit_of",
    "build_gates",
]
