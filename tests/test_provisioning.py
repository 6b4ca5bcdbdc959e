"""Canary provisioning, readiness, removal and retirement of the old version, on moto."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from moto.ecs.models import ecs_backends

from sandbox.seed import ENVOY_IMAGE, seed_appmesh_service
from sandbox.strict_moto import Strictness
from tests.aws_faults import overtaken_at
from tests.fakes import FakeClock
from workers.aws.appmesh.discovery import discover_stable
from workers.aws.appmesh.provisioning import (
    find_canary,
    provision_canary,
    remove_canary,
    retire_stable,
)
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.clients import AwsClients, make_clients
from workers.aws.cloning import clone_service_request, clone_task_definition, image_repository
from workers.aws.ecs import TAG_KEY, canary_readiness, find_tagged_revision, register_fields
from workers.aws.errors import AwsStepError
from workers.aws.removal import Removal
from workers.domain.versions import AppMeshCanary, AppMeshStable

MESH = "prod-mesh"
DEP = "4f2a9c1e"
NAME = f"payments-{DEP}"
NEW_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v42"
ROUTE = {
    "cluster": "prod",
    "mesh": MESH,
    "virtual_router": "payments-vr",
    "route": "payments-route",
}
READS = ("Describe", "List", "Get")


class CallLog:
    """Records every API call the clients make, through botocore's before-call event."""

    def __init__(self, clients: AwsClients) -> None:
        self.calls: list[str] = []
        for client in (clients.ecs, clients.appmesh, clients.servicediscovery):
            client.meta.events.register("before-call.*.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(f"{model.service_model.endpoint_prefix}.{model.name}")

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls

    def take_writes(self) -> list[str]:
        return [c for c in self.take() if not c.split(".")[1].startswith(READS)]


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MOTO_ECS_SERVICE_RUNNING", raising=False)
    with mock_aws():
        yield make_clients()


@pytest.fixture
def stable(clients: AwsClients) -> AppMeshStable:
    seed_appmesh_service(clients)
    return discover_stable(clients, **ROUTE)


def task_definition(clients: AwsClients, arn: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    response = clients.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return response["taskDefinition"], response.get("tags", [])


def ecs_service(clients: AwsClients, name: str) -> dict[str, Any]:
    return clients.ecs.describe_services(cluster="prod", services=[name], include=["TAGS"])[
        "services"
    ][0]


def node_spec(clients: AwsClients, name: str) -> dict[str, Any]:
    return clients.appmesh.describe_virtual_node(meshName=MESH, virtualNodeName=name)[
        "virtualNode"
    ]["spec"]


def node_exists(clients: AwsClients, name: str) -> bool:
    names = clients.appmesh.list_virtual_nodes(meshName=MESH)["virtualNodes"]
    return any(n["virtualNodeName"] == name for n in names)


def cloudmap_exists(clients: AwsClients, service_id: str) -> bool:
    return any(s["Id"] == service_id for s in clients.servicediscovery.list_services()["Services"])


def test_provision_clones_and_changes_only_what_must_change(
    clients: AwsClients, stable: AppMeshStable
) -> None:
    canary = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    assert canary.name == canary.virtual_node == canary.ecs_service_name == NAME
    assert canary.task_definition_arn.endswith("task-definition/payments:2")

    # Task definition: a new revision of the same family; only the app image and Envoy's node.
    old, old_tags = task_definition(clients, stable.task_definition_arn)
    new, new_tags = task_definition(clients, canary.task_definition_arn)
    assert new["family"] == "payments" and new["revision"] == 2
    app, envoy = new["containerDefinitions"]
    assert app["image"] == NEW_IMAGE
    assert envoy["image"] == ENVOY_IMAGE
    assert envoy["environment"] == [
        {
            "name": "APPMESH_RESOURCE_ARN",
            "value": f"arn:aws:appmesh:us-east-1:123456789012:mesh/{MESH}/virtualNode/{NAME}",
        }
    ]
    expected = copy.deepcopy(old)
    expected["containerDefinitions"][0]["image"] = NEW_IMAGE
    expected["containerDefinitions"][1]["environment"] = envoy["environment"]
    for field in ("taskDefinitionArn", "revision", "registeredAt"):
        expected.pop(field, None)
        new.pop(field, None)
    assert new == expected
    assert {"key": TAG_KEY, "value": DEP} in new_tags
    assert {"key": "app", "value": "payments"} in new_tags and old_tags == [
        {"key": "app", "value": "payments"}
    ]

    # Cloud Map: same namespace and DNS/health config, own name, tagged.
    old_cm = clients.servicediscovery.get_service(Id=stable.cloudmap_service_id)["Service"]
    new_cm = clients.servicediscovery.get_service(Id=canary.cloudmap_service_id)["Service"]
    assert new_cm["Name"] == NAME and new_cm["Arn"] == canary.cloudmap_service_arn
    assert new_cm["NamespaceId"] == old_cm["NamespaceId"]
    assert new_cm["DnsConfig"] == old_cm["DnsConfig"]
    assert new_cm["HealthCheckCustomConfig"] == old_cm["HealthCheckCustomConfig"]
    cm_tags = clients.servicediscovery.list_tags_for_resource(ResourceARN=new_cm["Arn"])["Tags"]
    assert {"Key": TAG_KEY, "Value": DEP} in cm_tags

    # Virtual node: same listeners, logging...; discovery points at the canary's Cloud Map name.
    old_spec, new_spec = node_spec(clients, "payments-v1"), node_spec(clients, NAME)
    assert new_spec["serviceDiscovery"]["awsCloudMap"] == {
        "namespaceName": "prod.local",
        "serviceName": NAME,
    }
    del old_spec["serviceDiscovery"], new_spec["serviceDiscovery"]
    assert new_spec == old_spec
    node_arn = clients.appmesh.describe_virtual_node(meshName=MESH, virtualNodeName=NAME)[
        "virtualNode"
    ]["metadata"]["arn"]
    node_tags = clients.appmesh.list_tags_for_resource(resourceArn=node_arn)["tags"]
    assert {"key": TAG_KEY, "value": DEP} in node_tags

    # ECS service: same cluster, network, count and launch settings; own registry and revision.
    old_svc, new_svc = ecs_service(clients, "payments"), ecs_service(clients, NAME)
    assert new_svc["status"] == "ACTIVE"
    assert new_svc["taskDefinition"] == canary.task_definition_arn
    assert new_svc["desiredCount"] == old_svc["desiredCount"] == 2
    assert new_svc["networkConfiguration"] == old_svc["networkConfiguration"]
    for field in ("launchType", "platformVersion", "propagateTags", "schedulingStrategy"):
        assert new_svc[field] == old_svc[field]
    assert new_svc["serviceRegistries"] == [{"registryArn": canary.cloudmap_service_arn}]
    assert new_svc["loadBalancers"] == []
    assert {"key": TAG_KEY, "value": DEP} in new_svc["tags"]
    assert {"key": "app", "value": "payments"} in new_svc["tags"]

    # The stable is untouched.
    assert ecs_service(clients, "payments")["taskDefinition"] == stable.task_definition_arn
    assert discover_stable(clients, **ROUTE) == stable


def test_provision_twice_writes_only_once(clients: AwsClients, stable: AppMeshStable) -> None:
    log = CallLog(clients)
    first = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    calls = log.take()
    assert [c for c in calls if not c.split(".")[1].startswith(READS)] == [
        "ecs.RegisterTaskDefinition",
        "servicediscovery.CreateService",
        "appmesh.CreateVirtualNode",
        "ecs.CreateService",
    ]
    assert len(calls) == 12
    second = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    calls = log.take()
    assert second == first
    assert [c for c in calls if not c.split(".")[1].startswith(READS)] == []
    assert len(calls) == 6
    assert (
        len(clients.ecs.list_task_definitions(familyPrefix="payments")["taskDefinitionArns"]) == 2
    )


def test_provision_resumes_after_a_crash_half_way(
    clients: AwsClients, stable: AppMeshStable, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = clients.appmesh.create_virtual_node

    def crash(**_: Any) -> None:
        raise RuntimeError("worker died")

    monkeypatch.setattr(clients.appmesh, "create_virtual_node", crash)
    with pytest.raises(RuntimeError):
        provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    monkeypatch.setattr(clients.appmesh, "create_virtual_node", real)
    partial = find_canary(clients, stable, name=NAME)
    assert partial is not None and partial.virtual_node == "" and partial.ecs_service_name == ""
    assert partial.task_definition_arn.endswith(":2") and partial.cloudmap_service_id

    log = CallLog(clients)
    canary = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    assert log.take_writes() == ["appmesh.CreateVirtualNode", "ecs.CreateService"]
    assert canary.task_definition_arn == partial.task_definition_arn
    assert canary.cloudmap_service_id == partial.cloudmap_service_id
    assert find_canary(clients, stable, name=NAME) == canary


@pytest.mark.parametrize(
    ("client", "operation"),
    [
        ("ecs", "register_task_definition"),
        ("servicediscovery", "create_service"),
        ("appmesh", "create_virtual_node"),
        ("ecs", "create_service"),
    ],
)
def test_a_rerun_overtaking_a_slow_first_attempt_leaves_one_canary_both_agree_on(
    clients: AwsClients,
    stable: AppMeshStable,
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    operation: str,
) -> None:
    """The watchdog re-runs a provisioning step whose first attempt is slow (its run lock
    expired): the re-run creates everything while the first attempt is still between its look
    and its create. AWS then refuses that create (Cloud Map ServiceAlreadyExists, App Mesh
    ConflictException, ECS "Creation of service was not idempotent"): the first attempt adopts
    what the re-run made, and a revision it registered for nothing is deregistered."""
    provision = functools.partial(
        provision_canary, clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP
    )
    rerun: list[AppMeshCanary] = []
    overtaken_at(
        monkeypatch, getattr(clients, client), operation, lambda: rerun.append(provision())
    )

    first = provision()

    assert rerun == [first]
    assert find_canary(clients, stable, name=NAME) == first
    assert ecs_service(clients, NAME)["taskDefinition"] == first.task_definition_arn
    namespace = clients.servicediscovery.list_services()["Services"]
    assert [s["Id"] for s in namespace if s["Name"] == NAME] == [first.cloudmap_service_id]
    mine = clients.ecs.list_task_definitions(familyPrefix="payments", status="ACTIVE")
    assert [a for a in mine["taskDefinitionArns"] if not a.endswith(":1")] == [
        first.task_definition_arn
    ]


def test_older_envoy_variable_and_app_container_chosen_by_repository(clients: AwsClients) -> None:
    seed_appmesh_service(clients)
    base, _ = task_definition(clients, "payments")
    containers = [
        {
            "name": "log-router",
            "image": "public.ecr.aws/aws-observability/fluent-bit:2",
            "memory": 64,
        },
        {**base["containerDefinitions"][0], "image": "registry:5000/team/payments:v1"},
        {
            **base["containerDefinitions"][1],
            "environment": [
                {
                    "name": "APPMESH_VIRTUAL_NODE_NAME",
                    "value": f"mesh/{MESH}/virtualNode/payments-v1",
                }
            ],
        },
    ]
    arn = clients.ecs.register_task_definition(
        family="payments",
        containerDefinitions=containers,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        proxyConfiguration=base["proxyConfiguration"],
    )["taskDefinition"]["taskDefinitionArn"]
    clients.ecs.update_service(cluster="prod", service="payments", taskDefinition=arn)
    stable = discover_stable(clients, **ROUTE)
    assert stable.image == "public.ecr.aws/aws-observability/fluent-bit:2"  # first non-Envoy

    canary = provision_canary(
        clients, stable, name=NAME, image="registry:5000/team/payments:v2", deployment_id=DEP
    )
    new, _ = task_definition(clients, canary.task_definition_arn)
    log_router, app, envoy = new["containerDefinitions"]
    assert log_router["image"] == "public.ecr.aws/aws-observability/fluent-bit:2"
    assert app["image"] == "registry:5000/team/payments:v2"
    assert envoy["environment"] == [
        {"name": "APPMESH_VIRTUAL_NODE_NAME", "value": f"mesh/{MESH}/virtualNode/{NAME}"}
    ]


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v42",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments",
        ),
        ("registry:5000/team/app", "registry:5000/team/app"),
        ("registry:5000/team/app:1.2", "registry:5000/team/app"),
        ("app@sha256:" + "a" * 64, "app"),
        ("ghcr.io/o/app:v1@sha256:" + "b" * 64, "ghcr.io/o/app"),
    ],
)
def test_image_repository(image: str, repository: str) -> None:
    assert image_repository(image) == repository


