"""The benchmark's AWS stand-in (bench/aws_standin.py) answers botocore's real requests in the
protocols botocore speaks (CloudWatch: Smithy RPC v2 CBOR; ECS: JSON 1.1; App Mesh: REST-JSON;
ELBv2: query), its answers parse in boto3's clients, and everything else reaches moto."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer
from moto.server import ThreadedMotoServer

from bench.aws_memory import MemoryAws
from bench.aws_standin import AwsStandIn, TrafficModel
from bench.common import MESH, seed_memory
from workers.analysis.templates import AlbMetricTemplate, MetricTemplate, Version
from workers.aws.appmesh.discovery import discover_stable
from workers.aws.appmesh.provisioning import find_canary, provision_canary, remove_canary
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.clients import sandbox_clients
from workers.aws.cloudwatch import (
    AlbTarget,
    CountsRead,
    Measurement,
    alarms_firing,
    alb_query,
    envoy_query,
    fetch_many,
    fetch_one,
)
from workers.aws.ecs import canary_readiness
from workers.aws.presence import Presence, find_gone


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsStandIn]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        model = TrafficModel(requests_per_second=10, error_rate=0.1, firing={"high-5xx"})
        with AwsStandIn(f"http://{host}:{port}", model=model) as proxy:
            yield proxy
    finally:
        server.stop()


def test_cloudwatch_reads_are_answered_from_the_model(standin: AwsStandIn) -> None:
    cw = sandbox_clients(standin.url).cloudwatch
    end = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    version = Version(
        cluster="prod", family="payments", revision="7", ecs_service="payments-c", virtual_node="n"
    )
    query = envoy_query(MetricTemplate(), canary=version, stable=version, period=60)
    found = fetch_one(cw, CountsRead(query, end - timedelta(minutes=5), end))
    canary, stable = found.canary, found.stable
    # 10 requests a second over 5 periods of 60 s: 3,000 requests, 10 % of them 5xx.
    assert (canary.requests, canary.errors) == (3000, 300)
    assert (stable.requests, stable.errors) == (3000, 300)
    page = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "r",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/ApplicationELB",
                        "MetricName": "RequestCount",
                        "Dimensions": [{"Name": "TargetGroup", "Value": "targetgroup/a/1"}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=end - timedelta(minutes=3),
        EndTime=end,
    )
    result = page["MetricDataResults"][0]
    assert result["Values"] == [600.0, 600.0, 600.0]
    assert result["Timestamps"][0] == end - timedelta(minutes=1)  # newest first, as by default
    assert alarms_firing(cw, ["high-5xx", "latency"]) == ("high-5xx",)
    assert standin.forwarded_counts() == {}  # none of them reached moto
    assert standin.counts() == {"cloudwatch.GetMetricData": 2, "cloudwatch.DescribeAlarms": 1}


def test_a_batched_get_metric_data_is_parsed_by_the_products_fetch_many(
    standin: AwsStandIn,
) -> None:
    """Three deployments' reads in one call (ids d<i>_c1.., ALB p99 latency as d<i>_cl/d<i>_sl),
    windows unlike: each read sums only its own window's points and gets its own latency."""
    cw = sandbox_clients(standin.url).cloudwatch
    end = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def target(name: str) -> AlbTarget:
        return AlbTarget(f"app/lb/{name}", f"targetgroup/{name}/1", name, "prod")

    def alb(name: str) -> object:
        return alb_query(
            AlbMetricTemplate(),
            canary=target(name + "-c"),
            stable=target(name),
            period=60,
            percentile=99.0,
        )

    version = Version(
        cluster="prod", family="orders", revision="3", ecs_service="orders-c", virtual_node="n"
    )
    reads = [
        CountsRead(alb("payments"), end - timedelta(minutes=5), end),  # type: ignore[arg-type]
        CountsRead(alb("search"), end - timedelta(minutes=3), end),  # type: ignore[arg-type]
        CountsRead(
            envoy_query(MetricTemplate(), canary=version, stable=version, period=60),
            end - timedelta(minutes=4),
            end - timedelta(minutes=1),
        ),
    ]
    got = fetch_many(cw, reads)
    assert standin.counts() == {"cloudwatch.GetMetricData": 1}  # one call for the three
    assert all(isinstance(m, Measurement) for m in got)
    first, second, envoy = (m for m in got if isinstance(m, Measurement))
    # 10 requests a second: 5 periods of 60 s, then 3; Envoy's window is 3 periods.
    assert (first.canary.requests, second.canary.requests) == (3000, 1800)
    assert (envoy.canary.requests, envoy.canary.errors) == (1800, 180)
    assert first.latency is not None and second.latency is not None and envoy.latency is None
    assert len(first.latency.periods) == 5 and len(second.latency.periods) == 3
    # TargetResponseTime p99 in seconds (0.04), read back in milliseconds.
    assert {(p.canary_ms, p.stable_ms) for p in first.latency.periods} == {(40.0, 40.0)}
    # Each member's figures are its lone read's.
    assert [fetch_one(cw, r) for r in reads] == got
    assert standin.forwarded_counts() == {}


