"""Running the simulator: in-process (``SimulatorServer``) and standalone (``run_simulator``).

``SimulatorServer`` is shaped like aiohttp's ``BaseTestServer``: it binds ``127.0.0.1:0`` by
default, is an async context manager, and ``aclose()`` is idempotent and prompt even with
hanging requests in flight (hangs are released, their connections dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Self

from aiohttp import web

from batcher.simulator.app import create_app
from batcher.simulator.config import SimulatorConfig, redact, tokens_from_env
from batcher.simulator.faults import Fault, FaultRates
from batcher.simulator.state import Clock, Issued, SimulatorState, SimulatorStats

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SHUTDOWN_TIMEOUT_S = 1.0
_BACKLOG = 1024


class SimulatorServer:
    """An X API simulator listening on a local port.

    ``clock`` replaces the host clock (``time.time``) for tests that fake time; the server's
    clock is ``clock() + config.clock_offset_s``.
    """

    __slots__ = ("_host", "_port", "_runner", "_shutdown_timeout_s", "_state")

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        clock: Clock = time.time,
        shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
    ) -> None:
        self._state = SimulatorState(config, clock=clock)
        self._host = host
        self._port = port
        self._shutdown_timeout_s = shutdown_timeout_s
        self._runner: web.AppRunner | None = None

    @property
    def config(self) -> SimulatorConfig:
        """The settings this server was started with."""
        return self._state.config

    @property
    def state(self) -> SimulatorState:
        """The live state (windows, fault plan, counters), for tests that need to look inside."""
        return self._state

    @property
    def port(self) -> int:
        """The bound port (the real one once started, even when asked for port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give a client, like ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._runner is None:
            raise RuntimeError("the simulator is not running: call start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def issued(self) -> Mapping[str, Issued]:
        """A live read-only view: media id → the token and body it was issued for."""
        return MappingProxyType(self._state.issued)

    def stats(self) -> SimulatorStats:
        """A snapshot of what was served so far."""
        return self._state.stats()

    def script(self, faults: Iterable[Fault]) -> None:
        """Queue faults for the next authenticated requests, ahead of any random draw.

        ``server.script([Fault.STATUS_503, Fault.RESET])``: the next request gets a 503, the one
        after is reset, then the configured rates apply again. ``Fault.NONE`` answers normally.
        """
        self._state.faults.script(faults)

    def clear_script(self) -> None:
        """Drop the scripted faults not used yet."""
        self._state.faults.clear_script()

    def set_faults(self, rates: FaultRates | None = None) -> None:
        """Replace the random fault rates from the next request on (``None``: no faults)."""
        self._state.faults.set_rates(rates or FaultRates())

    async def start(self) -> None:
        """Bind and start serving; a second call does nothing."""
        if self._runner is not None:
            return
        runner = web.AppRunner(
            create_app(self._state),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout_s,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, backlog=_BACKLOG)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        """Release hanging requests, close every connection and stop; idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._state.closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._runner else "not running"
        return f"<SimulatorServer {where} {self._state!r}>"


def run_simulator(
    config: SimulatorConfig | None = None,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    *,
    print_line: Callable[[str], None] = print,
) -> None:
    """Serve until Ctrl-C or SIGTERM (blocking), for ``batcher simulate``.

    Without ``config`` the simulator accepts the tokens of ``BATCHER_SIM_TOKEN`` (comma
    separated) or ``DEFAULT_TOKEN``. It prints one line: the URL and the tokens, redacted.
    Uses uvloop when it is installed.
    """
    config = config or SimulatorConfig(tokens=tokens_from_env())
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory()) as r:
        r.run(_serve_until_stopped(config, host, port, print_line))


async def _serve_until_stopped(
    config: SimulatorConfig, host: str, port: int, print_line: Callable[[str], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Not on Windows (NotImplementedError), nor outside the main thread (ValueError).
    with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with SimulatorServer(config, host=host, port=port) as server:
        tokens = ", ".join(sorted(redact(t) for t in config.tokens))
        print_line(f"batcher simulator listening on {server.url} (bearer tokens: {tokens})")
        await stop.wait()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when uvloop is installed (about twice the requests/s), else None."""
    try:
        import uvloop
    except ImportError:
        return None
    new_event_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_event_loop
