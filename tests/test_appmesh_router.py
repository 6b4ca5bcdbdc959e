"""The App Mesh traffic router on moto: idempotent weight shifts that keep the rest of the route."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from sandbox.seed import seed_appmesh_service
from workers.aws.appmesh.router import AppMeshRouter, route_kind
from workers.aws.clients import AwsClients, make_clients
from workers.aws.errors import AwsStepError
from workers.domain.traffic import TrafficRouter, WeightsError, canary_weights

MESH = "prod-mesh"


class CallLog:
    """Records every API call the clients make, through botocore's before-call event."""

    def __init__(self, clients: AwsClients) -> None:
        self.calls: list[str] = []
        for client in (clients.ecs, clients.appmesh, clients.servicediscovery):
            client.meta.events.register("before-call.*.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield make_clients()


def add_node(clients: AwsClients, name: str, like: str = "payments-v1") -> None:
    spec = clients.appmesh.describe_virtual_node(meshName=MESH, virtualNodeName=like)[
        "virtualNode"
    ]["spec"]
    spec["serviceDiscovery"]["awsCloudMap"].update(serviceName=name, attributes=[])
    clients.appmesh.create_virtual_node(meshName=MESH, virtualNodeName=name, spec=spec)


def spec_without_targets(spec: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(spec)
    del stripped[route_kind(stripped)]["action"]["weightedTargets"]
    return stripped


def route_spec(clients: AwsClients, router: str, route: str) -> dict[str, Any]:
    return clients.appmesh.describe_route(meshName=MESH, virtualRouterName=router, routeName=route)[
        "route"
    ]["spec"]


@pytest.mark.parametrize("kind", ["http", "http2", "grpc", "tcp"])
def test_shifts_keep_the_whole_spec_and_are_idempotent(clients: AwsClients, kind: str) -> None:
    names = seed_appmesh_service(clients, route_kind=kind)
    add_node(clients, "payments-4f2a9c1e")
    original = route_spec(clients, names["virtual_router"], names["route"])
    router = AppMeshRouter(clients.appmesh, MESH, names["virtual_router"], names["route"])
    assert isinstance(router, TrafficRouter)
    assert router.read_weights() == {"payments-v1": 100}
    log = CallLog(clients)

    for step, percent in enumerate([10, 25, 50, 100, 0]):
        wanted = canary_weights("payments-v1", "payments-4f2a9c1e", percent)
        assert router.set_weights(wanted) is True
        expected = ["DescribeRoute", "UpdateRoute"]
        if step == 0:  # the canary node is new to the route: checked once
            expected = ["DescribeRoute", "DescribeVirtualNode", "UpdateRoute"]
        assert log.take() == expected
        # Run twice: the second call sees the weights right and writes nothing.
        assert router.set_weights(wanted) is False
        assert log.take() == ["DescribeRoute"]

        spec = route_spec(clients, names["virtual_router"], names["route"])
        assert spec_without_targets(spec) == spec_without_targets(original)
        assert router.read_weights() == wanted
        log.take()

    assert route_spec(clients, names["virtual_router"], names["route"]) == original


def test_retry_policy_and_timeout_survive_every_shift(clients: AwsClients) -> None:
    names = seed_appmesh_service(clients)
    add_node(clients, "payments-4f2a9c1e")
    router = AppMeshRouter(clients.appmesh, MESH, names["virtual_router"], names["route"])
    http = route_spec(clients, names["virtual_router"], names["route"])["httpRoute"]
    assert http["retryPolicy"] == {
        "httpRetryEvents": ["server-error"],
        "maxRetries": 2,
        "perRetryTimeout": {"unit": "s", "value": 2},
    }
    assert http["timeout"] == {"perRequest": {"unit": "s", "value": 15}}
    for percent in (10, 25, 50, 100):
        router.set_weights(canary_weights("payments-v1", "payments-4f2a9c1e", percent))
        now = route_spec(clients, names["virtual_router"], names["route"])["httpRoute"]
        assert now["retryPolicy"] == http["retryPolicy"]
        assert now["timeout"] == http["timeout"]
        assert now["match"] == http["match"]


def test_rich_route_keeps_priority_headers_and_target_ports(clients: AwsClients) -> None:
    names = seed_appmesh_service(clients)
    add_node(clients, "payments-4f2a9c1e")
    spec = {
        "priority": 7,
        "httpRoute": {
            "action": {
                "weightedTargets": [{"virtualNode": "payments-v1", "weight": 100, "port": 8080}]
            },
            "match": {
                "prefix": "/api",
                "method": "POST",
                "headers": [{"name": "x-tenant", "invert": False, "match": {"exact": "blue"}}],
            },
            "retryPolicy": {
                "httpRetryEvents": ["server-error", "gateway-error"],
                "tcpRetryEvents": ["connection-error"],
                "maxRetries": 3,
                "perRetryTimeout": {"unit": "ms", "value": 1500},
            },
            "timeout": {
                "idle": {"unit": "s", "value": 60},
                "perRequest": {"unit": "s", "value": 9},
            },
        },
    }
    clients.appmesh.create_route(
        meshName=MESH, virtualRouterName=names["virtual_router"], routeName="api", spec=spec
    )
    original = route_spec(clients, names["virtual_router"], "api")
    router = AppMeshRouter(clients.appmesh, MESH, names["virtual_router"], "api")

    assert router.set_weights({"payments-v1": 75, "payments-4f2a9c1e": 25}) is True
    now = route_spec(clients, names["virtual_router"], "api")
    assert spec_without_targets(now) == spec_without_targets(original)
    assert now["priority"] == 7
    assert now["httpRoute"]["action"]["weightedTargets"] == [
        {"virtualNode": "payments-v1", "weight": 75, "port": 8080},
        {"virtualNode": "payments-4f2a9c1e", "weight": 25},
    ]


@pytest.mark.parametrize(
    "weights",
    [
        {"payments-v1": 89, "payments-4f2a9c1e": 10},  # sums to 99
        {"payments-v1": 91, "payments-4f2a9c1e": 10},  # sums to 101
        {"payments-v1": 101},
        {"payments-v1": 110, "payments-4f2a9c1e": -10},
        {f"node-{i}": 10 for i in range(9)} | {"a": 5, "b": 5},  # 11 targets
        {},
    ],
)
def test_bad_weights_are_refused_before_any_call(
    clients: AwsClients, weights: dict[str, int]
) -> None:
    names = seed_appmesh_service(clients)
    router = AppMeshRouter(clients.appmesh, MESH, names["virtual_router"], names["route"])
    log = CallLog(clients)
    with pytest.raises(WeightsError):
        router.set_weights(weights)
    assert log.take() == []
    assert router.read_weights() == {"payments-v1": 100}


def test_unknown_virtual_node_is_refused_without_writing(clients: AwsClients) -> None:
    names = seed_appmesh_service(clients)
    router = AppMeshRouter(clients.appmesh, MESH, names["virtual_router"], names["route"])
    log = CallLog(clients)
    with pytest.raises(AwsStepError, match="Virtual node payments-ghost does not exist"):
        router.set_weights({"payments-v1": 90, "payments-ghost": 10})
    assert "UpdateRoute" not in log.take()
    assert router.read_weights() == {"payments-v1": 100}


def test_missing_route_is_a_step_error(clients: AwsClients) -> None:
    seed_appmesh_service(clients)
    router = AppMeshRouter(clients.appmesh, MESH, "payments-vr", "nope")
    with pytest.raises(AwsStepError, match="Route nope of virtual router payments-vr"):
        router.read_weights()
    with pytest.raises(AwsStepError, match="does not exist"):
        router.set_weights({"payments-v1": 100})
