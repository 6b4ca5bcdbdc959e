"""The process that moves due delayed jobs (RQ `enqueue_in`) onto their queues, five times a second.

RQ's own scheduler loop waits a whole second between passes (its interval is also the base of its
lock expiry, so it cannot be made shorter), and every scheduled check then starts up to a second
late (bench/in_flight.py). This loop keeps RQ's locks and heartbeat at RQ's pace and only moves
due jobs more often: one ZRANGEBYSCORE per queue when nothing is due.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redis import Redis
from rq.scheduler import RQScheduler

from workers import defaults
from workers.runtime.queues import SERIALIZER, rq_queue


class FrequentScheduler(RQScheduler):
    """An RQScheduler whose loop moves due jobs every `pass_seconds`."""

    pass_seconds: float = defaults.SCHEDULER_INTERVAL_SECONDS

    def work(self) -> None:
        self._install_signal_handlers()
        self.register_birth()
        next_heartbeat = 0.0
        while not self._stop_requested:
            now = time.monotonic()
            if now >= next_heartbeat:
                # Locks may belong to a scheduler that died: try again at RQ's own pace.
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                next_heartbeat = now + self.interval
            self.enqueue_scheduled_jobs()
            time.sleep(self.pass_seconds)  # ok: the scheduler process's own pacing
        self.stop()


def run_scheduler(redis: Redis, names: Sequence[str]) -> None:
    """Move the due jobs of the queues `names` until stopped (a SIGTERM)."""
    queues = [rq_queue(name, redis) for name in names]
    scheduler = FrequentScheduler(
        queues, connection=redis, logging_level="WARNING", serializer=SERIALIZER
    )
    scheduler.acquire_locks()
    scheduler.work()
