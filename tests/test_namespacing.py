"""Two installations share one Redis: every key and queue of one is under its own prefix."""

from __future__ import annotations

from redis import Redis

from tests.fakes import FakeClock, RecordingScheduler, catalogue
from workers import api
from workers.engine.store import Store
from workers.runtime.context import Runtime
from workers.runtime.queues import RqScheduler, queue_names

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v2"


def runtime(redis: Redis, prefix: str) -> Runtime:
    cat = catalogue()
    clock = FakeClock()
    return Runtime(
        redis=redis,
        store=Store(redis, prefix),
        scheduler=RecordingScheduler(clock),
        clock=clock,
        catalogue_loader=lambda: cat,
    )


def test_two_installations_do_not_see_each_other(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    a, b = runtime(client, f"{prefix}a"), runtime(client, f"{prefix}b")
    first = api.start_deployment("payments", IMAGE, requester="U1", rt=a)
    second = api.start_deployment("payments", IMAGE, requester="U1", rt=b)
    assert first.ok and second.ok  # same service name, separate locks
    assert [d.id for d in api.active_deployments(rt=a)] == [first.deployment.id]  # type: ignore[union-attr]
    assert [d.id for d in api.active_deployments(rt=b)] == [second.deployment.id]  # type: ignore[union-attr]
    keys = {k.decode() for k in client.scan_iter(f"{prefix}*")}
    assert keys and all(k.startswith((f"{prefix}a:", f"{prefix}b:")) for k in keys)


def test_queue_names_carry_the_prefix(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    high, default, notify = queue_names(prefix)
    assert {high, default, notify} == {f"{prefix}-high", f"{prefix}-default", f"{prefix}-notify"}
    scheduler = RqScheduler(client, prefix)
    scheduler.run("abcd1234", 0)
    assert scheduler.default.count == 1 and RqScheduler(client, f"{prefix}x").default.count == 0
