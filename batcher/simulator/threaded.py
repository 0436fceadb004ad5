"""A simulator on its own event loop in a daemon thread, for synchronous clients.

The official SDK (``xdk``) and the benchmarks speak blocking HTTP, so they cannot share the
test's event loop with the server::

    with ThreadedSimulator(config) as sim:
        client = xdk.Client(base_url=sim.url, access_token=token)
        ...
        assert sim.stats().initialized == 2

Every accessor runs on the simulator's loop, so reading counters from the caller's thread is
safe while requests are being served.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Self, TypeVar

from batcher.simulator.config import SimulatorConfig
from batcher.simulator.faults import Fault, FaultRates
from batcher.simulator.server import DEFAULT_HOST, SimulatorServer, loop_factory
from batcher.simulator.state import Issued, SimulatorStats

T = TypeVar("T")

DEFAULT_START_TIMEOUT_S = 10.0


class ThreadedSimulator:
    """A ``SimulatorServer`` served from a daemon thread; ``start()`` returns its URL."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        self._server = SimulatorServer(config, host=host, port=port)
        self._start_timeout_s = start_timeout_s
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL of the running simulator."""
        return self._server.url

    def start(self) -> str:
        """Start the thread and wait until the server listens; returns the URL."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="batcher-simulator", daemon=True)
            self._thread.start()
        if not self._ready.wait(self._start_timeout_s):
            raise TimeoutError("the simulator thread did not start in time")
        if self._failure is not None:
            raise RuntimeError("the simulator could not start") from self._failure
        return self.url

    def stop(self) -> None:
        """Shut the server down and wait for the thread; idempotent."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return
        self._loop = None
        loop.call_soon_threadsafe(stop.set)
        thread.join(self._start_timeout_s)

    def call(self, fn: Callable[[SimulatorServer], T]) -> T:
        """Run ``fn(server)`` on the simulator's loop and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the simulator is not running")
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn(self._server))
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(self._start_timeout_s)

    def stats(self) -> SimulatorStats:
        """A snapshot of what was served so far."""
        return self.call(SimulatorServer.stats)

    def issued(self) -> Mapping[str, Issued]:
        """A copy of media id → the token and body it was issued for."""
        return self.call(lambda server: dict(server.issued))

    def script(self, faults: Iterable[Fault]) -> None:
        """Queue faults for the next requests (see ``SimulatorServer.script``)."""
        queued = tuple(faults)
        self.call(lambda server: server.script(queued))

    def set_faults(self, rates: FaultRates | None = None) -> None:
        """Replace the random fault rates (see ``SimulatorServer.set_faults``)."""
        self.call(lambda server: server.set_faults(rates))

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(self._serve())
        except BaseException as exc:
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self._server:
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(
    config: SimulatorConfig, *, host: str = DEFAULT_HOST, port: int = 0
) -> ThreadedSimulator:
    """A started ``ThreadedSimulator``: use ``.url``, and ``.stop()`` when done."""
    simulator = ThreadedSimulator(config, host=host, port=port)
    simulator.start()
    return simulator
