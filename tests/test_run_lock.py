"""The run lock (redis-py's Lock): one holder, released by its owner only, waiting only if asked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import fakeredis

from workers.runtime.run_lock import RunLock, kept

ROOT = Path(__file__).resolve().parent.parent


def test_one_holder_at_a_time_and_no_wait_by_default() -> None:
    redis = fakeredis.FakeRedis()
    first, second = RunLock(redis, "t:run:a"), RunLock(redis, "t:run:a")
    assert first.acquire()
    started = time.monotonic()
    assert not second.acquire()
    assert time.monotonic() - started < 0.5
    first.release()
    assert second.acquire()


def test_an_urgent_job_waits_for_the_holder() -> None:
    redis = fakeredis.FakeRedis()
    holder, urgent = RunLock(redis, "t:run:b"), RunLock(redis, "t:run:b")
    held = threading.Event()

    def sibling_job() -> None:  # takes the lock, makes its AWS call, lets go
        assert holder.acquire()
        held.set()
        time.sleep(0.2)
        holder.release()

    threading.Thread(target=sibling_job).start()
    assert held.wait(5)
    assert not RunLock(redis, "t:run:b").acquire()
    assert urgent.acquire(blocking_timeout=10.0)


def test_only_the_owner_releases_and_an_expired_lock_is_let_go_quietly() -> None:
    redis = fakeredis.FakeRedis()
    crashed = RunLock(redis, "t:run:c", ttl=0.05)
    assert crashed.acquire()
    time.sleep(0.1)  # its job took longer than the lock lives
    taker = RunLock(redis, "t:run:c")
    assert taker.acquire()
    crashed.release()  # no error, and the taker's lock survives
    assert redis.get("t:run:c") is not None
    assert redis.pttl("t:run:c") > 0  # SET ... PX: it expires by itself


def test_a_kept_lock_lives_as_long_as_its_step_and_no_longer() -> None:
    redis = fakeredis.FakeRedis()
    lock = RunLock(redis, "t:run:d", ttl=0.3)
    assert lock.acquire()
    with kept(lock):  # its step runs for several times the lock's time to live
        until = time.monotonic() + 1.2
        while time.monotonic() < until:
            assert not RunLock(redis, "t:run:d").acquire()
            time.sleep(0.05)
    lock.release()
    assert RunLock(redis, "t:run:d").acquire()


def test_a_lock_no_longer_kept_expires_as_a_crashed_jobs_does() -> None:
    redis = fakeredis.FakeRedis()
    lock = RunLock(redis, "t:run:e", ttl=0.2)
    assert lock.acquire()
    with kept(lock):
        pass  # the step is over, but its job died before releasing the lock
    until = time.monotonic() + 5
    while redis.exists("t:run:e") and time.monotonic() < until:
        time.sleep(0.02)
    assert RunLock(redis, "t:run:e").acquire()


def test_the_owner_release_script_is_written_nowhere_in_the_project() -> None:
    """redis-py's Lock holds the one compare-and-delete script the store's MULTI uses too.

    The only Lua of the project is the fleet-wide AWS call budget's token bucket, which neither
    redis-py nor RQ offers (its module says why it is hand-written)."""
    written = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "workers").rglob("*.py"))
        if "redis.call(" in p.read_text()
    ]
    assert written == ["workers/runtime/budget.py"]
