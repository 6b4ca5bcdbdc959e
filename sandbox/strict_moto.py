"""moto made as strict as AWS where the product relies on it, in-process and as a server.

moto is kinder than AWS. `install()` patches moto's backend classes (so both `mock_aws` in the
unit tests and the `moto_server` of the sandbox and the end-to-end tests see it) with the rules
the product must live with; docs/AWS.md lists each one with its documentation and its test:

- Cloud Map `CreateService` fails with `ServiceAlreadyExists` when the namespace already has a
  service of that name (https://docs.aws.amazon.com/cloud-map/latest/api/API_CreateService.html:
  "The service can't be created because a service with the same name already exists"); moto
  creates a second one.
- ECS `CreateService` fails with `InvalidParameterException` while an ACTIVE service of that name
  runs in the cluster (AWS: "Creation of service was not idempotent." unless the request is the
  same as the existing service's; refused here whatever the request, the product copes with
  both); moto replaces the service silently.
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
- CloudWatch refuses a request whose parameters break the constraints of its API model
  (required members, lengths, ranges, types) with a 400 `ValidationError` (CloudWatch API
  reference, ValidationException: "One or more input parameters do not satisfy the constraints
  that the operation requires"). The engine's CloudWatch client leaves that check to the service
  (botocore's `parameter_validation` off: it cost an eighth of a batched check's CPU); moto
  checks nothing, so the strict world makes the service's check with botocore's validator and
  the operation's own model.
- CloudWatch `GetMetricData` answers percentile statistics (`Stat: p99`, `p99.9`): moto answers
  None for them. CloudWatch computes a percentile from the raw values of a period, those given
  with `Value` or `Values`/`Counts`; a statistic set counts only if its SampleCount is 1 or its
  Min equals its Max, and no percentile exists when any value is negative (CloudWatch API
  reference, GetMetricStatistics: "CloudWatch needs raw data points to calculate percentile
  statistics"). A period without a percentile has no data point, as on AWS. `Values`/`Counts`
  are kept as one distribution (moto made a data point per count) and take at most 150 values
  (PutMetricData API reference, MetricDatum `Values`: "maximum of 150 values").

Served, ECS's CANARY / LINEAR service deployments are also answered, by the emulator of
sandbox.ecs_deployments behind moto's ECS API (sandbox.ecs_moto).

Run as a server: `python -m sandbox.strict_moto -H 127.0.0.1 -p 5000` (moto_server's arguments),
with the drain delay in seconds in `STRICT_MOTO_DRAIN_SECONDS`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.session import get_session
from botocore.validate import ParamValidator
from moto.cloudwatch.exceptions import ValidationError as CloudWatchValidationError
from moto.cloudwatch.models import (
    CloudWatchBackend,
    MetricAggregatedDatum,
    MetricDatum,
    Statistics,
)
from moto.cloudwatch.responses import CloudWatchResponse
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


class ServiceAlreadyExists(JsonRESTError):
    """Cloud Map's answer to creating a service whose name its namespace already has."""

    def __init__(self, message: str) -> None:
        super().__init__("ServiceAlreadyExists", message)


