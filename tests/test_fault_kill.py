"""A few SIGKILL trials in CI (the long run is `python -m tests.kill_trials --trials 200`)."""

from __future__ import annotations

from pathlib import Path

import redis as redis_lib

from tests.conftest import REAL_REDIS_URL
from tests.kill_trials import run


def test_worker_killed_at_random_points_loses_nothing(tmp_path: Path) -> None:
    redis_lib.Redis.from_url(REAL_REDIS_URL).ping()  # fails, not skips, without Redis
    report = run(trials=4, services=4, seed=3, redis_url=REAL_REDIS_URL, workdir=tmp_path)
    assert report.kills >= 2, report.line()
    assert report.problems == [], "\n".join(report.problems)
    assert sum(report.outcomes.values()) == 4


def test_worker_killed_at_random_points_loses_nothing_on_router_ecs(tmp_path: Path) -> None:
    """The same trials with ECS's own LINEAR deployments (the emulator behind moto_server)."""
    redis_lib.Redis.from_url(REAL_REDIS_URL).ping()
    report = run(
        trials=2, services=2, seed=5, redis_url=REAL_REDIS_URL, workdir=tmp_path, backend="ecs"
    )
    assert report.kills >= 2, report.line()
    assert report.problems == [], "\n".join(report.problems)
    assert sum(report.outcomes.values()) == 2