def test_task_definition_without_envoy_reference_is_refused() -> None:
    source = {
        "family": "payments",
        "containerDefinitions": [
            {"name": "app", "image": "payments:v1"},
            {"name": "envoy", "image": ENVOY_IMAGE, "environment": []},
        ],
    }
    with pytest.raises(AwsStepError, match="APPMESH_RESOURCE_ARN"):
        clone_task_definition(
            source,
            accepted_fields={"family", "containerDefinitions"},
            image="payments:v2",
            virtual_node=NAME,
            deployment_id=DEP,
        )


def test_readiness(clients: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_appmesh_service(clients)
    stable = discover_stable(clients, **ROUTE)
    provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    readiness = canary_readiness(clients, cluster="prod", ecs_service_name=NAME)
    assert (readiness.running, readiness.desired, readiness.rollout_state, readiness.ready) == (
        0,
        2,
        "IN_PROGRESS",
        False,
    )
    # moto starts the pinned number of tasks for services created while this is set.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    other = provision_canary(
        clients, stable, name="payments-zz000001", image=NEW_IMAGE, deployment_id="zz000001"
    )
    ready = canary_readiness(clients, cluster="prod", ecs_service_name=other.ecs_service_name)
    assert (ready.running, ready.desired, ready.rollout_state, ready.ready) == (
        2,
        2,
        "COMPLETED",
        True,
    )
    with pytest.raises(AwsStepError, match="missing"):
        canary_readiness(clients, cluster="prod", ecs_service_name="payments-nothere")


