"""A short Redis lock so one deployment's jobs never act on AWS at the same time, kept alive for
as long as its step runs."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.lock import Lock

from workers import defaults
from workers.runtime.queues import JOB_TIMEOUT

log = logging.getLogger(__name__)

#: How often a waiting job looks at the lock again (seconds).
POLL = 0.02
#: A kept lock's time to live is renewed each time this share of it has gone by.
RENEW_SHARE = 1 / 3


def run_lock_key(prefix: str, dep_id: str) -> str:
    """The Redis key of a deployment's run lock (the watchdog looks at it too)."""
    return f"{prefix}:run:{dep_id}"


class RunLock(Lock):
    """redis-py's Lock (SET NX PX with an owner token, released by its owner only), not waiting
    unless asked (`acquire(blocking_timeout=...)`), and whose release forgives a lock that
    expired meanwhile: its job has nothing left to give back.

    Its token is shared by every thread (not redis-py's thread-local one), so that the keeper's
    thread (`kept`) can renew a lock taken by a job's thread."""

    def __init__(self, redis: Redis, key: str, ttl: float = defaults.RUN_LOCK_SECONDS) -> None:
        super().__init__(
            redis, key, timeout=ttl, sleep=POLL, blocking_timeout=0, thread_local=False
        )

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


@dataclass
class _Held:
    lock: RunLock
    since: float
    renewed: float


class _Keeper:
    """One thread per process renewing the run locks of the steps running in it.

    The lock's time to live is what a crashed job leaves behind; a step that runs longer
    (AWS slow to answer, a machine under load) keeps its lock as long as it runs, so neither
    the watchdog nor a re-run takes its deployment over meanwhile. Up to `longest` seconds:
    past RQ's job timeout the step counts as lost, and its lock is left to expire.
    """

    def __init__(self, longest: float = JOB_TIMEOUT) -> None:
        self.longest = longest
        self._held: dict[int, _Held] = {}
        self._mutex = threading.Lock()
        #: Set when a lock is added that cannot wait as long as the thread's current wait:
        #: its next round is then at once.
        self._added = threading.Event()
        self._thread: threading.Thread | None = None
        #: How long the thread's current wait is (seconds).
        self._waiting = 0.0

    def add(self, lock: RunLock) -> None:
        now = time.monotonic()
        with self._mutex:
            self._held[id(lock)] = _Held(lock, now, now)
            # Woken only when its wait is too long for this lock (every check takes one: a
            # wake each would cost more than the renewals).
            if self._pause(float(lock.timeout or 0)) < self._waiting:
                self._added.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="run-locks", daemon=True)
                self._thread.start()

    @staticmethod
    def _pause(ttl: float) -> float:
        """How long the thread may wait with a lock of `ttl` seconds held."""
        return max(0.02, min(1.0, ttl * RENEW_SHARE / 2))

    def remove(self, lock: RunLock) -> None:
        with self._mutex:
            self._held.pop(id(lock), None)

    def _run(self) -> None:
        while True:
            with self._mutex:
                shortest = min((float(h.lock.timeout or 0) for h in self._held.values()), default=6)
                self._waiting = self._pause(shortest)
            self._added.wait(self._waiting)
            self._added.clear()
            with self._mutex:
                held = list(self._held.values())
            for h in held:  # only those a third of whose time to live has gone by
                self._renew(h)

    def _renew(self, h: _Held) -> None:
        now = time.monotonic()
        ttl = float(h.lock.timeout or 0)
        if now - h.renewed < ttl * RENEW_SHARE:
            return
        if now - h.since > self.longest:
            log.error(
                "run lock %s held for %.0fs, past the job timeout: no longer renewed",
                h.lock.name,
                now - h.since,
            )
            self.remove(h.lock)
            return
        try:
            h.lock.reacquire()
        except LockError:  # released meanwhile, or expired and taken: nothing left to keep
            self.remove(h.lock)
            return
        except RedisError as exc:  # Redis unreachable for a moment: tried again next round
            log.warning("run lock %s not renewed: %s", h.lock.name, exc)
            return
        h.renewed = now


_KEEPER = _Keeper()


@contextlib.contextmanager
def kept(lock: RunLock) -> Iterator[RunLock]:
    """Keep `lock` (acquired) alive while the block runs."""
    _KEEPER.add(lock)
    try:
        yield lock
    finally:
        _KEEPER.remove(lock)
