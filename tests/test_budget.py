"""The installation's AWS call budget (workers.runtime.budget): a token bucket in Redis that every
worker process takes from before each AWS call; rollbacks never wait; checks are spread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import fakeredis
import pytest
import redis
from moto import mock_aws

from tests.fakes import fake_runtime
from tests.test_engine import make_world, start
from tests.test_slack_render import deployment
from workers.domain.state import State
from workers.engine.runner import Runner
from workers.engine.steps import STEPS
from workers.runtime.budget import BudgetExhausted, CallBudget, urgent_calls
from workers.runtime.settings import Settings
from workers.slack.card import render_card

ROOT = Path(__file__).resolve().parent.parent


def budget(rate: float = 2.0, burst: float = 2.0, **kw: object) -> CallBudget:
    return CallBudget(fakeredis.FakeRedis(), "t:aws-budget", rate, burst=burst, **kw)  # type: ignore[arg-type]


def test_a_burst_is_granted_then_a_call_waits_its_share() -> None:
    b = budget(rate=2.0, burst=2.0)
    assert [b.take(), b.take()] == [0.0, 0.0]
    wait = b.take()
    assert 0 < wait <= 0.5  # one token comes every half second


def test_rollbacks_never_wait_and_the_calls_after_them_pay_it_back() -> None:
    b = budget(rate=2.0, burst=2.0)
    b.take(), b.take()
    ordinary = b.take()
    assert ordinary > 0
    assert b.take(urgent=True) == 0.0  # taken at once, into debt
    assert b.take() > ordinary  # the next ordinary call waits for the debt too
    slept: list[float] = []
    urgent = budget(rate=1.0, burst=1.0, sleep=slept.append)
    urgent.take()
    with urgent_calls():
        assert urgent.acquire() == 0.0 and urgent.acquire() == 0.0
    assert slept == []


def test_a_call_waits_for_its_token_and_a_long_wait_puts_the_job_back() -> None:
    slept: list[float] = []
    b = budget(rate=1.0, burst=1.0, max_wait=5.0, sleep=slept.append)
    assert b.acquire() == 0.0
    # A fake sleep lets no time pass: the waits add up until the job is better put back.
    with pytest.raises(BudgetExhausted) as raised:
        for _ in range(10):
            b.acquire()
    assert slept and sum(slept) <= 5.0
    assert raised.value.retry_after >= 1.0


def test_the_setting_turns_the_budget_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().canary_aws_calls_per_second == 0  # off unless asked for
    monkeypatch.setenv("CANARY_AWS_CALLS_PER_SECOND", "25")
    assert Settings().canary_aws_calls_per_second == 25
    monkeypatch.setenv("CANARY_AWS_CALLS_PER_SECOND", "-1")
    with pytest.raises(ValueError):
        Settings()


def test_every_aws_call_of_the_engine_takes_a_token(aws_env: None) -> None:
    with mock_aws():
        rt = fake_runtime()
        rt.call_budget = CallBudget(rt.redis, "test:aws-budget", 0.001, burst=100.0)
        rt.clients.ecs.list_clusters()
        rt.clients.cloudwatch.describe_alarms(AlarmNames=["x"])
        rt.clients.elbv2.describe_load_balancers()
        tokens = float(rt.redis.hget("test:aws-budget", "tokens") or 0)
        assert round(100.0 - tokens) == 3


def test_a_check_the_budget_holds_back_runs_later_and_is_not_dropped(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        world = make_world(monkeypatch, "alb")
        dep_id = start(world)
        world.drive(dep_id, lambda d: d.state == State.BAKING)
        held: list[str] = []

        def check_held_once(engine, dep):  # type: ignore[no-untyped-def]
            if not held:
                held.append(dep.id)
                raise BudgetExhausted(retry_after=3.0)
            STEPS[State.BAKING](engine, dep)

        job = world.scheduler.pop_due("run") or world.scheduler.runs[0]
        world.scheduler.jobs[:] = [j for j in world.scheduler.jobs if j is not job]
        world.clock.now = max(world.clock.now, job.due)
        dep = world.dep(dep_id)
        runner = Runner(world.rt, {**STEPS, State.BAKING: check_held_once})
        assert runner.run(dep_id, dep.version) == "spread"
        after = world.dep(dep_id)
        assert after.version == dep.version and after.attempts == dep.attempts
        again = world.scheduler.runs[-1]
        assert (again.dep_id, again.version, again.delay) == (dep_id, dep.version, 3.0)
        world.clock.advance(3.0)
        assert runner.run(dep_id, dep.version) == State.BAKING.value
        assert world.dep(dep_id).checks == dep.checks + 1


def test_the_card_says_when_a_check_ran_late() -> None:
    dep = deployment(State.BAKING, step_index=0, step_started_at=1.0, late_by=42.0)
    text = json.dumps(render_card(dep).blocks)
    assert "the last check ran 42s late" in text
    on_time = deployment(State.BAKING, step_index=0, step_started_at=1.0)
    assert "late" not in json.dumps(render_card(on_time).blocks)


_TAKER = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from workers.runtime.budget import CallBudget
    url, key = sys.argv[1], sys.argv[2]
    rate, burst = float(sys.argv[3]), float(sys.argv[4])
    b = CallBudget(redis.Redis.from_url(url), key, rate, burst=burst, max_wait=60)
    times, waited = [], 0.0
    for _ in range(int(sys.argv[5])):
        waited += b.acquire()
        times.append(time.time())
    print(json.dumps({"times": times, "waited": waited}))
    """
)


def test_two_processes_share_one_budget(real_redis: tuple[redis.Redis, str]) -> None:
    client, prefix = real_redis
    url = client.connection_pool.connection_kwargs
    redis_url = f"redis://{url.get('host', '127.0.0.1')}:{url.get('port', 6379)}/{url.get('db', 0)}"
    rate, burst, each = 20.0, 5.0, 30
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", _TAKER, redis_url, f"{prefix}:aws-budget", str(rate), str(burst)]
    procs = [
        subprocess.Popen([*args, str(each)], stdout=subprocess.PIPE, env=env, cwd=ROOT)
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # Neither process was starved or dropped calls: each got all its tokens, and both waited.
    assert all(len(r["times"]) == each for r in results)
    assert all(r["waited"] > 0 for r in results)
    # Together they never went faster than the bucket allows: a burst, then `rate` a second
    # (one token of slack for the moment each process read its clock after its grant).
    times = sorted(t for r in results for t in r["times"])
    assert len(times) <= burst + rate * (times[-1] - times[0]) + 1
