"""One rollout worker process, several RQ workers in threads (workers/worker_threads.py), on real
Redis: jobs overlap, a timeout still ends a job, and a stop lets the job in progress finish."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.job import JobStatus

from tests.conftest import REAL_REDIS_URL
from workers.runtime.queues import rq_queue
from workers.runtime.worker_threads import run_threads

#: Generous bound for a job to be picked up and run on a loaded CI machine (not a speed claim).
PATIENCE = 20.0


def rendezvous(key: str, expected: int) -> int:
    """A job that returns once `expected` jobs (itself included) have started: only jobs that run
    at the same time can all return."""
    client = redis.Redis.from_url(REAL_REDIS_URL)
    client.incr(key)
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        arrived = int(client.get(key) or 0)
        if arrived >= expected:
            return arrived
        time.sleep(0.01)
    raise RuntimeError(f"only {client.get(key)!r} of {expected} jobs ran at the same time")


def busy_loop(seconds: float) -> str:
    """A job that keeps running Python for `seconds` (so a timer can interrupt it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"


def until_set(key: str) -> str:
    """A job that runs until `key` is set in Redis, then finishes."""
    client = redis.Redis.from_url(REAL_REDIS_URL)
    deadline = time.monotonic() + PATIENCE
    while not client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"


@pytest.fixture
def pool(real_redis: tuple[redis.Redis, str]) -> Iterator[tuple[Queue, threading.Event]]:
    """Four worker threads on a queue of their own, run as `python -m workers` runs them."""
    client, prefix = real_redis
    queue = rq_queue(f"{prefix}-default", client)
    stop = threading.Event()
    runner = threading.Thread(
        target=run_threads,
        args=([queue.name], lambda: redis.Redis.from_url(REAL_REDIS_URL), 4),
        kwargs={"stop": stop},
        daemon=True,
    )
    runner.start()
    yield queue, stop
    stop.set()
    runner.join(timeout=PATIENCE)


def wait_for(job_ids: list[str], queue: Queue, status: JobStatus) -> list[JobStatus | None]:
    deadline = time.monotonic() + PATIENCE
    while True:
        statuses = [queue.fetch_job(i).get_status() for i in job_ids]  # type: ignore[union-attr]
        if all(s == status for s in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.05)


def test_the_jobs_of_one_process_run_at_the_same_time(
    pool: tuple[Queue, threading.Event], real_redis: tuple[redis.Redis, str]
) -> None:
    queue, _ = pool
    key = f"{real_redis[1]}:arrived"
    jobs = [queue.enqueue(rendezvous, key, 4, job_timeout=60) for _ in range(4)]

    assert wait_for([j.id for j in jobs], queue, JobStatus.FINISHED) == [JobStatus.FINISHED] * 4
    assert [queue.fetch_job(j.id).return_value() for j in jobs] == [4, 4, 4, 4]  # type: ignore[union-attr]


def test_a_job_past_its_timeout_is_stopped_in_its_thread(
    pool: tuple[Queue, threading.Event],
) -> None:
    queue, _ = pool
    slow = queue.enqueue(busy_loop, 30.0, job_timeout=1)
    quick = queue.enqueue(busy_loop, 0.0, job_timeout=10)

    assert wait_for([slow.id], queue, JobStatus.FAILED) == [JobStatus.FAILED]
    assert "JobTimeoutException" in (queue.fetch_job(slow.id).latest_result().exc_string or "")  # type: ignore[union-attr]
    assert wait_for([quick.id], queue, JobStatus.FINISHED) == [JobStatus.FINISHED]


def test_a_stop_lets_the_job_in_progress_finish_and_unregisters_every_worker(
    pool: tuple[Queue, threading.Event], real_redis: tuple[redis.Redis, str]
) -> None:
    queue, stop = pool
    client, prefix = real_redis
    release = f"{prefix}:release"
    job = queue.enqueue(until_set, release, job_timeout=60)
    assert wait_for([job.id], queue, JobStatus.STARTED) == [JobStatus.STARTED]
    assert len(Worker.all(queue=queue)) == 4

    stop.set()
    time.sleep(0.3)  # the stop is under way; the job is still running
    assert queue.fetch_job(job.id).get_status() == JobStatus.STARTED  # type: ignore[union-attr]
    client.set(release, 1)

    assert wait_for([job.id], queue, JobStatus.FINISHED) == [JobStatus.FINISHED]
    deadline = time.monotonic() + PATIENCE
    while Worker.all(queue=queue) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Worker.all(queue=queue) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("CANARY_WORKER_THREADS", "eight"), ("CANARY_WORKER_THREADS", "0"), ("CANARY_WORKERS", "-1")],
)
def test_a_bad_worker_count_is_refused_at_start_saying_why(name: str, value: str) -> None:
    env = {**os.environ, name: value, "REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run(
        [sys.executable, "-m", "workers"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{name} must be a whole number of at least 1, got {value!r}" in done.stderr
