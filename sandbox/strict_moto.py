"""moto made as strict as AWS where the product relies on it, in-process and as a server.

moto is kinder than AWS. `install()` patches moto's backend classes (so both `mock_aws` in the
unit tests and the `moto_server` of the sandbox and the end-to-end tests see it) with the rules
the product must live with; docs/AWS.md lists each one with its documentation and its test:

- Cloud Map `DeleteService` fails with `ResourceInUse` while instances are registered
  (https://docs.aws.amazon.com/cloud-map/latest/api/API_DeleteService.html: "If the service
  still contains one or more registered instances, the request fails").
- ECS registers the running tasks of a service that has `serviceRegistries` as Cloud Map
  instances (with the attributes ECS sets: ECS_SERVICE_NAME, ECS_CLUSTER_NAME, ...) and
  deregisters a task only once it has stopped, `drain_seconds` after the service was scaled down
  or deleted (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-discovery.html).
  moto registers none.
- ECS `DeleteService` without `force` fails while the service has a desired count above 0 or
  tasks still running (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeleteService.html:
  "You can delete a service if you have no running tasks in it and the desired task count is
  zero"). moto checks the desired count itself; the running tasks are checked here.
- ELBv2 `DeleteTargetGroup` fails with `ResourceInUse` while a listener's default action or a
  rule's action forwards to the group
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DeleteTargetGroup.html).
  moto already checks rules and default actions (`_any_listener_using`); tests/test_strict_aws.py
  keeps it honest.
- ECS `ListTaskDefinitions` answers at most `maxResults` (default 100) ARNs per page with a
  `nextToken`, sorted by `sort` (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTaskDefinitions.html);
  moto answers everything in one page.
- CloudWatch `GetMetricData` takes at most 500 `MetricDataQueries`
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html:
  "as many as 500 different metrics in a single request"); moto takes any number.
- ECS `DescribeServices` takes at most 10 services, all of one cluster
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeServices.html:
  "You may specify up to 10 services to describe"); moto takes any number.

Served, ECS's CANARY / LINEAR service deployments are also answered, by the emulator of
sandbox.ecs_deployments behind moto's ECS API (sandbox.ecs_moto).

Run as a server: `python -m sandbox.strict_moto -H 127.0.0.1 -p 5000` (moto_server's arguments),
with the drain delay in seconds in `STRICT_MOTO_DRAIN_SECONDS`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.cloudwatch.exceptions import ValidationError as CloudWatchValidationError
from moto.cloudwatch.models import CloudWatchBackend
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Service
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.servicediscovery.exceptions import InstanceNotFound
from moto.servicediscovery.models import ServiceDiscoveryBackend, servicediscovery_backends

DRAIN_ENV = "STRICT_MOTO_DRAIN_SECONDS"
#: ECS stops a task with SIGTERM and waits up to its stopTimeout (30 s by default) before SIGKILL.
DEFAULT_DRAIN_SECONDS = 30.0
#: ListTaskDefinitions' page size when maxResults is not given.
TASK_DEFINITION_PAGE = 100


@dataclass
class Strictness:
    """The knobs of the strict world: how long a stopping task stays registered, and the clock
    that measures it (tests put their own hand-moved clock here)."""

    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    clock: Callable[[], float] = time.time
    #: ListTaskDefinitions' largest page. AWS may answer fewer than maxResults with a nextToken,
    #: so tests shrink it to prove that every page is read.
    task_definition_page: int = TASK_DEFINITION_PAGE
    #: (due time, Cloud Map service id, instance id) of stopping tasks, across all backends.
    draining: list[tuple[float, str, str, ServiceDiscoveryBackend]] = field(default_factory=list)

    def reset(self) -> None:
        self.drain_seconds = float(os.environ.get(DRAIN_ENV, DEFAULT_DRAIN_SECONDS))
        self.clock = time.time
        self.task_definition_page = TASK_DEFINITION_PAGE
        self.draining.clear()


STRICT = Strictness()
STRICT.reset()
# moto_server answers requests on several threads: the draining list is read and rewritten whole.
_LOCK = threading.RLock()


class ResourceInUse(JsonRESTError):
    """Cloud Map's answer to deleting a service that still has instances."""

    def __init__(self, message: str) -> None:
        super().__init__("ResourceInUse", message)