def test_remove_canary_deletes_everything_and_is_idempotent(
    clients: AwsClients, stable: AppMeshStable
) -> None:
    canary = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    log = CallLog(clients)
    assert remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=False) == Removal()
    assert log.take_writes() == [
        "ecs.UpdateService",
        "ecs.DeleteService",
        "appmesh.DeleteVirtualNode",
        "servicediscovery.DeleteService",
        "ecs.DeregisterTaskDefinition",
    ]
    assert ecs_service(clients, NAME)["status"] == "INACTIVE"
    assert not node_exists(clients, NAME)
    assert not cloudmap_exists(clients, canary.cloudmap_service_id)
    assert task_definition(clients, canary.task_definition_arn)[0]["status"] == "INACTIVE"
    assert find_canary(clients, stable, name=NAME) is None

    assert remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=False) == Removal()
    assert log.take_writes() == []

    # The stable version is untouched.
    assert discover_stable(clients, **ROUTE) == stable
    assert task_definition(clients, stable.task_definition_arn)[0]["status"] == "ACTIVE"
    # A removed canary cannot be provisioned again under the same name.
    with pytest.raises(AwsStepError, match="INACTIVE"):
        provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)


def test_remove_canary_keep_scales_to_zero_only(clients: AwsClients, stable: AppMeshStable) -> None:
    canary = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    log = CallLog(clients)
    assert remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=True) == Removal()
    assert log.take_writes() == ["ecs.UpdateService"]
    service = ecs_service(clients, NAME)
    assert (service["status"], service["desiredCount"]) == ("ACTIVE", 0)
    assert node_exists(clients, NAME) and cloudmap_exists(clients, canary.cloudmap_service_id)
    assert task_definition(clients, canary.task_definition_arn)[0]["status"] == "ACTIVE"
    assert find_canary(clients, stable, name=NAME) == canary

    assert remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=True) == Removal()
    assert log.take_writes() == []
    # Kept for diagnosis, then removed for good later.
    assert remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=False) == Removal()
    assert log.take_writes() == [
        "ecs.DeleteService",
        "appmesh.DeleteVirtualNode",
        "servicediscovery.DeleteService",
        "ecs.DeregisterTaskDefinition",
    ]


