"""The process that moves due delayed jobs (RQ `enqueue_in`) onto their queues, five times a second.

RQ's own scheduler loop waits a whole second between passes (its interval is also the base of its
lock expiry, so it cannot be made shorter), and every scheduled check then starts up to a second
late (bench/in_flight.py). This loop keeps RQ's locks and heartbeat at RQ's pace and only moves
due jobs more often: one ZRANGEBYSCORE per queue when nothing is due. One pass of each second
runs just after it starts, when the jobs scheduled for it (slots' jobs among them) fall due.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from redis import Redis
from rq.scheduler import RQScheduler

from workers import defaults
from workers.runtime.queues import SERIALIZER, rq_queue

#: How long after a whole second the pass that moves the jobs due at it runs (sleep's own
#: lateness aside): enough for the clock to have passed that second.
PAST_SECOND = 0.002


def pause(now: float, pass_seconds: float) -> float:
    """Seconds to sleep after a pass at `now`: `pass_seconds`, or less so that a pass runs just
    after the next whole second. RQ keeps a scheduled job's time in whole seconds and slots end
    on them (workers.runtime.queues.slot_of), so that is when a slot's job falls due: moved
    then, not up to a pass later."""
    return max(0.0, min(pass_seconds, math.floor(now) + 1 - now + PAST_SECOND))


class FrequentScheduler(RQScheduler):
    """An RQScheduler whose loop moves due jobs every `pass_seconds` and after each whole second."""

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
            time.sleep(pause(time.time(), self.pass_seconds))  # ok: the scheduler's own pacing
        self.stop()


def run_scheduler(redis: Redis, names: Sequence[str]) -> None:
    """Move the due jobs of the queues `names` until stopped (a SIGTERM)."""
    queues = [rq_queue(name, redis) for name in names]
    scheduler = FrequentScheduler(
        queues, connection=redis, logging_level="WARNING", serializer=SERIALIZER
    )
    scheduler.acquire_locks()
    scheduler.work()
