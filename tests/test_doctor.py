"""The doctor's read-only checks of a service against moto (a seeded world per router), the
Slack emulator for channel membership, and the command line over a real process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tests.fakes import IN_PROCESS_BACKENDS, World
from tests.slack_mock import MockSlack
from tests.test_engine import make_world
from workers.doctor import Finding, Report, Status, examine, render
from workers.domain.catalogue import ServiceConfig
from workers.slack.membership import channel_membership


@pytest.fixture(params=IN_PROCESS_BACKENDS)
def world(aws_env: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    with mock_aws():
        yield make_world(monkeypatch, str(request.param), published=False)


@pytest.fixture(params=IN_PROCESS_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def slack() -> Iterator[MockSlack]:
    with MockSlack(channels=("C0PAYMENTS",)) as server:
        yield server


def now(world: World) -> datetime:
    return datetime.fromtimestamp(world.clock.now, UTC)


def settings(world: World, **changes: Any) -> ServiceConfig:
    return world.rt.catalogue().service("payments").model_copy(update=changes)


def doctor(world: World, service: ServiceConfig, slack: Any = None, **kw: Any) -> Report:
    return examine(
        [service],
        backend_for=world.rt.backend,
        cloudwatch=world.clients.cloudwatch,
        slack=slack,
        now=now(world),
        **kw,
    )


def by_check(report: Report) -> dict[str, Finding]:
    return {f.check: f for f in report.findings}


def publish_stable_traffic(world: World, minutes: int = 5) -> None:
    """The stable's traffic over the last `minutes`, then the clock past the publication lag."""
    start = now(world)
    for i in range(minutes * 6):
        world.clock.advance(10)
        world.sim.tick(10, at=start + timedelta(seconds=i * 10 + 5))
    world.clock.advance(150)  # every simulator's publication lag (120 s at most) has passed
    world.sim.tick(0.0)


def test_a_stable_without_metric_series_fails_and_shows_the_exact_query(world: World) -> None:
    report = doctor(world, settings(world))
    found = by_check(report)
    assert found["stable"].status == Status.OK, found["stable"].detail
    assert found["metrics"].status == Status.FAIL
    assert not report.ok
    detail = found["metrics"].detail
    if world.backend == "appmesh":
        assert "namespace ECS/ContainerInsights/Prometheus" in detail
        assert "metric envoy_http_downstream_rq_xx" in detail
        assert "TaskGroup=service:payments" in detail and "envoy_response_code_class=1|2" in detail
    else:
        assert "namespace AWS/ApplicationELB, metric RequestCount" in detail
        assert "TargetGroup=targetgroup/" in detail
    assert "metrics" in render(report) and "some checks FAIL" in render(report)


