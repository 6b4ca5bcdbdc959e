"""The engine end to end in one process: moto for AWS, fakeredis, simulated time and traffic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from moto import mock_aws
from moto.ecs.models import ecs_backends

from sandbox.ecs_deployments import EcsDeployments, route_client
from sandbox.ecs_moto import keep_in_step
from sandbox.seed import seed_appmesh_service
from sandbox.seed_alb import seed_alb_service
from sandbox.seed_ecs_native import seed_ecs_native_service
from sandbox.simulator import AlbTrafficSimulator, EcsTrafficSimulator, TrafficSimulator
from sandbox.strict_moto import STRICT, Strictness
from tests.fakes import (
    IN_PROCESS_BACKENDS,
    SHIFT_CALLS,
    FakeClock,
    Simulator,
    World,
    catalogue,
    fake_runtime,
)
from workers import api
from workers.analysis.judge import Outcome
from workers.analysis.window import covered_at
from workers.aws.clients import make_clients
from workers.defaults import DRAIN_TIMEOUT_SECONDS
from workers.domain.catalogue import parse_catalogue
from workers.domain.outcomes import Refusal
from workers.domain.state import State
from workers.domain.versions import AlbStable, AppMeshStable
from workers.runtime.jobs import runner
from workers.slack import answers

V2 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v2"
V3 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v3"
ERROR_RATES = {"v3": 0.2, "v2": 0.002}


def make_world(
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    rps: float = 20.0,
    service: dict[str, object] | None = None,
    *,
    published: bool = True,
    **settings: object,
) -> World:
    """A world whose catalogue has `settings` as defaults and `service` in payments' entry;
    the stable's traffic of the last minutes is in CloudWatch unless not `published`."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    clients = make_clients()
    clock = FakeClock(time.time())
    # Stopped tasks leave Cloud Map on the world's clock (tests/conftest.py resets it).
    STRICT.clock = clock
    sim: Simulator
    emulator = None
    if backend == "ecs":
        emulator = EcsDeployments(
            clock=lambda: datetime.fromtimestamp(clock.now, UTC), alarms=moto_alarms(clients)
        )
        route_client(clients.ecs, emulator)
        keep_in_step(clients.ecs, emulator)  # moto's service and rule follow ECS's decisions
        seeded = seed_ecs_native_service(clients, emulator, key="payments")
        cat = parse_catalogue(
            {
                "defaults": {"bake": "5m", "analysis_interval": "1m", "metric_period": "60s"}
                | settings,
                "services": {
                    "payments": {
                        "router": "ecs",
                        "cluster": "prod",
                        "service": "payments",
                        # ECS's LINEAR 25 %: the default 10,25,50,100 is not equal increments.
                        "steps": [25, 50, 75, 100],
                        **(service or {}),
                    }
                },
            }
        )
        sim = EcsTrafficSimulator(
            clients,
            cluster="prod",
            service="payments",
            deployments=emulator,
            listener_rule=seeded["listener_rule"],
            stable_group=seeded["target_group_arn"],
            canary_group=seeded["green_target_group_arn"],
            first_task_definition=seeded["task_definition_arn"],
            requests_per_second=rps,
            error_rates=ERROR_RATES,
            clock=clock,
        )
    elif backend == "alb":
        seeded = seed_alb_service(clients, key="payments")
        cat = parse_catalogue(
            {
                "defaults": {"bake": "5m", "analysis_interval": "1m", "metric_period": "60s"}
                | settings,
                "services": {
                    "payments": {
                        "router": "alb",
                        "cluster": "prod",
                        "listener_rule": seeded["listener_rule"],
                        **(service or {}),
                    }
                },
            }
        )
        sim = AlbTrafficSimulator(
            clients,
            cluster="prod",
            listener_rule=seeded["listener_rule"],
            requests_per_second=rps,
            error_rates=ERROR_RATES,
            clock=clock,
        )
    else:
        seeded = seed_appmesh_service(clients)
        cat = catalogue(service, **settings)
        sim = TrafficSimulator(
            clients,
            cluster="prod",
            mesh="prod-mesh",
            virtual_router="payments-vr",
            route="payments-route",
            requests_per_second=rps,
            error_rates=ERROR_RATES,
            clock=clock,
        )
    rt = fake_runtime(cat, clock)
    rt.aws = lambda: clients
    if published:
        serving(sim, clock)
    return World(rt, clients, clock, sim, backend=backend, seeded=seeded, ecs=emulator)


