"""RQ jobs are JSON: a pickled job planted in the queue by anyone who can write to Redis is not
run by `python -m workers` (its unpickling would run the planter's code), while the engine's own
jobs still run. Over real Redis and a real worker process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from sandbox.processes import Process, start_workers
from tests.conftest import REAL_REDIS_URL
from workers.runtime.queues import SERIALIZER, RqScheduler, queue_names

#: Generous bound for a job to be picked up on a loaded CI machine (not a speed claim).
PATIENCE = 30.0


class Planted:
    """Unpickling this opens (creates) the marker file: code run by merely reading the job."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


@pytest.fixture
def worker(real_redis: tuple[redis.Redis, str], tmp_path: Path) -> Iterator[tuple[Process, str]]:
    """`python -m workers` on its own prefix of the real Redis (no AWS, no Slack needed)."""
    _, prefix = real_redis
    env = {
        "REDIS_URL": REAL_REDIS_URL,
        "CANARY_REDIS_PREFIX": prefix,
        "CANARY_WORKER_THREADS": "2",
        "CANARY_CONFIG": str(tmp_path / "absent.yaml"),
    }
    process = start_workers(env, tmp_path)
    try:
        yield process, prefix
    finally:
        process.stop()


def wait_status(job: Job, wanted: set[JobStatus]) -> JobStatus | None:
    deadline = time.monotonic() + PATIENCE
    status = None
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status in wanted:
            return status
        time.sleep(0.05)
    return status


def test_a_pickled_job_planted_in_redis_is_not_run(
    real_redis: tuple[redis.Redis, str], worker: tuple[Process, str], tmp_path: Path
) -> None:
    client, _ = real_redis
    process, prefix = worker
    _high, default, _notify = queue_names(prefix)
    marker = tmp_path / "planted-code-ran"

    # Someone with write access to Redis plants a job as RQ's default (pickle) would write it.
    planted = Queue(default, connection=client).enqueue(
        "workers.runtime.jobs.deliver", Planted(marker), job_id=f"{prefix}-planted"
    )
    # Then the engine asks for a step of a deployment that does not exist: its job reports it.
    RqScheduler(client, prefix).run("nosuchid", 1)
    ours = Job.fetch(f"{prefix}-run-nosuchid-1", connection=client, serializer=SERIALIZER)

    assert wait_status(ours, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED, (
        process.output()
    )
    assert ours.return_value() == "stale"
    try:
        status = wait_status(
            Job.fetch(planted.id, connection=client, serializer=SERIALIZER), {JobStatus.FAILED}
        )
    except NoSuchJobError:  # planted before the worker started: dropped unread by its start
        status = None  # (workers/engine/migrations.py, drop_unreadable_jobs)
    assert not marker.exists(), "the worker unpickled a planted job and ran its code"
    assert status in (JobStatus.FAILED, None)
    assert status == JobStatus.FAILED or not client.exists(Job.key_for(planted.id))
    assert process.alive() and "restarting" not in process.output()  # it failed alone