def test_remove_canary_never_touches_what_is_not_the_canarys(
    clients: AwsClients, stable: AppMeshStable
) -> None:
    impostor = AppMeshCanary(
        name="payments-abcd1234",
        virtual_node="payments-v1",  # the stable's node, not named for this canary
        cloudmap_service_id=stable.cloudmap_service_id,  # named "payments"
        cloudmap_service_arn=stable.cloudmap_service_arn,
        ecs_service_name="payments",
        task_definition_arn=stable.task_definition_arn,  # not tagged for the canary
    )
    log = CallLog(clients)
    todo = remove_canary(clients, cluster="prod", canary=impostor, mesh=MESH, keep=False)
    assert log.take_writes() == []
    assert len(todo.problems) == 4 and todo.draining == []
    assert discover_stable(clients, **ROUTE) == stable

    # An untagged service that happens to carry the canary's name is left alone too.
    clients.ecs.create_service(
        cluster="prod",
        serviceName="payments-abcd1234",
        taskDefinition=stable.task_definition_arn,
        desiredCount=1,
    )
    log.take()
    named = AppMeshCanary(
        name="payments-abcd1234",
        virtual_node="",
        cloudmap_service_id="",
        cloudmap_service_arn="",
        ecs_service_name="payments-abcd1234",
        task_definition_arn="",
    )
    todo = remove_canary(clients, cluster="prod", canary=named, mesh=MESH, keep=False)
    assert todo.problems == [
        "ECS service payments-abcd1234 in cluster prod is not tagged as this canary's; "
        "it was left alone."
    ]
    assert log.take_writes() == []
    with pytest.raises(AwsStepError, match="not created for this deployment"):
        provision_canary(
            clients, stable, name="payments-abcd1234", image=NEW_IMAGE, deployment_id="abcd1234"
        )