def serving(sim: Simulator, clock: FakeClock, minutes: int = 5) -> None:
    """The stable's traffic of the minutes before now, published (as a running service has):
    a deployment checks that the stable's series exist before it creates anything."""
    lag = 150  # beyond every simulator's publication lag
    for i in range(minutes * 6):
        sim.tick(10, at=datetime.fromtimestamp(clock.now - lag - minutes * 60 + i * 10, UTC))


def moto_alarms(clients):  # type: ignore[no-untyped-def]
    """The emulator's alarm source: the alarms' states in moto's CloudWatch (as the engine reads
    them), so ECS and the bot see the same alarm."""

    def firing(names):  # type: ignore[no-untyped-def]
        found = clients.cloudwatch.describe_alarms(AlarmNames=list(names))["MetricAlarms"]
        return [a["AlarmName"] for a in found if a["StateValue"] == "ALARM"]

    return firing


def not_on(world: World, *backends: str) -> None:
    """Skip a scenario that does not apply to the world's backend."""
    if world.backend in backends:
        pytest.skip(f"not for router {world.backend}")


@pytest.fixture(params=IN_PROCESS_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str) -> Iterator[World]:
    with mock_aws():
        yield make_world(monkeypatch, backend)


@pytest.fixture
def auto_world(aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str) -> Iterator[World]:
    """A world whose catalogue has no gates (a command may not remove them)."""
    with mock_aws():
        yield make_world(monkeypatch, backend, gates="auto")


def start(world: World, image: str = V2, requester: str = "UDANA", **overrides: str) -> str:
    answer = api.start_deployment(
        "payments", image, requester=requester, channel="C1", overrides=overrides, rt=world.rt
    )
    assert answer.ok, answer.refusal
    assert answer.deployment is not None
    return answer.deployment.id


def kinds(world: World, dep_id: str) -> list[str]:
    return [e.kind for e in world.rt.store.events(dep_id)]


def at_gate(dep) -> bool:  # type: ignore[no-untyped-def]
    return dep.state in (State.AWAITING_APPROVAL, State.PROMOTED, State.ROLLED_BACK, State.FAILED)


def test_healthy_canary_is_promoted_through_its_gates(world: World) -> None:
    dep_id = start(world)
    for step in (2, 3, 4):
        dep = world.drive(dep_id, at_gate)
        assert dep.state == State.AWAITING_APPROVAL, dep.reason
        stable, canary = world.names(dep_id)
        assert world.weights() == {stable: 100 - dep.weight, canary: dep.weight}
        answer = api.decide_gate(dep_id, step, approve=True, actor="USAM", rt=world.rt)
        assert answer.ok, answer.refusal
    dep = world.drive(dep_id, lambda d: not d.active)
    assert dep.state == State.PROMOTED, dep.reason
    stable, canary = world.names(dep_id)
    assert world.weights() == {canary: 100}
    assert [a.step for a in dep.approvals] == [2, 3, 4]
    if world.backend == "ecs":  # ECS itself removed the old revision's tasks
        service = world.ecs.describe_service(cluster="prod", service="payments")
        assert dep.canary is not None
        assert service["taskDefinition"] == dep.canary.task_definition_arn
    else:
        # the old version is gone: virtual node and Cloud Map service (or target group), ECS
        # service
        assert world.traffic_targets() == {f"payments-{dep_id}"}
        old = world.clients.ecs.describe_services(cluster="prod", services=["payments"])
        assert not old["services"] or old["services"][0]["status"] != "ACTIVE"
    assert world.rt.store.lock_holder("payments") is None
    log = kinds(world, dep_id)
    assert log[:4] == ["requested", "provisioned", "ready", "shifted"]
    assert log.count("gate_opened") == 3 and log.count("approved") == 3
    assert log.count("shifted") == 4 and log[-1] == "promoted"
    promoted = world.rt.store.events(dep_id)[-1]
    # ECS's own deployment keeps its service and target groups: nothing is said removed
    assert promoted.kind == "promoted" and (promoted.old is None) == (world.backend == "ecs")


