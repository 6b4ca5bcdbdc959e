"""The installation's ceiling on AWS calls a second (CANARY_AWS_CALLS_PER_SECOND): one token
bucket in Redis that every worker process takes from before each AWS call (a botocore
`before-call` hook on the engine's clients, installed by workers.runtime.context).

When the budget binds, a call waits for its token (a check starts a little later); a job that
would wait longer than BUDGET_MAX_WAIT_SECONDS raises BudgetExhausted and the runner puts it
back on its queue, so no check is dropped. A rollback's calls (the high queue's steps, marked
with `urgent_calls`) never wait: they take their token at once, into debt if need be, which the
calls after them pay back, so the fleet's average stays under the ceiling and no rollback is
slowed by the checks of a thousand other deployments.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from typing import Any

from redis import Redis

from workers import defaults

# Hand-written: the take must be one atomic step across processes (neither redis-py nor RQ has
# a rate limiter), and reading Redis's own clock spares the processes from agreeing on time.
_TAKE = """
local rate, burst, urgent = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
elseif urgent then
  tokens = math.max(tokens - 1, -burst)
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(2 * burst / rate) + 60)
return tostring(wait)
"""

_urgent: contextvars.ContextVar[bool] = contextvars.ContextVar("canary_urgent_calls", default=False)


class BudgetExhausted(Exception):
    """The call budget would make this job wait too long: run it again after `retry_after`."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"AWS call budget exhausted; again in {retry_after:.1f}s")
        self.retry_after = retry_after


@contextlib.contextmanager
def urgent_calls(urgent: bool = True) -> Iterator[None]:
    """AWS calls made inside (in this thread) take their token without waiting: rollbacks."""
    token = _urgent.set(urgent)
    try:
        yield
    finally:
        _urgent.reset(token)


class CallBudget:
    """A token bucket of `rate` calls a second (bursts of `burst`) shared through Redis."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: float,
        *,
        burst: float | None = None,
        max_wait: float = defaults.BUDGET_MAX_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be above 0 calls a second, got {rate!r}")
        self.key, self.rate = key, float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.max_wait, self.sleep = max_wait, sleep
        self._take = redis.register_script(_TAKE)

    def take(self, *, urgent: bool = False) -> float:
        """Try to take one token: 0 when taken, else the seconds until one is there."""
        wait = self._take(keys=[self.key], args=[self.rate, self.burst, "1" if urgent else "0"])
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    def acquire(self) -> float:
        """Take a token for one call, waiting for it (urgent calls never wait); the seconds
        waited. BudgetExhausted when the wait would exceed `max_wait`."""
        urgent, waited = _urgent.get(), 0.0
        while True:
            wait = self.take(urgent=urgent)
            if wait <= 0:
                return waited
            if waited + wait > self.max_wait:
                raise BudgetExhausted(retry_after=max(1.0, wait))
            self.sleep(wait)  # ok: spreading this thread's AWS calls is the point
            waited += wait

    def before_call(self, **_: Any) -> None:
        """botocore's `before-call` hook: one token per API call."""
        self.acquire()

    def install(self, *clients: Any) -> None:
        """Hook every API call of `clients` (boto3 clients; None skipped) to this budget."""
        for client in clients:
            if client is not None:
                client.meta.events.register("before-call", self.before_call)