def test_batched_existence_reads_are_answered(standin: AwsStandIn) -> None:
    """DescribeServices of several names in a cluster, DescribeTargetGroups of several ARNs,
    DescribeAlarms of several names: one call each, through the product's own readers."""
    ecs = boto3.client("ecs", endpoint_url=standin.url)
    ecs.create_cluster(clusterName="prod")
    arn = ecs.register_task_definition(
        family="app", containerDefinitions=[{"name": "app", "image": "app:v1", "memory": 64}]
    )["taskDefinition"]["taskDefinitionArn"]
    names = [f"svc{i}-c" for i in range(9)]
    for name in names:
        ecs.create_service(cluster="prod", serviceName=name, taskDefinition=arn, desiredCount=1)
    ec2 = boto3.client("ec2", endpoint_url=standin.url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = boto3.client("elbv2", endpoint_url=standin.url)
    arns = [
        elbv2.create_target_group(Name=f"tg{i}", Protocol="HTTP", Port=80, VpcId=vpc)[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for i in range(3)
    ]
    canaries = [
        Presence(cluster="prod", ecs_service=name, target_group_arn=arns[i % 3])
        for i, name in enumerate(names)
    ] + [Presence(cluster="prod", ecs_service="gone-c")]
    clients = sandbox_clients(standin.url)
    for _ in range(2):
        gone = find_gone(clients, canaries)
        assert gone[:9] == [None] * 9
        assert gone[9] == "The canary's ECS service gone-c is missing."
    assert standin.counts()["ecs.DescribeServices"] == 2  # the 10 names in one call, twice
    assert standin.counts()["elbv2.DescribeTargetGroups"] == 2  # 3 ARNs in one call, twice
    assert standin.forwarded_counts()["elbv2.DescribeTargetGroups"] == 1  # then kept
    alarms = [f"alarm{i}" for i in range(30)] + ["high-5xx"]
    assert alarms_firing(clients.cloudwatch, alarms) == ("high-5xx",)
    assert standin.counts()["cloudwatch.DescribeAlarms"] == 1


def test_describe_services_is_moto_s_service_at_steady_state_until_it_is_written(
    standin: AwsStandIn,
) -> None:
    ecs = boto3.client("ecs", endpoint_url=standin.url)
    ecs.create_cluster(clusterName="prod")
    arn = ecs.register_task_definition(
        family="payments", containerDefinitions=[{"name": "app", "image": "app:v1", "memory": 64}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="prod", serviceName="payments", taskDefinition=arn, desiredCount=3)
    clients = sandbox_clients(standin.url)
    for _ in range(3):
        ready = canary_readiness(clients, cluster="prod", ecs_service_name="payments")
        assert (ready.ready, ready.running, ready.desired) == (True, 3, 3)
    assert standin.forwarded_counts()["ecs.DescribeServices"] == 1  # then kept
    ecs.update_service(cluster="prod", service="payments", desiredCount=5)
    ready = canary_readiness(clients, cluster="prod", ecs_service_name="payments")
    assert (ready.running, ready.desired) == (5, 5)  # the write was seen
    assert standin.forwarded_counts()["ecs.DescribeServices"] == 2
    missing = ecs.describe_services(cluster="prod", services=["nope"])
    assert missing["services"] == [] and missing["failures"][0]["reason"] == "MISSING"
    assert standin.counts()["ecs.DescribeServices"] == 5
    assert standin.counts()["ecs.CreateService"] == 1  # forwarded, and counted by name


def test_virtual_nodes_and_target_groups_are_moto_s_until_written(standin: AwsStandIn) -> None:
    mesh = boto3.client("appmesh", endpoint_url=standin.url)
    mesh.create_mesh(meshName="prod-mesh")
    spec = {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}
    mesh.create_virtual_node(meshName="prod-mesh", virtualNodeName="payments-v1", spec=spec)
    for _ in range(2):
        node = mesh.describe_virtual_node(meshName="prod-mesh", virtualNodeName="payments-v1")
        assert node["virtualNode"]["virtualNodeName"] == "payments-v1"
    mesh.delete_virtual_node(meshName="prod-mesh", virtualNodeName="payments-v1")
    with pytest.raises(ClientError):  # the deletion was seen (plain moto's own error code)
        mesh.describe_virtual_node(meshName="prod-mesh", virtualNodeName="payments-v1")
    assert standin.counts()["appmesh.DescribeVirtualNode"] == 3
    assert standin.forwarded_counts()["appmesh.DescribeVirtualNode"] == 2

    ec2 = boto3.client("ec2", endpoint_url=standin.url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = boto3.client("elbv2", endpoint_url=standin.url)
    arn = elbv2.create_target_group(Name="payments", Protocol="HTTP", Port=80, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    for _ in range(2):
        groups = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
        assert [g["TargetGroupName"] for g in groups] == ["payments"]
    assert standin.counts()["elbv2.DescribeTargetGroups"] == 2
    assert standin.forwarded_counts()["elbv2.DescribeTargetGroups"] == 1
    assert standin.counts()["ec2.CreateVpc"] == 1


def test_cloudwatch_in_smithy_rpc_v2_cbor_too(standin: AwsStandIn) -> None:
    """CloudWatch's model lists RPC v2 CBOR first; a botocore that picks it is answered too."""
    cw = sandbox_clients(standin.url).cloudwatch
    model = cw.meta.service_model
    request = RpcV2CBORSerializer().serialize_to_request(
        {"AlarmNames": ["high-5xx"]}, model.operation_model("DescribeAlarms")
    )
    answer = urllib.request.urlopen(
        urllib.request.Request(
            standin.url + request["url_path"],
            data=request["body"],
            headers={
                **request["headers"],
                "Authorization": "AWS4-HMAC-SHA256 Credential=a/20261201/us-east-1/monitoring/x",
            },
            method="POST",
        ),
        timeout=10,
    )
    parsed = RpcV2CBORParser().parse(
        {"body": answer.read(), "headers": dict(answer.headers), "status_code": answer.status},
        model.operation_model("DescribeAlarms").output_shape,
    )
    assert [(a["AlarmName"], a["StateValue"]) for a in parsed["MetricAlarms"]] == [
        ("high-5xx", "ALARM")
    ]
    assert standin.counts() == {"cloudwatch.DescribeAlarms": 1}


# The stand-in's own ECS, App Mesh and Cloud Map (bench/aws_memory/, in_flight --memory) ------
@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsStandIn, MemoryAws]]:
    """A stand-in holding ECS, App Mesh and Cloud Map in memory, with two services seeded as
    in_flight --memory seeds them; its upstream is a closed port, so nothing may reach it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    memory = MemoryAws()
    seed_memory(memory, {"svc0000": "c000", "svc0001": "c000"})
    with AwsStandIn("http://127.0.0.1:9", memory=memory) as proxy:
        yield proxy, memory


def test_the_app_mesh_backend_s_whole_life_is_answered_from_memory(
    held: tuple[AwsStandIn, MemoryAws],
) -> None:
    """The product's own discovery, provisioning, route weights, readiness and removal run
    against the stand-in through real boto3 clients (JSON 1.1 and REST-JSON), and nothing is
    forwarded."""
    standin, memory = held
    writes: list[dict[str, int]] = []
    memory.on_route = lambda mesh, router, route, weights: writes.append(weights)
    clients = sandbox_clients(standin.url)
    stable = discover_stable(
        clients, cluster="c000", mesh=MESH, virtual_router="svc0001-vr", route="svc0001-route"
    )
    assert (stable.virtual_node, stable.ecs_service_name, stable.family) == (
        "svc0001-v1",
        "svc0001",
        "svc0001",
    )
    assert stable.cloudmap_namespace_id == memory.add_namespace("c000.local")
    canary = provision_canary(
        clients, stable, name="svc0001-abc123", image="app:v2", deployment_id="abc123"
    )
    assert canary.task_definition_arn.endswith("task-definition/svc0001:2")
    again = provision_canary(  # a re-run finds what exists
        clients, stable, name="svc0001-abc123", image="app:v2", deployment_id="abc123"
    )
    assert again == canary
    ready = canary_readiness(clients, cluster="c000", ecs_service_name="svc0001-abc123")
    assert (ready.ready, ready.running, ready.desired) == (True, 2, 2)
    router = AppMeshRouter(clients.appmesh, MESH, "svc0001-vr", "svc0001-route")
    router.set_weights({"svc0001-v1": 90, "svc0001-abc123": 10})
    assert router.read_weights() == {"svc0001-v1": 90, "svc0001-abc123": 10}
    assert writes == [{"svc0001-v1": 90, "svc0001-abc123": 10}]
    router.set_weights({"svc0001-v1": 100})
    assert find_canary(clients, stable, name="svc0001-abc123") is not None
    removal = remove_canary(clients, cluster="c000", canary=canary, mesh=MESH, keep=False)
    assert not removal.problems
    assert find_canary(clients, stable, name="svc0001-abc123") is None
    assert memory.route_weights(MESH, "svc0001-vr", "svc0001-route") == {"svc0001-v1": 100}
    assert standin.forwarded_counts() == {}
    assert standin.counts()["servicediscovery.ListServices"] >= 1


def test_memory_answers_errors_and_pages_as_aws_does(held: tuple[AwsStandIn, MemoryAws]) -> None:
    standin, memory = held
    clients = sandbox_clients(standin.url)
    with pytest.raises(ClientError) as missing_node:
        clients.appmesh.describe_virtual_node(meshName=MESH, virtualNodeName="nope")
    assert missing_node.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError) as missing_service:
        clients.servicediscovery.get_service(Id="srv-nope")
    assert missing_service.value.response["Error"]["Code"] == "ServiceNotFound"
    with pytest.raises(ClientError) as missing_definition:
        clients.ecs.describe_task_definition(taskDefinition="nope:1")
    assert missing_definition.value.response["Error"]["Code"] == "ClientException"
    # ECS's ListServices answers 10 a page: boto3's paginator follows nextToken.
    seed_memory(memory, {f"more{i:02d}": "c000" for i in range(12)})
    pages = list(clients.ecs.get_paginator("list_services").paginate(cluster="c000"))
    assert [len(p["serviceArns"]) for p in pages] == [10, 4]
    # Cloud Map's ListServices filters by namespace.
    other = memory.add_namespace("c001.local")
    filters = [{"Name": "NAMESPACE_ID", "Values": [other], "Condition": "EQ"}]
    assert clients.servicediscovery.list_services(Filters=filters)["Services"] == []
    assert standin.forwarded_counts() == {}


def test_cloud_map_in_smithy_rpc_v2_cbor_too(held: tuple[AwsStandIn, MemoryAws]) -> None:
    """Cloud Map's model lists RPC v2 CBOR first: its answers and errors in CBOR parse."""
    standin, _ = held
    model = sandbox_clients(standin.url).servicediscovery.meta.service_model
    for operation, params in (("ListNamespaces", {}), ("GetService", {"Id": "srv-nope"})):
        op = model.operation_model(operation)
        request = RpcV2CBORSerializer().serialize_to_request(params, op)
        try:
            answer = urllib.request.urlopen(
                urllib.request.Request(
                    standin.url + request["url_path"],
                    data=request["body"],
                    headers={
                        **request["headers"],
                        "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20261201/us-east-1/"
                        "servicediscovery/aws4_request, SignedHeaders=host, Signature=0",
                    },
                    method="POST",
                )
            )
            status, body, headers = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as err:
            status, body, headers = err.code, err.read(), dict(err.headers)
        parsed = RpcV2CBORParser().parse(
            {"status_code": status, "headers": headers, "body": body}, op.output_shape
        )
        if operation == "ListNamespaces":
            assert [n["Name"] for n in parsed["Namespaces"]] == ["c000.local"]
        else:
            assert parsed["Error"]["Code"] == "ServiceNotFound"


def test_a_failing_canary_has_errors_from_the_second_it_fails(
    held: tuple[AwsStandIn, MemoryAws],
) -> None:
    """TrafficModel.failing (in_flight --breaches): the canary's 5xx share is
    `failing_error_rate` in the periods after its failure began, in part in the period it began
    in, and nothing changes for the other versions."""
    standin, _ = held
    since = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    standin.model.failing["svc0001-abc123"] = since.timestamp()
    cw = sandbox_clients(standin.url).cloudwatch

    def errors(service: str) -> list[float]:
        metric = {
            "Namespace": "ECS/ContainerInsights/Envoy",
            "MetricName": "envoy_http_downstream_rq_xx",
            "Dimensions": [
                {"Name": "TaskGroup", "Value": f"service:{service}"},
                {"Name": "envoy_response_code_class", "Value": "5"},
            ],
        }
        answer = cw.get_metric_data(
            MetricDataQueries=[
                {"Id": "e", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}
            ],
            StartTime=since - timedelta(seconds=90),
            EndTime=since + timedelta(seconds=150),
            ScanBy="TimestampAscending",
        )
        return answer["MetricDataResults"][0]["Values"]

    per_period = standin.model.requests_per_second * 60
    assert errors("svc0001-abc123") == [0.0, 0.25 * per_period, 0.5 * per_period, 0.5 * per_period]
    assert errors("svc0001") == [0.0] * 4