def test_each_step_left_is_kept_as_evidence_for_the_next(world: World) -> None:
    """The canary runs the same image at every step: the counts a step ends with (at its gate's
    last look) are kept, and the next steps are judged on the whole deployment's evidence."""
    dep_id = start(world)
    at_second_gate = None
    for step in (2, 3):
        dep = world.drive(dep_id, at_gate)
        last = dep.last_verdict
        assert last is not None and len(dep.evidence) == step - 2
        assert api.decide_gate(dep_id, step, approve=True, actor="USAM", rt=world.rt).ok
        dep = world.dep(dep_id)
        assert dep.evidence[-1].canary == last.canary and dep.evidence[-1].stable == last.stable
        at_second_gate = at_second_gate or last
    dep = world.drive(dep_id, at_gate)
    verdict = dep.last_verdict
    assert verdict is not None and at_second_gate is not None
    # step 3's verdict weighs the two steps before it, and says so
    assert "over steps 1-3" in verdict.reason, verdict.reason
    assert len(dep.evidence) == 2


def test_the_next_deployment_discovers_the_promoted_canary_as_stable(auto_world: World) -> None:
    world = auto_world
    first = start(world)
    assert world.drive(first, lambda d: not d.active).state == State.PROMOTED
    second = start(world, V3)
    dep = world.drive(second, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK
    stable = dep.stable
    assert stable is not None
    if world.backend == "ecs":  # moto's service runs what ECS promoted
        canary = world.dep(first).canary
        assert canary is not None
        promoted = canary.task_definition_arn
        assert stable.task_definition_arn == promoted
        assert world.weights() == {promoted.rsplit("/", 1)[-1]: 100}
        return
    assert isinstance(stable, AppMeshStable | AlbStable)
    named = stable.virtual_node if isinstance(stable, AppMeshStable) else stable.target_group_name
    assert named == f"payments-{first}"
    assert world.weights() == {f"payments-{first}": 100}


def test_canary_with_errors_is_rolled_back_by_itself(world: World) -> None:
    dep_id = start(world, V3)
    dep = world.drive(dep_id, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK
    assert dep.ended_by == "canary check" and "5xx" in (dep.reason or "")
    assert dep.last_verdict is not None and dep.last_verdict.outcome == Outcome.FAIL
    stable, canary = world.names(dep_id)
    assert world.weights() == {stable: 100}
    if world.backend != "ecs":  # router ecs: ECS stopped the new revision's tasks itself
        assert world.traffic_targets() == {"payments-v1"}
        found = world.clients.ecs.describe_services(cluster="prod", services=[canary])
        assert all(s["status"] != "ACTIVE" for s in found["services"])
    log = kinds(world, dep_id)
    assert log[-4:] == ["step_failed", "rollback_started", "route_restored", "rolled_back"]
    assert dep.step_number == 1  # caught at the first step


def test_abort_at_a_gate_restores_stable_first(world: World) -> None:
    dep_id = start(world)
    assert world.drive(dep_id, at_gate).state == State.AWAITING_APPROVAL
    answer = api.decide_gate(dep_id, 2, approve=False, actor="USAM", rt=world.rt)
    assert answer.ok, answer.refusal
    job = world.scheduler.pop_due("run")
    assert job is not None and job.urgent  # the fast path: high-priority queue
    runner(world.rt).run(job.dep_id, job.version)  # type: ignore[arg-type]
    stable, _ = world.names(dep_id)
    assert world.weights() == {stable: 100}  # one job later, stable has all traffic
    dep = world.drive(dep_id, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK and dep.reason == "aborted" and dep.stopped_by == "USAM"


def test_canary_without_traffic_is_held_never_promoted(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with mock_aws():
        world = make_world(monkeypatch, backend, rps=0.0, gate_timeout="1h")
        dep_id = start(world)
        dep = world.drive(
            dep_id,
            lambda d: d.state != State.PROVISIONING and (d.state == State.HOLDING or not d.active),
        )
        assert dep.state == State.HOLDING and dep.weight == dep.settings.steps[0]
        assert dep.last_verdict is not None and "0 canary requests" in dep.last_verdict.reason
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK
        assert dep.ended_by == timed_out(world, "hold_timeout"), dep.reason
        assert world.backend != "ecs" or "timed out" in (dep.reason or "")
        assert "holding" in kinds(world, dep_id) and "step_passed" not in kinds(world, dep_id)


def timed_out(world: World, cause: str) -> str:
    """Who ends a deployment left waiting: the bot, or with router ecs ECS itself, whose pause
    times out after the same gate_timeout (then the reason is ECS's)."""
    return "ecs rollback" if world.backend == "ecs" else cause


def test_gate_timeout_rolls_back_after_a_reminder(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with mock_aws():
        world = make_world(monkeypatch, backend, gate_timeout="30m")
        dep_id = start(world)
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK
        assert dep.ended_by == timed_out(world, "gate_timeout"), dep.reason
        assert world.backend != "ecs" or "timed out" in (dep.reason or "")
        log = kinds(world, dep_id)
        assert log.count("gate_reminder") == 1
        assert log.index("gate_reminder") < log.index("rollback_started")


def test_a_redelivered_job_changes_nothing(world: World) -> None:
    dep_id = start(world)
    job = world.scheduler.pop_due("run")
    assert job is not None and job.version is not None
    steps = runner(world.rt)
    assert steps.run(dep_id, job.version) != "stale"
    before = world.dep(dep_id)
    assert steps.run(dep_id, job.version) == "stale"
    assert world.dep(dep_id) == before


def test_approve_refusals(world: World) -> None:
    dep_id = start(world)
    world.drive(dep_id, at_gate)
    own = api.decide_gate(dep_id, 2, approve=True, actor="UDANA", rt=world.rt)
    assert not own.ok and own.refusal == Refusal.OWN_DEPLOYMENT
    stale = api.decide_gate(dep_id, 3, approve=True, actor="USAM", rt=world.rt)
    assert not stale.ok and stale.refusal == Refusal.OTHER_GATE
    assert "waiting for step 2" in answers.refused(stale)
    assert api.decide_gate(dep_id, 2, approve=True, actor="USAM", rt=world.rt).ok
    again = api.decide_gate(dep_id, 2, approve=True, actor="ULEE", rt=world.rt)
    assert not again.ok and again.refusal == Refusal.ALREADY_APPROVED
    assert answers.refused(again) == "Step 2 was already approved by <@USAM>."


def test_second_deploy_of_a_busy_service_names_the_running_one(world: World) -> None:
    dep_id = start(world)
    answer = api.start_deployment("payments", V3, requester="ULEE", rt=world.rt)
    assert not answer.ok and answer.refusal == Refusal.BUSY and answer.dep_id == dep_id
    assert answer.deployment is not None and answer.deployment.id == dep_id
    assert "Abort it first" in answers.refused(answer)


def test_bad_input_changes_nothing(world: World) -> None:
    for service, image, overrides, needle in [
        ("paymnts", V2, {}, "Did you mean payments?"),
        ("payments", "not an image", {}, "is not an image reference"),
        ("payments", V2, {"steps": "10,5,100"}, "steps must increase"),
    ]:
        answer = api.start_deployment(
            service, image, requester="U1", overrides=overrides, rt=world.rt
        )
        assert not answer.ok and answer.refusal == Refusal.INVALID
        assert needle in answers.refused(answer)
    assert world.rt.store.active_ids() == [] and world.scheduler.jobs == []


def test_aws_calls_per_weight_step(auto_world: World) -> None:
    """A shift is one read and one write of the route (or rule).

    A check is one GetMetricData once a whole published period exists. The canary's resources
    (DescribeServices, and DescribeVirtualNode or DescribeTargetGroups) are looked at by the
    first check and then only every PRESENCE_INTERVAL_SECONDS or when newly published periods
    bring the canary no request (workers.engine.batch.presence_due): once in this step, whose
    traffic never stops. Checks go on until published data covers the bake: its first whole
    minute, five more, and the metric lag (2m App Mesh, 1m ALB).
    """
    world = auto_world
    not_on(world, "ecs")  # ECS shifts itself: see tests/test_ecs_backend.py
    calls: list[str] = []

    def count(model, **_: object) -> None:  # type: ignore[no-untyped-def]
        if world.in_engine:  # not the simulated users' own calls
            calls.append(model.name)

    clients = world.clients
    for client in (clients.appmesh, clients.cloudwatch, clients.elbv2, clients.ecs):
        client.meta.events.register("before-call.*.*", count)
    dep_id = start(world)
    world.drive(dep_id, lambda d: d.state == State.BAKING)
    calls.clear()
    before = world.dep(dep_id).checks
    world.drive(dep_id, lambda d: d.state == State.BAKING and d.step_index == 1)
    per_check = calls.count("GetMetricData")
    read, write = SHIFT_CALLS[world.backend]
    assert calls.count(write) == 1 and calls.count(read) == 1
    still_there = {"appmesh": "DescribeVirtualNode", "alb": "DescribeTargetGroups"}[world.backend]
    assert set(calls) == {"GetMetricData", "DescribeServices", still_there, read, write}
    checks = world.dep(dep_id).checks - before
    lag_minutes = world.dep(dep_id).settings.lag // 60
    assert 5 + lag_minutes <= checks <= 6 + lag_minutes  # one per analysis interval
    assert calls.count("DescribeServices") == calls.count(still_there) == 1
    assert 5 <= per_check <= checks  # at most one each, none while no period is published
    world.drive(dep_id, lambda d: not d.active)
    assert world.dep(dep_id).state == State.PROMOTED


# policy: the catalogue is the law --------------------------------------------------------------
FOREIGN = "docker.io/someone/payments:1"


def test_a_foreign_image_ends_before_anything_is_created(world: World) -> None:
    ecs = world.clients.ecs
    revisions = ecs.list_task_definitions()["taskDefinitionArns"]
    services = ecs.list_services(cluster="prod")["serviceArns"]
    targets = world.traffic_targets()
    # Without `images` in the catalogue only the worker knows the stable's repository.
    answer = api.start_deployment("payments", FOREIGN, requester="UDANA", rt=world.rt)
    assert answer.ok and answer.deployment is not None
    dep = world.drive(answer.deployment.id, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK and dep.ended_by == "image policy"
    assert dep.reason == (
        f"{FOREIGN} is not an image payments deploys. "
        "Allowed: 123456789012.dkr.ecr.us-east-1.amazonaws.com/payments (tag or digest)."
    )
    assert ecs.list_task_definitions()["taskDefinitionArns"] == revisions
    assert ecs.list_services(cluster="prod")["serviceArns"] == services
    assert world.traffic_targets() == targets
    assert world.weights() == {world.names(dep.id)[0]: 100}
    last = world.rt.store.events(dep.id)[-1]
    assert last.kind == "rolled_back" and last.canary_existed is False
    assert world.rt.store.lock_holder("payments") is None


def test_images_in_the_catalogue_refuse_at_command_time(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with mock_aws():
        world = make_world(
            monkeypatch, backend, service={"images": ["123456789012.dkr.ecr.*.amazonaws.com/*"]}
        )
        answer = api.start_deployment("payments", FOREIGN, requester="UDANA", rt=world.rt)
        assert answer.detail == (
            f"{FOREIGN} is not an image payments deploys. "
            "Allowed: 123456789012.dkr.ecr.*.amazonaws.com/* (tag or digest)."
        )
        assert world.rt.store.active_ids() == [] and world.scheduler.jobs == []
        other_region = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments:v2"
        assert api.start_deployment("payments", other_region, requester="UDANA", rt=world.rt).ok


def test_overrides_that_loosen_the_plan_are_refused(world: World) -> None:
    for overrides, needle in [
        ({"steps": "100"}, "steps=100 would skip the gates payments requires"),
        ({"gates": "auto", "bake": "1s"}, "bake=1s would shorten the bake"),
        ({"bake": "3000000d"}, '"bake=3000000d": 3000000d is too long: at most 30d'),
        ({"bake": "2d"}, "bake must be at most the gate_timeout of payments (1d)"),
    ]:
        answer = api.start_deployment(
            "payments", V2, requester="UDANA", overrides=overrides, rt=world.rt
        )
        assert not answer.ok and needle in (answer.detail or ""), answer.detail
    assert world.rt.store.active_ids() == [] and world.scheduler.jobs == []


def test_allowed_loosening_waits_for_an_approver_to_accept_the_plan(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with mock_aws():
        world = make_world(monkeypatch, backend, service={"allow_overrides": ["steps", "gates"]})
        dep_id = start(world, steps="50,100", gates="auto")
        assert world.dep(dep_id).accept_plan == ["steps", "gates"]
        dep = world.drive(dep_id, at_gate)
        assert dep.state == State.AWAITING_APPROVAL and dep.step_index == -1
        # no traffic moved before the acceptance (an ALB lists the canary at weight 0)
        stable, _ = world.names(dep_id)
        assert {k: w for k, w in world.weights().items() if w} == {stable: 100}
        gate = next(e for e in world.rt.store.events(dep_id) if e.kind == "gate_opened")
        assert gate.kind == "gate_opened" and gate.plan == "steps 50, 100 · bake 5m · gates auto"
        assert gate.accept == ["steps", "gates"] and gate.next_step == 1
        own = api.decide_gate(dep_id, 1, approve=True, actor="UDANA", rt=world.rt)
        assert not own.ok and own.refusal == Refusal.OWN_DEPLOYMENT
        assert api.decide_gate(dep_id, 1, approve=True, actor="USAM", rt=world.rt).ok
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.PROMOTED, dep.reason
        assert [a.step for a in dep.approvals] == [1]
        log = kinds(world, dep_id)
        assert log[:6] == [
            "requested",
            "provisioned",
            "ready",
            "gate_opened",
            "approved",
            "shifted",
        ]
        assert log.count("gate_opened") == 1  # gates=auto: no other gate


def live_resources(world: World) -> dict[str, int]:
    """How many traffic targets, Cloud Map services and live ECS services the world holds."""
    ecs = world.clients.ecs
    arns = ecs.list_services(cluster="prod")["serviceArns"]
    services = ecs.describe_services(cluster="prod", services=arns)["services"] if arns else []
    cloud_map = world.clients.servicediscovery.list_services()["Services"]
    return {
        "targets": len(world.traffic_targets()),
        "cloud_map": len(cloud_map),
        "ecs": sum(s["status"] == "ACTIVE" for s in services),
    }


def test_promotion_and_rollback_leave_one_of_each(auto_world: World) -> None:
    world = auto_world
    # Tasks stay registered in Cloud Map for 30 s after they stop (the strict world).
    one = {"targets": 1, "cloud_map": 1 if world.backend == "appmesh" else 0, "ecs": 1}
    if world.backend == "ecs":  # ECS keeps its blue and green target groups, one service
        one["targets"] = 2
    # Router ecs: moto's service is not told what the emulator promoted, so a deployment after
    # a promotion would discover the old revision, whose series no longer has data (and is
    # refused before anything is created): there the rollback goes first.
    order = [(V3, State.ROLLED_BACK), (V2, State.PROMOTED)]
    for image, end in order if world.backend == "ecs" else order[::-1]:
        dep = world.drive(start(world, image), lambda d: not d.active)
        assert dep.state == end and dep.problems == [], (dep.reason, dep.problems)
        assert live_resources(world) == one


def test_a_drain_that_never_ends_fails_saying_what_to_clean_up(
    world: World, strict_aws: Strictness
) -> None:
    strict_aws.drain_seconds = 10**9  # the canary's tasks never stop
    dep_id = start(world, V3)
    dep = world.drive(dep_id, lambda d: d.state == State.CLEANING_UP)
    assert dep.attempts == 0
    dep = world.drive(dep_id, lambda d: not d.active)
    if world.backend != "appmesh":  # no ALB or ECS-native canary waits for Cloud Map
        assert dep.state == State.ROLLED_BACK
        return
    assert dep.state == State.FAILED and dep.attempts == 0
    assert dep.drain_started_at is not None
    assert dep.finished_at - dep.drain_started_at >= DRAIN_TIMEOUT_SECONDS  # type: ignore[operator]
    failed = world.rt.store.events(dep_id)[-1]
    assert failed.kind == "failed" and "did not finish within 15m" in (failed.reason or "")
    assert any(f"Cloud Map service payments-{dep_id}" in p for p in dep.problems), dep.problems
    # The canary's ECS service and node are gone; only its Cloud Map service waits.
    assert world.traffic_targets() == {"payments-v1"}


def test_a_failed_ecs_rollout_rolls_back_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_on(world, "ecs")  # the canary is a service of its own on the other backends
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # the canary's tasks never start
    dep_id = start(world)
    dep = world.drive(dep_id, lambda d: d.state == State.WAITING_READY)
    backend = ecs_backends["123456789012"]["us-east-1"]
    backend.services[f"prod:payments-{dep_id}"].deployments[0].update(
        rolloutState="FAILED", rolloutStateReason="ECS deployment circuit breaker: tasks failed"
    )
    waiting_since = world.clock.now
    dep = world.drive(dep_id, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK and dep.ended_by == "error"
    assert "circuit breaker: tasks failed" in (dep.reason or "")
    assert dep.rollback_requested_at - waiting_since < 60  # type: ignore[operator]


def test_a_step_passes_only_once_published_data_covers_its_bake(auto_world: World) -> None:
    """CloudWatch publishes late (the simulated users' data too): a step whose bake has elapsed
    but whose last periods are not published yet is still baking, and its verdict counts only
    the whole periods after the shift."""
    world = auto_world
    dep_id = start(world)
    dep = world.drive(dep_id, lambda d: d.state == State.BAKING)
    shifted = dep.step_started_at
    assert shifted is not None
    s = dep.settings
    assert s.lag == {"appmesh": 120, "alb": 60, "ecs": 60}[world.backend]
    dep = world.drive(dep_id, lambda d: d.step_index == 1)
    passed_at = world.clock.now
    assert passed_at >= covered_at(shifted, s.bake, s.metric_period, s.lag)
    assert passed_at - shifted >= s.bake + s.lag
    verdict = dep.last_verdict
    assert verdict is not None
    # 20 req/s at the first step's weight over the five whole published minutes: never the
    # 100 % stable traffic of the minute before the shift, never the unpublished minutes after.
    first = s.steps[0] / 100  # 10 %, or 25 % on ECS's equal steps
    assert verdict.canary.requests == pytest.approx(20 * first * 300, rel=0.05)
