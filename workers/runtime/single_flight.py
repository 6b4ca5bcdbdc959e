"""A call that runs at most once at a time, in a thread of its own, waited for at most a timeout.

A dependency that hangs (Redis) must not hold a server thread per request: while one call is
still running, later callers wait on that same one. Used by the /metrics Redis gauges
(workers.runtime.telemetry) and the web's readiness probe (bot.server.BoundedHealth).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """`work()` at most once at a time; an exception it raises becomes `failed(exc)`'s answer."""

    def __init__(self, work: Callable[[], T], failed: Callable[[Exception], T]) -> None:
        self.work, self.failed = work, failed
        self._running: Future[T] | None = None
        self._lock = threading.Lock()

    def __call__(self, timeout: float) -> T:
        """The running call's answer (a new call when none runs); TimeoutError after `timeout`."""
        with self._lock:
            future = self._running
            if future is None or future.done():
                future = self._running = Future()
                threading.Thread(target=self._run, args=(future,), daemon=True).start()
        return future.result(timeout)

    def _run(self, future: Future[T]) -> None:
        try:
            future.set_result(self.work())
        except Exception as exc:  # the callers get an answer, the thread does not crash
            future.set_result(self.failed(exc))
