"""A short Redis lock so one deployment's jobs never act on AWS at the same time."""

from __future__ import annotations

import secrets
import time

from redis import Redis

from workers import defaults

_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
#: How often a waiting job looks at the lock again (seconds).
POLL = 0.02


class RunLock:
    """SET NX with an owner token and an expiry, released only by its owner."""

    def __init__(self, redis: Redis, key: str, ttl: float = defaults.RUN_LOCK_SECONDS) -> None:
        self.redis, self.key, self.ttl = redis, key, ttl
        self.token = secrets.token_hex(8)

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, waiting up to `wait` seconds for its holder to finish."""
        deadline = time.monotonic() + wait
        while True:
            if self.redis.set(self.key, self.token, nx=True, px=int(self.ttl * 1000)):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)  # ok: bounded wait for a sibling job's single AWS call

    def release(self) -> None:
        """Give the lock up if this instance still owns it."""
        self.redis.eval(_RELEASE, 1, self.key, self.token)