# ---------------------------------------------------------------------------------------------
# Cloud Map: instances drain, a service with instances cannot be deleted


def _settle() -> None:
    """Deregister the instances of the tasks that have stopped by now."""
    now = STRICT.clock()
    with _LOCK:
        due = [d for d in STRICT.draining if d[0] <= now]
        STRICT.draining[:] = [d for d in STRICT.draining if d[0] > now]
    for _, service_id, instance_id, backend in due:
        service = backend.services.get(service_id)
        if service is None:
            continue
        if any(i.instance_id == instance_id for i in service.instances):
            with contextlib.suppress(InstanceNotFound):  # another thread was first
                backend.deregister_instance(service_id, instance_id)


def _settled(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: ServiceDiscoveryBackend, *args: Any, **kwargs: Any) -> Any:
        _settle()
        return method(self, *args, **kwargs)

    return wrapper


def _delete_cloudmap_service(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def delete_service(self: ServiceDiscoveryBackend, service_id: str) -> None:
        _settle()
        service = self.services.get(service_id)
        if service is not None and service.instances:
            raise ResourceInUse(
                f"Service {service_id} can't be deleted: it contains "
                f"{len(service.instances)} instance(s)."
            )
        return original(self, service_id)

    return delete_service


# ---------------------------------------------------------------------------------------------
# ECS: tasks register in Cloud Map while they run


def _tasks(service: Service) -> list[str]:
    """Ids of the service's tasks that run (not stopping)."""
    if not hasattr(service, "_strict_tasks"):
        service._strict_tasks = []  # type: ignore[attr-defined]
    return service._strict_tasks  # type: ignore[attr-defined, no-any-return]


def _registries(service: Service) -> list[tuple[ServiceDiscoveryBackend, str]]:
    """(backend, Cloud Map service id) of each of the ECS service's service registries."""
    backend = servicediscovery_backends[service._account_id][service.region_name]
    found = []
    for registry in service.service_registries or []:
        arn = registry.get("registryArn")
        for sd_service in backend.services.values():
            if sd_service.arn == arn:
                found.append((backend, sd_service.id))
    return found


def _start_tasks(service: Service, count: int) -> None:
    registries = _registries(service)
    family = str(service.task_definition or "").rsplit("/", 1)[-1].rsplit(":", 1)[0]
    for _ in range(count):
        task_id = uuid.uuid4().hex
        _tasks(service).append(task_id)
        for backend, service_id in registries:
            n = len(_tasks(service))
            backend.register_instance(
                service_id,
                task_id,
                creator_request_id=task_id,
                attributes={
                    "AWS_INSTANCE_IPV4": f"10.0.{n // 250}.{n % 250 + 2}",
                    "AVAILABILITY_ZONE": f"{service.region_name}a",
                    "REGION": service.region_name,
                    "ECS_SERVICE_NAME": service.name,
                    "ECS_CLUSTER_NAME": service.cluster_name,
                    "ECS_TASK_DEFINITION_FAMILY": family,
                },
            )


def _stop_tasks(service: Service, count: int) -> None:
    """Stop `count` tasks: their instances go once the drain delay has passed."""
    tasks = _tasks(service)
    stopping, tasks[:] = tasks[:count], tasks[count:]
    due = STRICT.clock() + STRICT.drain_seconds
    with _LOCK:
        for backend, service_id in _registries(service):
            STRICT.draining.extend((due, service_id, task_id, backend) for task_id in stopping)
    _settle()  # a zero drain delay deregisters at once


def _running_in_cloud_map(service: Service) -> int:
    _settle()
    ids = set()
    for backend, service_id in _registries(service):
        ids |= {d[2] for d in STRICT.draining if d[1] == service_id and d[3] is backend}
    return len(ids)


def _follow(service: Service) -> None:
    """Start or stop tasks until as many run as moto says (its running count)."""
    if service.status != "ACTIVE":
        _stop_tasks(service, len(_tasks(service)))
        return
    wanted, have = int(service.running_count), len(_tasks(service))
    if wanted > have:
        _start_tasks(service, wanted - have)
    elif wanted < have:
        _stop_tasks(service, have - wanted)


def _create_ecs_service(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_service(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Service:
        service = original(self, *args, **kwargs)
        _follow(service)
        return service  # type: ignore[no-any-return]

    return create_service


def _update_ecs_service(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def update_service(self: EC2ContainerServiceBackend, properties: dict[str, Any]) -> Service:
        service = original(self, properties)
        _follow(service)
        return service  # type: ignore[no-any-return]

    return update_service


def _delete_ecs_service(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def delete_service(
        self: EC2ContainerServiceBackend, cluster_name: str, service_name: str, force: bool
    ) -> Service:
        if not force:
            service = self._get_service(cluster_name, service_name)
            if _tasks(service) or _running_in_cloud_map(service):
                raise InvalidParameterException(
                    "The service cannot be stopped while tasks are still running."
                )
        service = original(self, cluster_name, service_name, force)
        _follow(service)
        return service  # type: ignore[no-any-return]

    return delete_service


# ---------------------------------------------------------------------------------------------
# ECS: ListTaskDefinitions pages like AWS


def _revision_key(arn: str) -> tuple[str, int]:
    family, _, revision = arn.rsplit("/", 1)[-1].rpartition(":")
    return family, int(revision)


def _list_task_definitions(self: EC2ContainerServiceResponse) -> ActionResult:
    arns = self.ecs_backend.list_task_definitions(
        self._get_param("familyPrefix"), self._get_param("status", "ACTIVE")
    )
    arns = sorted(arns, key=_revision_key, reverse=self._get_param("sort") == "DESC")
    size = min(
        int(self._get_param("maxResults") or TASK_DEFINITION_PAGE), STRICT.task_definition_page
    )
    start = int(self._get_param("nextToken") or 0)
    page: dict[str, Any] = {"taskDefinitionArns": arns[start : start + size]}
    if start + size < len(arns):
        page["nextToken"] = str(start + size)
    return ActionResult(page)


# ---------------------------------------------------------------------------------------------


#: The most MetricDataQueries one GetMetricData takes, the most services one DescribeServices.
METRIC_QUERIES_PER_CALL, SERVICES_PER_DESCRIBE = 500, 10


def _get_metric_data(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_metric_data(self: CloudWatchBackend, queries: list[Any], *args: Any, **kw: Any) -> Any:
        if len(queries) > METRIC_QUERIES_PER_CALL:
            raise CloudWatchValidationError(
                f"The collection MetricDataQueries must not have a size greater than "
                f"{METRIC_QUERIES_PER_CALL}."
            )
        return original(self, queries, *args, **kw)

    return get_metric_data


def _describe_services(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def describe_services(
        self: EC2ContainerServiceBackend, cluster_str: str, names: list[str]
    ) -> Any:
        if len(names) > SERVICES_PER_DESCRIBE:
            raise InvalidParameterException(
                f"services can have at most {SERVICES_PER_DESCRIBE} items."
            )
        return original(self, cluster_str, names)

    return describe_services


def install() -> None:
    """Patch moto's classes once; every backend, in-process or served, is strict from then on."""
    if getattr(ServiceDiscoveryBackend, "_strict", False):
        return
    sd = ServiceDiscoveryBackend
    sd.delete_service = _delete_cloudmap_service(sd.delete_service)  # type: ignore[method-assign]
    for name in ("get_service", "list_instances", "discover_instances"):
        setattr(sd, name, _settled(getattr(sd, name)))
    ecs = EC2ContainerServiceBackend
    ecs.create_service = _create_ecs_service(ecs.create_service)  # type: ignore[method-assign]
    ecs.update_service = _update_ecs_service(ecs.update_service)  # type: ignore[method-assign]
    ecs.delete_service = _delete_ecs_service(ecs.delete_service)  # type: ignore[method-assign]
    EC2ContainerServiceResponse.list_task_definitions = _list_task_definitions  # type: ignore[method-assign]
    ecs.describe_services = _describe_services(ecs.describe_services)  # type: ignore[method-assign]
    cw = CloudWatchBackend
    cw.get_metric_data = _get_metric_data(cw.get_metric_data)  # type: ignore[method-assign]
    sd._strict = True  # type: ignore[attr-defined]


def main(argv: list[str]) -> None:
    """moto_server with the strict rules installed (same arguments as moto_server)."""
    install()
    # Served only: the in-process tests route a client to their own emulator (route_client).
    from sandbox import ecs_moto

    ecs_moto.install()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
