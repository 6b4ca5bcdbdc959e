"""A short Redis lock so one deployment's jobs never act on AWS at the same time."""

from __future__ import annotations

import contextlib

from redis import Redis
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from workers import defaults

#: How often a waiting job looks at the lock again (seconds).
POLL = 0.02


class RunLock(Lock):
    """redis-py's Lock (SET NX PX with an owner token, released by its owner only), not waiting
    unless asked (`acquire(blocking_timeout=...)`), and whose release forgives a lock that
    expired meanwhile: its job has nothing left to give back."""

    def __init__(self, redis: Redis, key: str, ttl: float = defaults.RUN_LOCK_SECONDS) -> None:
        super().__init__(redis, key, timeout=ttl, sleep=POLL, blocking_timeout=0)

    def release(self) -> None:
        """Give the lock up if this instance still owns it."""
        with contextlib.suppress(LockNotOwnedError):
            super().release()
