"""Discovery of the stable version from the route, on moto (in-process and over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from sandbox.seed import seed_appmesh_service
from workers.aws.appmesh.discovery import discover_stable
from workers.aws.clients import AwsClients, make_clients
from workers.aws.errors import AwsStepError
from workers.domain.versions import AppMeshStable

MESH = "prod-mesh"
ROUTE = {
    "cluster": "prod",
    "mesh": MESH,
    "virtual_router": "payments-vr",
    "route": "payments-route",
}


class CallLog:
    """Records every API call the clients make, through botocore's before-call event."""

    def __init__(self, clients: AwsClients) -> None:
        self.calls: list[str] = []
        for client in (clients.ecs, clients.appmesh, clients.servicediscovery):
            client.meta.events.register("before-call.*.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def writes(self) -> list[str]:
        return [c for c in self.calls if not c.startswith(("Describe", "List", "Get"))]


def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    _fake_credentials(monkeypatch)
    with mock_aws():
        yield make_clients()


def set_targets(clients: AwsClients, targets: list[dict[str, Any]]) -> None:
    spec = clients.appmesh.describe_route(
        meshName=MESH, virtualRouterName="payments-vr", routeName="payments-route"
    )["route"]["spec"]
    spec["httpRoute"]["action"]["weightedTargets"] = targets
    clients.appmesh.update_route(
        meshName=MESH, virtualRouterName="payments-vr", routeName="payments-route", spec=spec
    )


def clone_node(clients: AwsClients, name: str, discovery: dict[str, Any]) -> None:
    spec = clients.appmesh.describe_virtual_node(meshName=MESH, virtualNodeName="payments-v1")[
        "virtualNode"
    ]["spec"]
    spec["serviceDiscovery"] = discovery
    clients.appmesh.create_virtual_node(meshName=MESH, virtualNodeName=name, spec=spec)


def test_discovers_every_link_and_writes_nothing(clients: AwsClients) -> None:
    names = seed_appmesh_service(clients)
    log = CallLog(clients)
    stable = discover_stable(clients, **ROUTE)
    assert stable == AppMeshStable(
        cluster="prod",
        mesh=MESH,
        virtual_router="payments-vr",
        route="payments-route",
        virtual_node="payments-v1",
        cloudmap_service_id=names["cloudmap_service_id"],
        cloudmap_service_arn=names["cloudmap_service_arn"],
        cloudmap_service_name="payments",
        cloudmap_namespace_id=names["namespace_id"],
        ecs_service_name="payments",
        ecs_service_arn="arn:aws:ecs:us-east-1:123456789012:service/prod/payments",
        task_definition_arn=names["task_definition_arn"],
        family="payments",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v1",
        desired_count=2,
    )
    assert discover_stable(clients, **ROUTE) == stable
    assert log.writes() == []


def test_picks_the_right_service_when_mesh_cluster_and_namespace_are_shared(
    clients: AwsClients,
) -> None:
    seed_appmesh_service(clients, key="orders", image="registry.example/orders:3", desired_count=4)
    seed_appmesh_service(clients)
    seed_appmesh_service(clients)  # re-seeding is harmless
    orders = discover_stable(
        clients, cluster="prod", mesh=MESH, virtual_router="orders-vr", route="orders-route"
    )
    payments = discover_stable(clients, **ROUTE)
    assert (orders.ecs_service_name, orders.image, orders.desired_count) == (
        "orders",
        "registry.example/orders:3",
        4,
    )
    assert payments.ecs_service_name == "payments"
    assert orders.cloudmap_namespace_id == payments.cloudmap_namespace_id
    assert orders.cloudmap_service_id != payments.cloudmap_service_id


def test_route_that_already_splits_traffic_is_refused(clients: AwsClients) -> None:
    seed_appmesh_service(clients)
    clone_node(
        clients,
        "payments-4f2a9c1e",
        {"awsCloudMap": {"namespaceName": "prod.local", "serviceName": "x", "attributes": []}},
    )
    set_targets(
        clients,
        [
            {"virtualNode": "payments-v1", "weight": 60},
            {"virtualNode": "payments-4f2a9c1e", "weight": 40},
        ],
    )
    with pytest.raises(AwsStepError) as info:
        discover_stable(clients, **ROUTE)
    assert str(info.value) == (
        "Route payments-route already splits traffic between payments-v1 (60 %) and "
        "payments-4f2a9c1e (40 %); finish or undo that first."
    )


def test_a_zero_weight_target_does_not_count_as_a_split(clients: AwsClients) -> None:
    seed_appmesh_service(clients)
    clone_node(
        clients,
        "payments-old",
        {"awsCloudMap": {"namespaceName": "prod.local", "serviceName": "x", "attributes": []}},
    )
    set_targets(
        clients,
        [
            {"virtualNode": "payments-old", "weight": 0},
            {"virtualNode": "payments-v1", "weight": 100},
        ],
    )
    assert discover_stable(clients, **ROUTE).virtual_node == "payments-v1"


def test_no_ecs_service_registered_to_the_cloud_map_service(clients: AwsClients) -> None:
    names = seed_appmesh_service(clients)
    clients.ecs.update_service(cluster="prod", service="payments", desiredCount=0)
    clients.ecs.delete_service(cluster="prod", service="payments")
    with pytest.raises(AwsStepError) as info:
        discover_stable(clients, **ROUTE)
    assert str(info.value) == (
        "No ECS service in cluster prod is registered to Cloud Map service payments "
        f"({names['cloudmap_service_id']})."
    )


def test_dns_discovery_is_refused(clients: AwsClients) -> None:
    seed_appmesh_service(clients)
    clone_node(clients, "payments-dns", {"dns": {"hostname": "payments.prod.local"}})
    set_targets(clients, [{"virtualNode": "payments-dns", "weight": 100}])
    with pytest.raises(AwsStepError, match="payments-dns uses DNS service discovery"):
        discover_stable(clients, **ROUTE)


def test_cloud_map_service_missing(clients: AwsClients) -> None:
    seed_appmesh_service(clients)
    clone_node(
        clients,
        "payments-lost",
        {"awsCloudMap": {"namespaceName": "prod.local", "serviceName": "lost", "attributes": []}},
    )
    set_targets(clients, [{"virtualNode": "payments-lost", "weight": 100}])
    with pytest.raises(AwsStepError, match="no such Cloud Map service exists"):
        discover_stable(clients, **ROUTE)


def test_unknown_namespace_node_and_cluster(clients: AwsClients) -> None:
    seed_appmesh_service(clients)
    clone_node(
        clients,
        "payments-elsewhere",
        {"awsCloudMap": {"namespaceName": "other.local", "serviceName": "p", "attributes": []}},
    )
    set_targets(clients, [{"virtualNode": "payments-elsewhere", "weight": 100}])
    with pytest.raises(AwsStepError, match="namespace other.local does not exist"):
        discover_stable(clients, **ROUTE)
    set_targets(clients, [{"virtualNode": "payments-gone", "weight": 100}])
    with pytest.raises(AwsStepError, match="virtual node payments-gone, which does not exist"):
        discover_stable(clients, **ROUTE)
    set_targets(clients, [{"virtualNode": "payments-v1", "weight": 100}])
    with pytest.raises(AwsStepError, match="ECS cluster staging does not exist"):
        discover_stable(clients, **{**ROUTE, "cluster": "staging"})
    with pytest.raises(AwsStepError, match="Route nope"):
        discover_stable(clients, **{**ROUTE, "route": "nope"})


def test_two_ecs_services_on_one_registry_is_ambiguous(clients: AwsClients) -> None:
    names = seed_appmesh_service(clients)
    clients.ecs.create_service(
        cluster="prod",
        serviceName="payments-copy",
        taskDefinition=names["task_definition_arn"],
        desiredCount=1,
        launchType="FARGATE",
        serviceRegistries=[{"registryArn": names["cloudmap_service_arn"]}],
    )
    with pytest.raises(AwsStepError, match="payments, payments-copy"):
        discover_stable(clients, **ROUTE)


def test_works_against_a_moto_server_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_credentials(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        clients = make_clients()
        assert clients.appmesh.meta.endpoint_url == f"http://{host}:{port}"
        names = seed_appmesh_service(clients, route_kind="grpc")
        assert seed_appmesh_service(clients, route_kind="grpc") == names
        stable = discover_stable(clients, **ROUTE)
        assert stable.virtual_node == "payments-v1"
        assert stable.task_definition_arn == names["task_definition_arn"]
    finally:
        server.stop()
