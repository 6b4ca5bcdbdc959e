"""End to end over real processes: Redis, moto_server and `python -m workers`, time in seconds.

Several services are deployed at once, one scenario each, on one worker process; the same
scenarios run once per traffic backend (App Mesh, ALB), each on a stack of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REAL_REDIS_URL
from tests.fakes import BACKENDS
from tests.stack import IMAGE, World, start_stack
from workers import api
from workers.domain.state import State

SERVICES: dict[str, dict[str, object]] = {
    # promoted with gates approved; a command may drop its gates once an approver accepts that
    "payments": {"allow_overrides": ["gates"]},
    "search": {},  # 20 % 5xx: rolled back by itself
    "web": {},  # aborted at a gate
    "quiet": {"gate_timeout": "6s"},  # no traffic: held, then rolled back
    "orders": {"gate_timeout": "4s"},  # nobody approves: gate timeout
}


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[World]:
    import redis

    try:
        redis.Redis.from_url(REAL_REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"end-to-end tests need a real Redis at {REAL_REDIS_URL}")
    s = start_stack(
        Path(tmp_path_factory.mktemp(f"e2e-{request.param}")),
        REAL_REDIS_URL,
        SERVICES,
        rps={"quiet": 0.0},
        backend=request.param,
    )
    yield s
    s.stop()


def deploy(stack: World, key: str, tag: str) -> str:
    answer = api.start_deployment(
        key, IMAGE.format(key=key, tag=tag), requester="UDANA", channel="C1", rt=stack.rt
    )
    assert answer.ok, answer.refusal
    assert answer.deployment is not None
    return answer.deployment.id


def test_five_scenarios_at_once_on_one_worker(stack: World) -> None:
    ids = {key: deploy(stack, key, "v3" if key == "search" else "v2") for key in SERVICES}

    # payments: approve every gate until promoted
    for step in (2, 3, 4):
        stack.wait(ids["payments"], lambda d: d.state == State.AWAITING_APPROVAL)
        assert api.decide_gate(ids["payments"], step, approve=True, actor="USAM", rt=stack.rt).ok
    # web: abort at the first gate; the route is back to stable within a second
    stack.wait(ids["web"], lambda d: d.state == State.AWAITING_APPROVAL)
    assert api.decide_gate(ids["web"], 2, approve=False, actor="USAM", rt=stack.rt).ok
    dep = stack.wait(ids["web"], lambda d: d.route_restored_at is not None, timeout=5)
    assert dep.route_restored_at - dep.rollback_requested_at < 1.0  # type: ignore[operator]

    finals = {
        key: stack.wait(dep_id, lambda d: not d.active, timeout=90) for key, dep_id in ids.items()
    }

    assert finals["payments"].state == State.PROMOTED
    assert stack.weights("payments") == {f"payments-{ids['payments']}": 100}

    assert finals["search"].state == State.ROLLED_BACK
    assert finals["search"].ended_by == "canary check" and finals["search"].step_number == 1
    assert stack.weights("search") == {"search-v1": 100}

    assert finals["web"].state == State.ROLLED_BACK and finals["web"].ended_by == "abort"
    assert stack.weights("web") == {"web-v1": 100}

    quiet = finals["quiet"]
    assert quiet.state == State.ROLLED_BACK and quiet.ended_by == "hold_timeout"
    assert [e.kind for e in stack.rt.store.events(ids["quiet"])].count("step_passed") == 0
    assert stack.weights("quiet") == {"quiet-v1": 100}

    assert finals["orders"].state == State.ROLLED_BACK
    assert finals["orders"].ended_by == "gate_timeout"
    assert stack.weights("orders") == {"orders-v1": 100}

    # every rolled-back canary is gone from App Mesh (or the ALB); no lock is left behind
    nodes = stack.traffic_targets()
    assert nodes == {f"payments-{ids['payments']}", "search-v1", "web-v1", "quiet-v1", "orders-v1"}
    assert all(stack.rt.store.lock_holder(key) is None for key in SERVICES)
    # ... and each service has exactly one live ECS service and (App Mesh) one Cloud Map
    # service, although the strict moto keeps stopped tasks in Cloud Map for a few seconds.
    live = {f"payments-{ids['payments']}", "search", "web", "quiet", "orders"}
    assert stack.ecs_services() == live
    assert stack.cloud_map_services() == (set() if stack.is_alb("payments") else live)
    assert all(not final.problems for final in finals.values()), {
        k: f.problems for k, f in finals.items()
    }


def test_worker_killed_mid_rollout_another_finishes_it(stack: World) -> None:
    dep_id = api.start_deployment(
        "payments",
        IMAGE.format(key="payments", tag="v4"),
        requester="UDANA",
        overrides={"gates": "auto"},
        rt=stack.rt,
    )
    assert dep_id.ok and dep_id.deployment is not None
    dep_id_str = dep_id.deployment.id
    # gates=auto loosens the catalogue's plan: an approver accepts it before the first shift
    stack.wait(dep_id_str, lambda d: d.state == State.AWAITING_APPROVAL, timeout=30)
    assert api.decide_gate(dep_id_str, 1, approve=True, actor="USAM", rt=stack.rt).ok
    stack.wait(dep_id_str, lambda d: d.step_index >= 1 and d.state == State.BAKING)
    for worker in stack.workers:
        worker.kill()  # SIGKILL to the process group: no clean-up at all
    stack.start_worker()
    dep = stack.wait(dep_id_str, lambda d: not d.active, timeout=120)
    assert dep.state == State.PROMOTED, dep.reason
    assert stack.weights("payments") == {f"payments-{dep_id_str}": 100}
