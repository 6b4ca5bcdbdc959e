"""The strict AWS world (sandbox.strict_moto) refuses what AWS refuses, in-process and served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sandbox.processes import start_moto
from sandbox.seed import seed_appmesh_service
from sandbox.seed_alb import seed_alb_service
from sandbox.strict_moto import Strictness
from tests.fakes import FakeClock
from workers.aws.clients import AwsClients, make_clients, sandbox_clients


@pytest.fixture
def clients(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, strict_aws: Strictness
) -> Iterator[AwsClients]:
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    strict_aws.clock = FakeClock()
    strict_aws.drain_seconds = 30
    with mock_aws():
        yield make_clients()


def instances(clients: AwsClients, service_id: str) -> list[dict[str, object]]:
    return list(clients.servicediscovery.list_instances(ServiceId=service_id)["Instances"])


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_ecs_registers_running_tasks_and_cloud_map_refuses_delete_until_they_drained(
    clients: AwsClients, strict_aws: Strictness
) -> None:
    seeded = seed_appmesh_service(clients)
    registered = instances(clients, seeded["cloudmap_service_id"])
    assert len(registered) == 2
    assert {i["Attributes"]["ECS_SERVICE_NAME"] for i in registered} == {"payments"}  # type: ignore[index]

    clients.ecs.update_service(cluster="prod", service="payments", desiredCount=0)
    clients.ecs.delete_service(cluster="prod", service="payments", force=True)
    with pytest.raises(ClientError) as refused:
        clients.servicediscovery.delete_service(Id=seeded["cloudmap_service_id"])
    assert code(refused) == "ResourceInUse"
    assert len(instances(clients, seeded["cloudmap_service_id"])) == 2

    strict_aws.clock.advance(31)  # type: ignore[attr-defined]
    assert instances(clients, seeded["cloudmap_service_id"]) == []
    clients.servicediscovery.delete_service(Id=seeded["cloudmap_service_id"])


def test_ecs_refuses_delete_without_force_while_tasks_run(
    clients: AwsClients, strict_aws: Strictness
) -> None:
    seed_appmesh_service(clients)
    with pytest.raises(ClientError) as desired:
        clients.ecs.delete_service(cluster="prod", service="payments")
    assert code(desired) == "InvalidParameterException"
    clients.ecs.update_service(cluster="prod", service="payments", desiredCount=0)
    with pytest.raises(ClientError) as stopping:
        clients.ecs.delete_service(cluster="prod", service="payments")
    assert code(stopping) == "InvalidParameterException"
    strict_aws.clock.advance(31)  # type: ignore[attr-defined]
    clients.ecs.delete_service(cluster="prod", service="payments")


def test_a_second_cloud_map_or_ecs_service_of_one_name_is_refused(clients: AwsClients) -> None:
    seeded = seed_appmesh_service(clients)
    stable = clients.servicediscovery.get_service(Id=seeded["cloudmap_service_id"])["Service"]
    with pytest.raises(ClientError) as refused:
        clients.servicediscovery.create_service(
            Name=stable["Name"], NamespaceId=stable["NamespaceId"], CreatorRequestId="again"
        )
    assert code(refused) == "ServiceAlreadyExists"
    service = clients.ecs.describe_services(cluster="prod", services=["payments"])["services"][0]
    with pytest.raises(ClientError) as refused:
        clients.ecs.create_service(
            cluster="prod",
            serviceName="payments",
            taskDefinition=service["taskDefinition"],
            desiredCount=1,
        )
    assert code(refused) == "InvalidParameterException"
    # once deleted, the name is free again, on both
    clients.ecs.update_service(cluster="prod", service="payments", desiredCount=0)
    clients.ecs.delete_service(cluster="prod", service="payments", force=True)
    clients.ecs.create_service(
        cluster="prod", serviceName="payments", taskDefinition=service["taskDefinition"]
    )


def test_target_group_in_use_by_a_rule_or_a_default_action_cannot_be_deleted(
    clients: AwsClients,
) -> None:
    seeded = seed_alb_service(clients, key="payments")
    elbv2 = clients.elbv2
    with pytest.raises(ClientError) as by_rule:
        elbv2.delete_target_group(TargetGroupArn=seeded["target_group_arn"])
    assert code(by_rule) == "ResourceInUse"

    other = elbv2.create_target_group(
        Name="other", Protocol="HTTP", Port=80, VpcId=seeded["vpc"], TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    forward = [{"Type": "forward", "TargetGroupArn": other}]
    elbv2.modify_listener(ListenerArn=seeded["listener_arn"], DefaultActions=forward)
    with pytest.raises(ClientError) as by_default:
        elbv2.delete_target_group(TargetGroupArn=other)
    assert code(by_default) == "ResourceInUse"


def test_list_task_definitions_pages_like_aws(clients: AwsClients) -> None:
    container = [{"name": "app", "image": "app:1", "memory": 64}]
    for _ in range(103):
        clients.ecs.register_task_definition(family="many", containerDefinitions=container)
    first = clients.ecs.list_task_definitions(familyPrefix="many", sort="DESC")
    assert len(first["taskDefinitionArns"]) == 100
    assert first["taskDefinitionArns"][0].endswith(":103")
    rest = clients.ecs.list_task_definitions(
        familyPrefix="many", sort="DESC", nextToken=first["nextToken"]
    )
    assert [a.rsplit(":", 1)[1] for a in rest["taskDefinitionArns"]] == ["3", "2", "1"]
    assert "nextToken" not in rest


def test_one_call_takes_at_most_what_aws_takes(clients: AwsClients) -> None:
    """GetMetricData: 500 queries; DescribeServices: 10 services (of one cluster)."""
    from datetime import UTC, datetime, timedelta

    end = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    metric = {"Namespace": "N", "MetricName": "M"}

    def queries(n: int) -> list[dict[str, object]]:
        stat = {"Metric": metric, "Period": 60, "Stat": "Sum"}
        return [{"Id": f"q{i}", "MetricStat": stat} for i in range(n)]

    window = {"StartTime": end - timedelta(minutes=5), "EndTime": end}
    clients.cloudwatch.get_metric_data(MetricDataQueries=queries(500), **window)
    with pytest.raises(ClientError) as refused:
        clients.cloudwatch.get_metric_data(MetricDataQueries=queries(501), **window)
    assert code(refused) == "ValidationError"
    clients.ecs.create_cluster(clusterName="prod")
    names = [f"svc{i}" for i in range(11)]
    clients.ecs.describe_services(cluster="prod", services=names[:10])
    with pytest.raises(ClientError) as refused:
        clients.ecs.describe_services(cluster="prod", services=names)
    assert code(refused) == "InvalidParameterException"


def test_cloudwatch_refuses_what_breaks_its_constraints_as_the_service_does(
    clients: AwsClients,
) -> None:
    """The engine's CloudWatch client leaves the check of a request's parameters to the service
    (botocore's parameter_validation off; with it on, botocore would raise ParamValidationError
    before sending): the strict world refuses what CloudWatch refuses, a 400 ValidationError
    naming each broken constraint, and takes the valid request."""
    from datetime import UTC, datetime, timedelta

    end = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    stat = {"Metric": {"Namespace": "N", "MetricName": "M"}, "Period": 60, "Stat": "Sum"}
    window = {"StartTime": end - timedelta(minutes=5), "EndTime": end}
    clients.cloudwatch.get_metric_data(
        MetricDataQueries=[{"Id": "q1", "MetricStat": stat}], **window
    )
    bad = [
        {"Id": "", "MetricStat": stat},
        {"Id": "q2", "MetricStat": {**stat, "Period": 0}},
    ]
    with pytest.raises(ClientError) as refused:
        clients.cloudwatch.get_metric_data(MetricDataQueries=bad, **window)
    assert code(refused) == "ValidationError"
    message = refused.value.response["Error"]["Message"]
    assert (
        "MetricDataQueries[0].Id" in message and "MetricDataQueries[1].MetricStat.Period" in message
    )
    with pytest.raises(ClientError) as refused:
        clients.cloudwatch.describe_alarms(AlarmNames=[""])
    assert code(refused) == "ValidationError"


def test_the_served_moto_is_strict_too(aws_env: None, tmp_path: Path) -> None:
    moto, url = start_moto(tmp_path, drain_seconds=600)
    try:
        clients = sandbox_clients(url)
        seeded = seed_appmesh_service(clients)
        assert len(instances(clients, seeded["cloudmap_service_id"])) == 2
        clients.ecs.delete_service(cluster="prod", service="payments", force=True)
        with pytest.raises(ClientError) as refused:
            clients.servicediscovery.delete_service(Id=seeded["cloudmap_service_id"])
        assert code(refused) == "ResourceInUse"
    finally:
        moto.stop()
