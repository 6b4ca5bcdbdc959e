"""A short Redis lock so one deployment's jobs never act on AWS at the same time."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence

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

    @property
    def held(self) -> bool:
        """Whether this instance took the lock and has not given it up."""
        return self.local.token is not None


# A slot job runs a chunk of checks: their locks are taken and given back in one round trip each
# way, with Lock's own SET NX PX and release script (not one round trip per lock and way).
def acquire_all(redis: Redis, locks: Sequence[RunLock]) -> list[bool]:
    """Try each lock once, without waiting; whether each was taken."""
    if not locks:
        return []
    tokens = [uuid.uuid1().hex.encode() for _ in locks]
    with redis.pipeline(transaction=False) as pipe:
        for lock, token in zip(locks, tokens, strict=True):
            pipe.set(lock.name, token, nx=True, px=int(lock.timeout * 1000))
        won = [bool(w) for w in pipe.execute()]
    for lock, token, taken in zip(locks, tokens, won, strict=True):
        if taken:
            lock.local.token = token
    return won


def release_all(redis: Redis, locks: Iterable[RunLock]) -> None:
    """Give up every lock still held; one that expired meanwhile is forgiven, as in release."""
    held = [(lock, lock.local.token) for lock in locks if lock.held]
    if not held:
        return
    with redis.pipeline(transaction=False) as pipe:
        for lock, token in held:
            lock.local.token = None
            assert lock.lua_release is not None  # registered by Lock.__init__
            lock.lua_release(keys=[lock.name], args=[token], client=pipe)
        pipe.execute()