def _create_cloudmap_service(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_service(self: ServiceDiscoveryBackend, **kwargs: Any) -> Any:
        name, namespace = kwargs.get("name"), kwargs.get("namespace_id")
        for service in list(self.services.values()):
            if service.name == name and service.namespace_id == namespace:
                raise ServiceAlreadyExists(
                    f"A service with the name {name} already exists: {service.id}"
                )
        return original(self, **kwargs)

    return create_service


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
    def create_service(
        self: EC2ContainerServiceBackend,
        cluster_str: str,
        service_name: str,
        *args: Any,
        **kwargs: Any,
    ) -> Service:
        cluster = self._get_cluster(cluster_str)
        existing = self.services.get(f"{cluster.name}:{service_name}")
        if existing is not None and existing.status == "ACTIVE":
            raise InvalidParameterException("Creation of service was not idempotent.")
        service = original(self, cluster_str, service_name, *args, **kwargs)
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
#: CloudWatch's percentile statistics: p0.0 to p100, up to two decimals (pNN.NN).
_PERCENTILE_STAT = re.compile(r"p(\d{1,3}(?:\.\d{1,10})?)")
#: PutMetricData's limit on the distinct values of one MetricDatum.
MAX_DATUM_VALUES = 150


class DistributionDatum(MetricAggregatedDatum):
    """A datum published with Values/Counts: its statistics and its raw values, kept whole."""

    # moto's metaclass reads the service from the module's dotted name, "__main__" when served.
    __module__ = "sandbox.strict_moto"

    def __init__(
        self, namespace: str, member: dict[str, Any], values: list[float], counts: list[float]
    ) -> None:
        total = sum(counts)
        super().__init__(
            namespace=namespace,
            name=member["MetricName"],
            min_stat=min(values),
            max_stat=max(values),
            sample_count=total,
            sum_stat=sum(v * c for v, c in zip(values, counts, strict=True)),
            dimensions=member.get("Dimensions") or [],
            timestamp=member.get("Timestamp"),
            unit=member.get("Unit"),
        )
        self.distribution = list(zip(values, counts, strict=True))


def _raw_values(data: list[Any]) -> list[tuple[float, float]]:
    """(value, count) of a period's data points that CloudWatch keeps raw values of."""
    raw: list[tuple[float, float]] = []
    for datum in data:
        if isinstance(datum, DistributionDatum):
            raw.extend(datum.distribution)
        elif isinstance(datum, MetricDatum):
            raw.append((float(datum.value), 1.0))
        elif isinstance(datum, MetricAggregatedDatum) and datum.sample_count == 1:
            raw.append((float(datum.sum), 1.0))
        elif isinstance(datum, MetricAggregatedDatum) and datum.min == datum.max:
            raw.append((float(datum.min), float(datum.sample_count)))
        elif isinstance(datum, MetricAggregatedDatum):
            return []  # a statistic set of several values: no percentile for this period
    return raw


def percentile_of(raw: list[tuple[float, float]], percentile: float) -> float | None:
    """The nearest-rank percentile of weighted values: the smallest value with at least
    `percentile` % of the data at or below it (AWS does not document its exact method)."""
    total = sum(count for _, count in raw)
    if total <= 0 or any(value < 0 for value, _ in raw):
        return None
    rank = max(1.0, math.ceil(round(percentile / 100 * total, 9)))
    seen = 0.0
    for value, count in sorted(raw):
        seen += count
        if seen >= rank:
            return value
    return max(value for value, _ in raw)


def _statistics_for_type(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_statistics_for_type(self: Statistics, stat: str) -> Any:
        found = _PERCENTILE_STAT.fullmatch(stat)
        if found and float(found.group(1)) <= 100:
            return percentile_of(_raw_values(self.metric_data), float(found.group(1)))
        return original(self, stat)

    return get_statistics_for_type


def _put_metric_data(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def put_metric_data(
        self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]
    ) -> None:
        for i, member in enumerate(metric_data):
            self._validate_parameters_put_metric_data(member, i + 1)
            if len(member.get("Values") or []) > MAX_DATUM_VALUES:
                raise JsonRESTError(
                    "InvalidParameterValue",
                    f"The collection MetricData.member.{i + 1}.Values must not have more than "
                    f"{MAX_DATUM_VALUES} members.",
                )
        plain = [m for m in metric_data if not m.get("Values")]
        for member in metric_data:
            if member.get("Values"):
                values = [float(v) for v in member["Values"]]
                counts = [float(c) for c in (member.get("Counts") or [1] * len(values))]
                self.metric_data.append(DistributionDatum(namespace, member, values, counts))
        if plain:
            original(self, namespace, plain)

    return put_metric_data


def _get_metric_data(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_metric_data(self: CloudWatchBackend, queries: list[Any], *args: Any, **kw: Any) -> Any:
        if len(queries) > METRIC_QUERIES_PER_CALL:
            raise CloudWatchValidationError(
                f"The collection MetricDataQueries must not have a size greater than "
                f"{METRIC_QUERIES_PER_CALL}."
            )
        results = original(self, queries, *args, **kw)
        for result in results:
            # A period whose statistic does not exist (a percentile without raw values) has no
            # data point at all, rather than moto's None.
            pairs = [
                (t, v)
                for t, v in zip(
                    result.get("timestamps", []), result.get("values", []), strict=False
                )
                if v is not None
            ]
            result["timestamps"] = [t for t, _ in pairs]
            result["values"] = [v for _, v in pairs]
        return results

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


#: The CloudWatch operations checked against the model, by moto's method names.
VALIDATED_CLOUDWATCH = {
    "get_metric_data": "GetMetricData",
    "describe_alarms": "DescribeAlarms",
    "put_metric_data": "PutMetricData",
    "get_metric_statistics": "GetMetricStatistics",
}


def _validated(original: Callable[..., Any], operation: str) -> Callable[..., Any]:
    model = get_session().get_service_model("cloudwatch").operation_model(operation)

    @functools.wraps(original)
    def validated(self: CloudWatchResponse) -> Any:
        report = ParamValidator().validate(self._get_params(), model.input_shape)
        if report.has_errors():
            raise CloudWatchValidationError(report.generate_report())
        return original(self)

    return validated


def install() -> None:
    """Patch moto's classes once; every backend, in-process or served, is strict from then on."""
    if getattr(ServiceDiscoveryBackend, "_strict", False):
        return
    sd = ServiceDiscoveryBackend
    sd.delete_service = _delete_cloudmap_service(sd.delete_service)  # type: ignore[method-assign]
    sd.create_service = _create_cloudmap_service(sd.create_service)  # type: ignore[method-assign]
    for name in ("get_service", "list_instances", "discover_instances"):
        setattr(sd, name, _settled(getattr(sd, name)))
    ecs = EC2ContainerServiceBackend
    ecs.create_service = _create_ecs_service(ecs.create_service)  # type: ignore[method-assign]
    ecs.update_service = _update_ecs_service(ecs.update_service)  # type: ignore[method-assign]
    ecs.delete_service = _delete_ecs_service(ecs.delete_service)  # type: ignore[method-assign]
    EC2ContainerServiceResponse.list_task_definitions = _list_task_definitions  # type: ignore[method-assign]
    ecs.describe_services = _describe_services(ecs.describe_services)  # type: ignore[method-assign]
    Statistics.get_statistics_for_type = _statistics_for_type(  # type: ignore[method-assign]
        Statistics.get_statistics_for_type
    )
    cw = CloudWatchBackend
    cw.put_metric_data = _put_metric_data(cw.put_metric_data)  # type: ignore[method-assign]
    cw.get_metric_data = _get_metric_data(cw.get_metric_data)  # type: ignore[method-assign]
    for method, operation in VALIDATED_CLOUDWATCH.items():
        setattr(
            CloudWatchResponse, method, _validated(getattr(CloudWatchResponse, method), operation)
        )
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