def test_a_stable_with_traffic_passes_every_check(world: World) -> None:
    world.clients.cloudwatch.put_metric_alarm(
        AlarmName="payments-p99",
        MetricName="latency",
        Namespace="x",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    publish_stable_traffic(world)
    report = doctor(world, settings(world, alarms=["payments-p99"]))
    found = by_check(report)
    assert found["metrics"].status == Status.OK, found["metrics"].detail
    assert found["alarms"].status == Status.OK and "1 exist" in found["alarms"].detail
    assert found["channel"].status == Status.SKIP
    assert report.ok, render(report)


def test_a_missing_alarm_fails_naming_it(world: World) -> None:
    found = by_check(doctor(world, settings(world, alarms=["nope-alarm"])))
    assert found["alarms"].status == Status.FAIL and "nope-alarm" in found["alarms"].detail


def test_an_undiscoverable_stable_fails_and_skips_the_metrics(world: World) -> None:
    broken = {"appmesh": {"route": "no-such-route"}, "alb": {}, "ecs": {"service": "nosuch"}}
    if world.backend == "alb":
        rule = settings(world).listener_rule or ""
        broken["alb"] = {"listener_rule": rule[:-4] + "dead"}
    report = doctor(world, settings(world, **broken[world.backend]))
    found = by_check(report)
    assert found["stable"].status == Status.FAIL and found["stable"].detail
    assert found["metrics"].status == Status.SKIP
    assert not report.ok


def test_channel_membership_is_read_from_slack(world: World, slack: MockSlack) -> None:
    from slack_sdk import WebClient

    client = WebClient(token="xoxb-test", base_url=slack.base_url)
    member = by_check(doctor(world, settings(world, channel="C0PAYMENTS"), client))
    assert member["channel"].status == Status.OK
    outside = by_check(doctor(world, settings(world, channel="C0ELSEWHERE"), client))
    assert outside["channel"].status == Status.FAIL
    assert "invite me with `/invite @canary`" in outside["channel"].detail
    assert channel_membership(client, "C0ELSEWHERE").member is False


def test_the_doctor_calls_no_aws_write(world: World) -> None:
    calls: list[str] = []
    for name in ("ecs", "appmesh", "servicediscovery", "cloudwatch", "elbv2"):
        client = getattr(world.clients, name)
        if client is not None:
            client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    doctor(world, settings(world, alarms=["payments-p99"]))
    assert calls, "the doctor read nothing"
    writes = [c for c in calls if not c.startswith(("Describe", "List", "Get"))]
    assert writes == [], writes
    assert "GetMetricData" in calls and "DescribeAlarms" in calls


def test_render_is_one_aligned_table() -> None:
    report = Report(
        (
            Finding("payments", "stable", Status.OK, "virtual node payments"),
            Finding("payments", "channel", Status.SKIP, "no channel set for the service"),
        )
    )
    text = render(report)
    lines = text.splitlines()
    assert lines[0].split() == ["service", "check", "result", "detail"]
    assert lines[1].index("ok") == lines[0].index("result")
    assert text.endswith("all checks pass")


def test_check_posts_the_table_to_the_person_who_asked(
    world: World, slack: MockSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slack_sdk import WebClient

    from workers.doctor import answer_check

    monkeypatch.setenv("SLACK_API_URL", slack.base_url)
    client = WebClient(token="xoxb-test", base_url=slack.base_url)
    url = slack.response_url()
    # False: the stable has no series and the bot is not in the channel the check was typed in
    assert not answer_check(
        world.rt, "payments", response_url=url, channel="C0NOTBOT", slack=client
    )
    [answer] = slack.responses
    assert answer["response_type"] == "ephemeral"
    text = answer["text"]
    assert text.startswith("Checks of *payments* (read-only):\n```\nservice")
    assert "metrics  FAIL" in text and "channel  FAIL" in text and "/invite @canary" in text


def test_check_never_posts_to_a_url_that_is_not_slack(
    world: World, slack: MockSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.doctor import answer_check

    monkeypatch.setenv("SLACK_API_URL", slack.base_url)
    planted = "http://169.254.169.254/latest/meta-data/"
    assert not answer_check(world.rt, "payments", response_url=planted, channel=None, slack=None)
    assert slack.responses == []


def test_the_check_job_is_json_and_names_only_strings(aws_env: None) -> None:
    import fakeredis

    from workers.runtime.queues import SERIALIZER, RqScheduler, queue_names, rq_queue

    redis = fakeredis.FakeRedis()
    RqScheduler(redis, "doc").check(
        "payments", response_url="https://hooks.slack.com/x", channel="C1"
    )
    [job] = rq_queue(queue_names("doc")[1], redis).get_jobs()
    assert job.func_name == "workers.runtime.jobs.check"
    assert list(job.args) == ["payments", "https://hooks.slack.com/x", "C1"]
    assert job.serializer is SERIALIZER


def test_the_command_line_over_a_real_process(aws_env: None, tmp_path: Path) -> None:
    """`python -m workers doctor payments` against a moto server: exit 1 and the exact query
    while the stable publishes nothing; exit 0 once its series has data."""
    from sandbox.metrics_feed import DelayedPublisher, put_envoy_counts
    from sandbox.processes import base_env, start_moto
    from sandbox.seed import seed_appmesh_service
    from workers.analysis.templates import Version
    from workers.aws.clients import sandbox_clients

    moto, url = start_moto(tmp_path)
    try:
        clients = sandbox_clients(url)
        seed_appmesh_service(clients)
        config = tmp_path / "canary.yaml"
        config.write_text(
            "services:\n  payments:\n    cluster: prod\n    mesh: prod-mesh\n"
            "    virtual_router: payments-vr\n    route: payments-route\n"
        )
        env = base_env({"AWS_ENDPOINT_URL": url, "CANARY_CONFIG": str(config)})

        def doctor(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "workers", "doctor", *args],
                env=env,
                cwd=Path(__file__).resolve().parents[1],
                capture_output=True,
                text=True,
                timeout=120,
            )

        silent = doctor("payments")
        assert silent.returncode == 1, silent.stderr
        assert "metrics  FAIL" in silent.stdout
        assert "metric envoy_http_downstream_rq_xx" in silent.stdout
        assert "TaskGroup=service:payments" in silent.stdout
        assert "channel  skip" in silent.stdout

        stable = Version("prod", "payments", "1", "payments", "payments")
        publisher = DelayedPublisher(clients.cloudwatch)
        # a whole minute well inside the doctor's 10-minute window (a point stamped this very
        # second can fall after the last whole period the doctor reads)
        two_minutes_ago = datetime.now(UTC) - timedelta(minutes=2)
        put_envoy_counts(publisher, stable, requests=50, errors=0, timestamp=two_minutes_ago)
        healthy = doctor()
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert healthy.stdout.rstrip().endswith("all checks pass")

        unknown = doctor("paymnts")
        assert unknown.returncode == 1 and 'No service called "paymnts"' in unknown.stderr
    finally:
        moto.stop()


def test_a_deploy_whose_stable_has_no_series_ends_before_anything_is_created(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    from tests.test_engine import start
    from workers.domain.state import State

    with mock_aws():
        world = make_world(monkeypatch, backend, published=False)
        task_definitions = world.clients.ecs.list_task_definitions()["taskDefinitionArns"]
        services = world.clients.ecs.list_services(cluster="prod")["serviceArns"]
        dep = world.drive(start(world), lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK, (dep.reason, dep.problems)
        assert dep.ended_by == "no metrics" and dep.canary is None
        assert "the stable publishes no metric series" in (dep.reason or "")
        assert "namespace " in (dep.reason or "") and "dimensions " in (dep.reason or "")
        # nothing was created: no task definition, no ECS service, no traffic target
        assert world.clients.ecs.list_task_definitions()["taskDefinitionArns"] == task_definitions
        assert world.clients.ecs.list_services(cluster="prod")["serviceArns"] == services
        if backend != "ecs":
            assert len(world.traffic_targets()) == 1
        kinds = [e.kind for e in world.rt.store.events(dep.id)]
        assert "provisioned" not in kinds and kinds[-1] == "rolled_back"