def test_retire_stable_after_promotion(clients: AwsClients, stable: AppMeshStable) -> None:
    canary = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    router = AppMeshRouter(clients.appmesh, MESH, "payments-vr", "payments-route")
    router.set_weights({"payments-v1": 0, NAME: 100})
    log = CallLog(clients)
    with pytest.raises(AwsStepError, match="still lists the old virtual node payments-v1"):
        retire_stable(clients, stable)
    assert log.take_writes() == []

    router.set_weights({NAME: 100})
    log.take()
    assert retire_stable(clients, stable) == Removal()
    assert log.take_writes() == [
        "ecs.UpdateService",
        "ecs.DeleteService",
        "appmesh.DeleteVirtualNode",
        "servicediscovery.DeleteService",
    ]
    assert ecs_service(clients, "payments")["status"] == "INACTIVE"
    assert not node_exists(clients, "payments-v1")
    assert not cloudmap_exists(clients, stable.cloudmap_service_id)
    # The old revision stays registered, for a later roll back by hand.
    assert task_definition(clients, stable.task_definition_arn)[0]["status"] == "ACTIVE"

    assert retire_stable(clients, stable) == Removal()
    assert log.take_writes() == []

    # The promoted canary is the next deployment's stable.
    new_stable = discover_stable(clients, **ROUTE)
    assert new_stable.virtual_node == new_stable.ecs_service_name == NAME
    assert new_stable.task_definition_arn == canary.task_definition_arn
    assert new_stable.image == NEW_IMAGE
    nxt = provision_canary(
        clients, new_stable, name="payments-00000002", image=NEW_IMAGE, deployment_id="00000002"
    )
    new, tags = task_definition(clients, nxt.task_definition_arn)
    assert new["revision"] == 3
    assert {"key": TAG_KEY, "value": "00000002"} in tags
    assert {"key": TAG_KEY, "value": DEP} not in tags


# ---------------------------------------------------------------------------------------------
# Against the strict world: ECS tasks registered in Cloud Map, drained when stopped


