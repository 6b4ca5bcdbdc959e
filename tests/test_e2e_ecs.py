"""End to end over real processes for router ecs: Redis, the strict moto_server with ECS's
CANARY / LINEAR deployments answered by the emulator (sandbox.ecs_moto) and `python -m workers`.

ECS shifts the traffic itself and pauses before every shift; the bot judges each pause and gates
it. Promoted through the gates, the new revision is what moto's service runs, so the next
deployment discovers it as the stable; a bad image is rolled back by ECS on the bot's verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REAL_REDIS_URL
from tests.stack import IMAGE, World, start_stack
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.state import State

SERVICES: dict[str, dict[str, object]] = {
    "payments": {},  # promoted with every gate approved, then a bad image rolled back
    "search": {},  # 20 % 5xx: rolled back by itself
    "web": {},  # aborted at a gate
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import redis

    try:
        redis.Redis.from_url(REAL_REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"end-to-end tests need a real Redis at {REAL_REDIS_URL}")
    s = start_stack(
        Path(tmp_path_factory.mktemp("e2e-ecs")), REAL_REDIS_URL, SERVICES, backend="ecs"
    )
    yield s
    s.stop()


def deploy(stack: World, key: str, tag: str) -> str:
    answer = api.start_deployment(
        key, IMAGE.format(key=key, tag=tag), requester="UDANA", channel="C1", rt=stack.rt
    )
    assert answer.ok, answer.message
    assert answer.deployment is not None
    return answer.deployment.id


def serving(stack: World, key: str) -> dict[str, int]:
    """The production listener rule's target groups that get traffic."""
    return {group: w for group, w in stack.weights(key).items() if w > 0}


def at_gate_or_over(d: Deployment) -> bool:
    return d.state == State.AWAITING_APPROVAL or not d.active


def approve_until_over(stack: World, dep_id: str) -> Deployment:
    approved: set[int] = set()
    while True:
        dep = stack.wait(dep_id, at_gate_or_over, timeout=60)
        if not dep.active:
            return dep
        step = dep.step_index + 2  # the gate before the next step (1-based)
        if step not in approved:
            assert api.decide_gate(dep_id, step, approve=True, actor="USAM", rt=stack.rt).ok
            approved.add(step)


def test_promoted_through_ecs_pauses_then_rolled_back_from_the_promoted_revision(
    stack: World,
) -> None:
    ids = {"payments": deploy(stack, "payments", "v2"), "search": deploy(stack, "search", "v3")}
    ids["web"] = deploy(stack, "web", "v2")
    # web: abort at the first gate; ECS puts the traffic back on the old revision
    stack.wait(ids["web"], lambda d: d.state == State.AWAITING_APPROVAL, timeout=60)
    step = stack.dep(ids["web"]).step_index + 2
    assert api.decide_gate(ids["web"], step, approve=False, actor="USAM", rt=stack.rt).ok

    promoted = approve_until_over(stack, ids["payments"])
    assert promoted.state == State.PROMOTED, promoted.reason
    assert len(promoted.approvals) >= 2
    # ECS moved all traffic to the alternate group, and moto's service runs the new image
    assert serving(stack, "payments") == {"payments-green": 100}
    assert stack.service_image("payments") == IMAGE.format(key="payments", tag="v2")

    finals = {k: stack.wait(ids[k], lambda d: not d.active, timeout=90) for k in ("search", "web")}
    assert finals["search"].state == State.ROLLED_BACK, finals["search"].reason
    assert finals["search"].ended_by == "canary check"
    assert serving(stack, "search") == {"search-v1": 100}
    assert stack.service_image("search") == IMAGE.format(key="search", tag="v1")
    assert finals["web"].state == State.ROLLED_BACK and finals["web"].ended_by == "abort"
    assert serving(stack, "web") == {"web-v1": 100}

    # The next deployment starts from the promoted revision (v2, in the green group): a bad
    # image is rolled back to it, its traffic back on green.
    bad = deploy(stack, "payments", "v3")
    dep = stack.wait(bad, lambda d: not d.active, timeout=90)
    assert dep.state == State.ROLLED_BACK and dep.ended_by == "canary check", dep.reason
    assert dep.stable is not None and dep.stable.image == IMAGE.format(key="payments", tag="v2")
    assert serving(stack, "payments") == {"payments-green": 100}
    assert stack.service_image("payments") == IMAGE.format(key="payments", tag="v2")
    assert all(stack.rt.store.lock_holder(key) is None for key in SERVICES)
    assert all(not f.problems for f in (promoted, dep, *finals.values()))
