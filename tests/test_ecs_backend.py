"""Router ecs in the engine, in process: what only this backend does (the shared scenarios run
for it in tests/test_engine.py). moto for AWS, the ECS deployment emulator answering the engine's
ECS client (sandbox.ecs_deployments.route_client), fakeredis, simulated time and traffic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests import test_engine as scenarios
from tests.fakes import World
from workers import api
from workers.domain.catalogue import ConfigError, parse_catalogue
from workers.domain.events import Cause
from workers.domain.state import State
from workers.domain.versions import EcsCanary
from workers.runtime.jobs import runner
from workers.slack.format import verdict_figures
from workers.slack.thread import render_event

ALARM = "payments-5xx"


@pytest.fixture
def world(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws():
        yield scenarios.make_world(monkeypatch, "ecs")


def calls_to(world: World, method: str) -> list[dict[str, Any]]:
    """Record the requests the emulator answers for `method` (e.g. continue_service_deployment)."""
    seen: list[dict[str, Any]] = []
    real = getattr(world.ecs, method)

    def recording(**request: Any) -> dict[str, Any]:
        seen.append(request)
        return real(**request)

    setattr(world.ecs, method, recording)
    return seen


def ecs_deployment(world: World, dep_id: str) -> dict[str, Any]:
    canary = world.dep(dep_id).canary
    assert isinstance(canary, EcsCanary)
    arn = canary.service_deployment_arn
    return world.ecs.describe_service_deployments(serviceDeploymentArns=[arn])[
        "serviceDeployments"
    ][0]


def test_the_update_service_carries_the_catalogue_plan(world: World) -> None:
    dep_id = scenarios.start(world)
    dep = world.drive(dep_id, lambda d: d.state == State.BAKING)
    config = ecs_deployment(world, dep_id)["deploymentConfiguration"]
    assert config["strategy"] == "LINEAR"
    assert config["linearConfiguration"] == {"stepPercent": 25.0, "stepBakeTimeInMinutes": 5}
    assert config["bakeTimeInMinutes"] == 15  # post_promotion_bake
    hook = config["lifecycleHooks"][0]
    assert hook["targetType"] == "PAUSE"
    assert hook["timeoutConfiguration"] == {"timeoutInMinutes": 1440, "action": "ROLLBACK"}
    stable, canary = world.names(dep_id)
    assert world.weights() == {stable: 75, canary: 25} and dep.weight == 25


def test_ecs_rolling_back_by_itself_ends_rolled_back_with_its_reason(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        world = scenarios.make_world(monkeypatch, "ecs", service={"alarms": [ALARM]})
        world.clients.cloudwatch.put_metric_alarm(
            AlarmName=ALARM,
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=10,
            ComparisonOperator="GreaterThanThreshold",
        )
        dep_id = scenarios.start(world)
        world.drive(dep_id, lambda d: d.state == State.BAKING)
        assert ecs_deployment(world, dep_id)["deploymentConfiguration"]["alarms"] == {
            "alarmNames": [ALARM],
            "enable": True,
            "rollback": True,
        }
        world.clients.cloudwatch.set_alarm_state(
            AlarmName=ALARM, StateValue="ALARM", StateReason="test"
        )
        stops = calls_to(world, "stop_service_deployment")
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK
        assert dep.ended_by == Cause.ECS_ROLLBACK
        assert dep.reason == (
            f"ECS rolled the deployment back: CloudWatch alarm(s) in ALARM: {ALARM}"
        )
        assert ecs_deployment(world, dep_id)["status"] == "ROLLBACK_SUCCESSFUL"
        assert stops == []  # ECS had rolled back already: nothing to stop
        stable, _ = world.names(dep_id)
        assert world.weights() == {stable: 100}
        log = scenarios.kinds(world, dep_id)
        assert log[-3:] == ["rollback_started", "route_restored", "rolled_back"]
        # The thread says who rolled it back and ECS's reason.
        events = world.rt.store.events(dep_id)
        told = render_event(dep, events[-1], events)
        assert told is not None and "rolled back by ECS" in told.text
        assert any(ALARM in str(block) for block in told.blocks)


def test_abort_at_a_pause_answers_it_with_rollback(world: World) -> None:
    dep_id = scenarios.start(world)
    assert world.drive(dep_id, scenarios.at_gate).state == State.AWAITING_APPROVAL
    hook = ecs_deployment(world, dep_id)["lifecycleHookDetails"][0]
    assert hook["status"] == "AWAITING_ACTION"  # ECS waits at the pause while the gate is open
    answers = calls_to(world, "continue_service_deployment")
    assert api.decide_gate(dep_id, 2, approve=False, actor="USAM", rt=world.rt).ok
    dep = world.drive(dep_id, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK and dep.ended_by == Cause.ABORT
    assert [(a["hookId"], a["action"]) for a in answers] == [(hook["hookId"], "ROLLBACK")]
    assert ecs_deployment(world, dep_id)["status"] == "ROLLBACK_SUCCESSFUL"


def test_a_failed_verdict_outside_a_pause_stops_the_deployment(world: World) -> None:
    stops = calls_to(world, "stop_service_deployment")
    dep_id = scenarios.start(world, scenarios.V3)
    dep = world.drive(dep_id, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK and dep.ended_by == Cause.CANARY_CHECK
    assert isinstance(dep.canary, EcsCanary)
    assert stops == [
        {"serviceDeploymentArn": dep.canary.service_deployment_arn, "stopType": "ROLLBACK"}
    ]
    assert ecs_deployment(world, dep_id)["status"] == "ROLLBACK_SUCCESSFUL"


class Killed(BaseException):
    """The worker process dies here (not an error a step handles)."""


@pytest.mark.parametrize("dies", ["after the call", "before the call"])
def test_a_worker_killed_around_continue_continues_exactly_once(world: World, dies: str) -> None:
    dep_id = scenarios.start(world)
    assert world.drive(dep_id, scenarios.at_gate).state == State.AWAITING_APPROVAL
    assert api.decide_gate(dep_id, 2, approve=True, actor="USAM", rt=world.rt).ok
    real = world.ecs.continue_service_deployment
    landed: list[str] = []

    def dying(**request: Any) -> dict[str, Any]:
        if not landed and dies == "before the call":
            landed.append("lost")
            raise Killed
        answer = real(**request)
        landed.append(request["hookId"])
        if len(landed) == 1:
            raise Killed  # ECS continued; the worker dies before recording the shift
        return answer

    world.ecs.continue_service_deployment = dying
    job = world.scheduler.pop_due("run")
    assert job is not None and job.version is not None
    with pytest.raises(Killed):
        runner(world.rt).run(dep_id, job.version)
    dep = world.dep(dep_id)
    assert dep.state == State.SHIFTING and dep.canary is not None
    assert dep.canary.continued_hook  # recorded before the call
    # The watchdog runs the overdue deployment again, at its current version.
    runner(world.rt).run(dep_id, dep.version)
    dep = world.dep(dep_id)
    assert dep.state == State.BAKING and dep.weight == 50
    continued = [h for h in landed if h != "lost"]
    assert dep.canary is not None
    assert continued == [dep.canary.continued_hook]  # exactly one CONTINUE reached ECS
    # The next step is judged before ECS is let go on: it waits at its next pause, at 50 %.
    dep = world.drive(dep_id, scenarios.at_gate)
    assert dep.state == State.AWAITING_APPROVAL and dep.step_number == 2
    assert scenarios.kinds(world, dep_id).count("step_passed") == 2
    stable, canary = world.names(dep_id)
    assert world.weights() == {stable: 50, canary: 50}
    assert len([h for h in landed if h != "lost"]) == 1


def test_a_service_without_ecs_deployment_controller_is_refused_clearly(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        world = scenarios.make_world(monkeypatch, "ecs", service={"service": "legacy"})
        world.clients.ecs.create_service(
            cluster="prod",
            serviceName="legacy",
            taskDefinition=world.seeded["task_definition_arn"],
            desiredCount=1,
            deploymentController={"type": "CODE_DEPLOY"},
        )
        dep_id = scenarios.start(world)
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK and dep.ended_by == Cause.ERROR
        assert "uses the CODE_DEPLOY deployment controller" in (dep.reason or "")


# steps ECS cannot take are refused: in the catalogue and in a command ---------------------------
def ecs_entry(**keys: object) -> dict[str, object]:
    return {"router": "ecs", "cluster": "prod", "service": "payments", **keys}


def test_a_catalogue_with_steps_ecs_cannot_take_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalogue({"services": {"payments": ecs_entry()}})  # default 10,25,50,100
    assert str(caught.value) == (
        "services.payments: router ecs: steps=10,25,50,100 are not equal increments (ECS's "
        "LINEAR shifts the same percentage each time, the last shift taking what is left; "
        "CANARY is one step then 100); ECS can do steps=25,50,75,100 (LINEAR 25 %), "
        "steps=10,20,30,40,50,60,70,80,90,100 (LINEAR 10 %) or steps=10,100 (CANARY 10 %)."
    )
    with pytest.raises(ConfigError, match="router ecs needs service"):
        parse_catalogue({"services": {"payments": {"router": "ecs", "cluster": "prod"}}})
    ok = parse_catalogue({"services": {"payments": ecs_entry(steps=[20, 40, 60, 80, 100])}})
    assert ok.service("payments").service == "payments"


def test_a_command_asking_for_steps_ecs_cannot_take_is_refused_and_changes_nothing(
    world: World,
) -> None:
    answer = api.start_deployment(
        "payments",
        scenarios.V2,
        requester="UDANA",
        overrides={"steps": "10,20,50,75,100"},
        rt=world.rt,
    )
    assert not answer.ok
    assert answer.detail is not None and answer.detail.startswith(
        '"steps=10,20,50,75,100": router ecs: steps=10,20,50,75,100 are not equal increments'
    )
    assert "ECS can do" in answer.detail
    assert world.rt.store.active_ids() == [] and world.scheduler.jobs == []


# a service not behind an ALB: judged by its alarms only ------------------------------------------
def internal_world(monkeypatch: pytest.MonkeyPatch, **service: object) -> World:
    """An ECS world whose catalogue service `internal` has no load balancer (Service Connect)."""
    world = scenarios.make_world(monkeypatch, "ecs", service={"service": "internal", **service})
    td = world.seeded["task_definition_arn"]
    world.clients.ecs.create_service(
        cluster="prod",
        serviceName="internal",
        taskDefinition=td,
        desiredCount=2,
        deploymentController={"type": "ECS"},
    )
    world.ecs.create_service(serviceName="internal", taskDefinition=td, cluster="prod")
    world.clients.cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        MetricName="RequestCount",
        Namespace="AWS/ECS",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )
    return world


def test_without_an_alb_each_step_is_judged_by_alarms_only_and_says_so(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        world = internal_world(monkeypatch, alarms=[ALARM], gates="auto")
        dep_id = scenarios.start(world)
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.PROMOTED, dep.reason
        passed = [e for e in world.rt.store.events(dep_id) if e.kind == "step_passed"]
        assert len(passed) == 4
        for event in passed:
            assert event.kind == "step_passed"
            assert event.verdict.alarms_only and event.verdict.canary.requests == 0
            assert "judged by alarms only" in event.verdict.reason
        assert verdict_figures(passed[0].verdict) == (
            "judged by alarms only (no metric tells the versions apart) · alarms OK"
        )


def test_without_an_alb_an_alarm_fails_the_step(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        # ECS is not told of the alarm here (its own alarm rollback is tested above): the bot's
        # judgement alone must catch it.
        world = internal_world(monkeypatch, alarms=[ALARM], gates="auto")
        world.ecs._alarms = lambda names: []
        dep_id = scenarios.start(world)
        world.drive(dep_id, lambda d: d.state == State.BAKING)
        world.clients.cloudwatch.set_alarm_state(
            AlarmName=ALARM, StateValue="ALARM", StateReason="test"
        )
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK and dep.ended_by == Cause.CANARY_CHECK
        assert dep.last_verdict is not None and dep.last_verdict.alarms_only


def test_without_an_alb_and_without_alarms_nothing_could_judge_so_it_is_refused(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        world = internal_world(monkeypatch)
        dep_id = scenarios.start(world)
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK and dep.ended_by == Cause.ERROR
        assert "no metric tells its revisions apart" in (dep.reason or "")
        assert "requested" in scenarios.kinds(world, dep_id)
        assert (
            world.ecs.list_service_deployments(cluster="prod", service="internal")[
                "serviceDeployments"
            ]
            == []
        )


def test_a_worker_killed_after_update_service_finds_its_deployment_again(world: World) -> None:
    real = world.ecs.update_service
    started: list[str] = []

    def dying(**request: Any) -> dict[str, Any]:
        answer = real(**request)
        started.append(request["taskDefinition"])
        if len(started) == 1:
            raise Killed  # ECS started the deployment; the worker dies before recording it
        return answer

    world.ecs.update_service = dying
    dep_id = scenarios.start(world)
    job = world.scheduler.pop_due("run")
    assert job is not None and job.version is not None
    with pytest.raises(Killed):
        runner(world.rt).run(dep_id, job.version)
    dep = world.dep(dep_id)
    assert dep.state == State.PROVISIONING and dep.canary is None and dep.stable is not None
    runner(world.rt).run(dep_id, dep.version)  # the watchdog's re-run
    dep = world.dep(dep_id)
    assert dep.state == State.WAITING_READY and isinstance(dep.canary, EcsCanary)
    listed = world.ecs.list_service_deployments(cluster="prod", service="payments")
    assert [d["serviceDeploymentArn"] for d in listed["serviceDeployments"]] == [
        dep.canary.service_deployment_arn
    ]
    assert len(started) == 1  # found, not started again
    assert world.drive(dep_id, scenarios.at_gate).state == State.AWAITING_APPROVAL


def test_aws_calls_per_weight_step(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check reads the deployment once (is it still going?) and the metrics; a shift reads it,
    continues the pause once and reads it again."""
    with mock_aws():
        world = scenarios.make_world(monkeypatch, "ecs", gates="auto")
        calls: list[str] = []

        def count(model, **_: object) -> None:  # type: ignore[no-untyped-def]
            if world.in_engine:
                calls.append(model.name)

        for client in (world.clients.ecs, world.clients.cloudwatch, world.clients.elbv2):
            # first: the emulator's handler answers ECS's calls and ends the event there
            client.meta.events.register_first("before-call.*.*", count)
        dep_id = scenarios.start(world)
        world.drive(dep_id, lambda d: d.state == State.BAKING)
        calls.clear()
        world.drive(dep_id, lambda d: d.state == State.BAKING and d.step_index == 1)
        # one check per analysis interval until published data covers the 5m bake (metric lag)
        checks = calls.count("DescribeServiceDeployments") - 2  # the shift reads it twice
        lag_minutes = world.dep(dep_id).settings.lag // 60
        assert 5 + lag_minutes <= checks <= 6 + lag_minutes
        assert 5 <= calls.count("GetMetricData") <= checks  # none while no period is published
        assert calls.count("ContinueServiceDeployment") == 1
        assert set(calls) == {
            "GetMetricData",
            "DescribeServiceDeployments",
            "ContinueServiceDeployment",
        }
        assert world.drive(dep_id, lambda d: not d.active).state == State.PROMOTED