@pytest.fixture
def running(
    clients: AwsClients, monkeypatch: pytest.MonkeyPatch, strict_aws: Strictness
) -> FakeClock:
    """Services run 2 tasks each, registered in Cloud Map; stopped tasks drain in 30 s."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    clock = FakeClock()
    strict_aws.clock, strict_aws.drain_seconds = clock, 30
    return clock


def test_remove_canary_waits_for_its_tasks_to_leave_cloud_map(
    clients: AwsClients, running: FakeClock
) -> None:
    seed_appmesh_service(clients)
    stable = discover_stable(clients, **ROUTE)
    canary = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    registered = clients.servicediscovery.list_instances(ServiceId=canary.cloudmap_service_id)
    ids = [i["Id"] for i in registered["Instances"]]
    assert len(ids) == 2

    log = CallLog(clients)
    first = remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=False)
    assert first.problems == []
    assert len(first.draining) == 1 and all(i in first.draining[0] for i in ids)
    assert "servicediscovery.DeleteService" in log.take_writes()
    assert ecs_service(clients, NAME)["status"] == "INACTIVE" and not node_exists(clients, NAME)
    assert cloudmap_exists(clients, canary.cloudmap_service_id)

    running.advance(10)
    assert not remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=False).finished
    running.advance(21)
    assert remove_canary(clients, cluster="prod", canary=canary, mesh=MESH, keep=False) == Removal()
    assert not cloudmap_exists(clients, canary.cloudmap_service_id)


def test_retire_stable_deletes_the_old_cloud_map_service_once_drained(
    clients: AwsClients, running: FakeClock
) -> None:
    seed_appmesh_service(clients)
    stable = discover_stable(clients, **ROUTE)
    provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    AppMeshRouter(clients.appmesh, MESH, "payments-vr", "payments-route").set_weights({NAME: 100})
    assert not retire_stable(clients, stable).finished
    assert cloudmap_exists(clients, stable.cloudmap_service_id)
    running.advance(31)
    assert retire_stable(clients, stable) == Removal()
    assert not cloudmap_exists(clients, stable.cloudmap_service_id)


def test_cloned_node_filters_on_the_canarys_ecs_service(
    clients: AwsClients, stable: AppMeshStable
) -> None:
    spec = node_spec(clients, "payments-v1")
    spec["serviceDiscovery"]["awsCloudMap"]["attributes"] = [
        {"key": "ECS_SERVICE_NAME", "value": "payments"},
        {"key": "ECS_CLUSTER_NAME", "value": "prod"},
        {"key": "team", "value": "payments"},  # names the stable: no canary task carries it
    ]
    clients.appmesh.update_virtual_node(meshName=MESH, virtualNodeName="payments-v1", spec=spec)
    provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    assert node_spec(clients, NAME)["serviceDiscovery"]["awsCloudMap"]["attributes"] == [
        {"key": "ECS_SERVICE_NAME", "value": NAME},
        {"key": "ECS_CLUSTER_NAME", "value": "prod"},
    ]


def test_the_canarys_revision_is_found_beyond_the_first_page(
    clients: AwsClients, stable: AppMeshStable, strict_aws: Strictness
) -> None:
    canary = provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    source, _ = task_definition(clients, stable.task_definition_arn)
    newer = clone_task_definition(
        source,
        accepted_fields=register_fields(clients),
        image=NEW_IMAGE,
        virtual_node=None,
        deployment_id="someone",
    )
    for _ in range(3):  # someone registers newer revisions of the family meanwhile
        clients.ecs.register_task_definition(**newer)
    strict_aws.task_definition_page = 2  # AWS may answer short pages with a nextToken
    # As a re-run of provisioning looks for it before the canary's ECS service exists.
    found = find_tagged_revision(clients, "payments", DEP, skip=stable.task_definition_arn)
    assert found is not None and found["taskDefinitionArn"] == canary.task_definition_arn


def test_clone_drops_ecs_native_deployment_fields() -> None:
    stable = {
        "launchType": "FARGATE",
        "deploymentConfiguration": {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "strategy": "CANARY",
            "bakeTimeInMinutes": 10,
            "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5},
            "lifecycleHooks": [{"hookTargetArn": "arn:aws:lambda:x", "lifecycleStages": []}],
        },
        "serviceRegistries": [{"registryArn": "arn:stable"}],
        "tags": [],
    }
    request = clone_service_request(
        stable,
        cluster="prod",
        name=NAME,
        task_definition_arn="arn:td",
        desired_count=2,
        stable_registry_arn="arn:stable",
        canary_registry_arn="arn:canary",
        deployment_id=DEP,
    )
    assert request["deploymentConfiguration"] == {
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    }
    assert stable["deploymentConfiguration"]["strategy"] == "CANARY"  # the stable's is untouched


def test_a_failed_rollout_says_so_with_its_reason(
    clients: AwsClients, stable: AppMeshStable
) -> None:
    provision_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)
    fail_rollout(NAME, "tasks failed to start")
    ready = canary_readiness(clients, cluster="prod", ecs_service_name=NAME)
    assert ready.failed and not ready.ready and ready.reason == "tasks failed to start"


def fail_rollout(service: str, reason: str) -> None:
    """What ECS's deployment circuit breaker does to a rollout (moto never does it)."""
    backend = ecs_backends["123456789012"]["us-east-1"]
    primary = backend.services[f"prod:{service}"].deployments[0]
    primary.update(rolloutState="FAILED", rolloutStateReason=reason)
