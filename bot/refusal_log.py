"""A warning per refused request, at most one per interval in a flood (with a count of the rest).

Shared by the Slack door (`bot/app.py`, refused signatures) and the CI door (`bot/ci_api.py`,
refused tokens); neither line carries what was refused.
"""

from __future__ import annotations

import logging
import threading
import time

#: Refusals are logged at most once per this many seconds (with a count), so that a flood of
#: forged requests cannot flood the log.
REFUSAL_LOG_INTERVAL = 10.0


class RefusalLog:
    """Logs `message` (a %-format with one `%s` for the count's suffix) on `logger` as a warning."""

    def __init__(
        self, logger: logging.Logger, message: str, interval: float = REFUSAL_LOG_INTERVAL
    ) -> None:
        self.logger = logger
        self.message = message
        self.interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._unlogged = 0

    def note(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval:
                self._unlogged += 1
                return
            also, self._unlogged, self._last = self._unlogged, 0, now
        more = f" (and {also} more in the last {self.interval:g} s)" if also else ""
        self.logger.warning(self.message, more)
