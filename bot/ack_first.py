"""Acks before work: the work that follows an ack waits while requests are arriving.

An ack costs the bot about a millisecond of CPU; the work after it (Redis, the engine's API, the
answer to Slack) costs ten times that. One process has one interpreter lock, so in a burst of
commands the acks still waiting would queue behind the work of those already acked. Work
threads therefore start a job only once no request is being dispatched and none has arrived for
`quiet` seconds (a burst's requests come a few milliseconds apart), or after `max_wait` seconds,
so that a steady stream of requests cannot starve them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: How long no request must have arrived before work starts.
QUIET = 0.01
#: The longest a job waits for the acks before it runs anyway.
MAX_WAIT = 0.25


class AckFirst:
    def __init__(self, quiet: float = QUIET, max_wait: float = MAX_WAIT) -> None:
        self.quiet = quiet
        self.max_wait = max_wait
        self._acking = 0
        self._last_arrival = float("-inf")
        self._changed = threading.Condition()

    @contextmanager
    def acking(self) -> Iterator[None]:
        """Around the dispatch of one request."""
        with self._changed:
            self._acking += 1
            self._last_arrival = time.monotonic()
        try:
            yield
        finally:
            with self._changed:
                self._acking -= 1
                self._changed.notify_all()

    def wait_for_acks(self) -> bool:
        """Block until the acks are done and a quiet moment began; False if `max_wait` ran out."""
        deadline = time.monotonic() + self.max_wait
        with self._changed:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return False
                quiet_in = self._last_arrival + self.quiet - now
                if self._acking == 0 and quiet_in <= 0:
                    return True
                timeout = min(deadline - now, quiet_in if self._acking == 0 else deadline - now)
                self._changed.wait(timeout)
