"""How late jobs start compared with when they were due: a capped sample kept in Redis."""

from __future__ import annotations

import math

from redis import Redis

#: How many recent samples are kept (the newest first).
SAMPLES = 5000


def key(prefix: str) -> str:
    return f"{prefix}:lateness"


def record(redis: Redis, prefix: str, *seconds: float) -> None:
    """Remember that jobs started `seconds` after they were due (one round trip for all)."""
    if not seconds:
        return
    with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(key(prefix), *(f"{max(s, 0.0):.4f}" for s in seconds))
        pipe.ltrim(key(prefix), 0, SAMPLES - 1)
        pipe.execute()


def samples(redis: Redis, prefix: str) -> list[float]:
    """The recent samples, newest first."""
    return [float(v) for v in redis.lrange(key(prefix), 0, -1)]


def percentile(values: list[float], pct: float) -> float | None:
    """The `pct` percentile (nearest rank) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]
