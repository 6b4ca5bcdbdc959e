"""Refusals rate-limited per user: past a limit in a window, one "slow down", then silence.

A user who keeps sending refused commands or clicks (a script, a stuck finger, someone probing)
would otherwise make the web process and the engine do work and record a refusal each time.
The count lives in Redis, so every web process sharing it sees the same count: a fixed window
per user (SET NX EX on the first refusal, then INCR, in one MULTI: one round trip). The refusal
just past the limit is answered "slow down" and restarts the window; until it ends, nothing from
that user is processed or recorded. A fixed window is coarse (up to twice the limit across a
window's edge), which is enough against floods and costs one key per user refused lately.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from workers.runtime.telemetry import REFUSALS

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    """What to do with a refusal."""

    ANSWER = "answer"  # tell the person why, as always
    SLOW_DOWN = "slow down"  # tell them to slow down instead, once
    QUIET = "quiet"  # say and record nothing


@dataclass(frozen=True)
class RefusalPolicy:
    """At most `limit` refusals answered per user in `window` seconds."""

    limit: int
    window: float

    def verdict(self, count: int) -> Verdict:
        """The verdict on a user's `count`-th refusal of the current window."""
        if count <= self.limit:
            return Verdict.ANSWER
        if count == self.limit + 1:
            return Verdict.SLOW_DOWN
        return Verdict.QUIET

    def quiet(self, count: int) -> bool:
        """True when a user at `count` refusals is being ignored (after their "slow down")."""
        return count > self.limit


class RefusalLimiter:
    """The per-user refusal counts of one installation, in Redis under its prefix."""

    def __init__(self, redis: Redis, prefix: str, policy: RefusalPolicy) -> None:
        self.redis = redis
        self.prefix = prefix
        self.policy = policy

    def _key(self, user: str) -> str:
        return f"{self.prefix}:refusals:{user}"

    def _seconds(self) -> int:
        return max(1, round(self.policy.window))

    def quiet(self, user: str) -> bool:
        """True when nothing from `user` is to be processed now."""
        try:
            count = self.redis.get(self._key(user))
        except RedisError:
            # Fail open: a limiter that cannot count must not stop an abort.
            log.warning("refusal limiter: Redis did not answer; not limiting")
            return False
        return self.policy.quiet(int(count or 0))

    def refused(self, user: str) -> Verdict:
        """Count one refusal of `user` and say how to treat it."""
        key = self._key(user)
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                # The window starts at the first refusal: SET NX with its expiry, then INCR, which
                # keeps the expiry. (EXPIRE NX would do the same, but needs Redis 7.)
                pipe.set(key, 0, ex=self._seconds(), nx=True)
                pipe.incr(key)
                _, count = pipe.execute()
            verdict = self.policy.verdict(int(count))
            if verdict is Verdict.SLOW_DOWN:
                self.redis.expire(key, self._seconds())  # the pause: a whole window from now
                log.warning(
                    "user %s refused %s times in a window: ignored for %ss",
                    user,
                    count,
                    self._seconds(),
                )
        except RedisError:
            log.warning("refusal limiter: Redis did not answer; not limiting")
            verdict = Verdict.ANSWER
        REFUSALS.labels(verdict.name.lower()).inc()
        return verdict
