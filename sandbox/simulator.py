"""Simulated users: request counters written into CloudWatch following the traffic weights.

App Mesh: Envoy counters of each virtual node's ECS service, published as the CloudWatch agent
configured by deploy/cloudwatch-agent.json would. ALB: the load balancer's RequestCount and
HTTPCode_Target_5XX_Count per target group of the rule. Each version's 5xx rate is chosen by the
image tag its ECS service runs, so a bad image shows up in the canary's metrics. Data points reach
CloudWatch only after `publication_lag` seconds of `clock`, as on AWS.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sandbox.metrics_feed import DelayedPublisher, put_alb_counts, put_envoy_counts
from workers.analysis.templates import Version
from workers.aws.alb.router import (
    AlbRouter,
    load_balancer_dimension,
    target_group_dimension,
    target_group_name,
)
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.clients import AwsClients
from workers.aws.errors import AwsStepError
from workers.domain.images import short_name

log = logging.getLogger(__name__)

#: 5xx rate of an image whose tag is not listed.
DEFAULT_ERROR_RATE = 0.002
#: Response times behind an ALB: log-normal, median 40 ms, sigma 0.5 (p99 about 128 ms), times
#: the image tag's latency factor (1 when not listed) and the tick's shared load.
BASE_LATENCY_MS = 40.0
LATENCY_SIGMA = 0.5
#: With `latency_noise`, one tick in SPIKE_CHANCE is SPIKE_FACTOR times slower for every version.
SPIKE_CHANCE, SPIKE_FACTOR = 0.1, 3.0

T = TypeVar("T")


@dataclass(frozen=True)
class Share:
    """One target's part of a tick: the image it runs, its requests and 5xx, and the tick's
    shared load on response times."""

    image: str
    requests: int
    errors: int
    load: float


@dataclass
class NodeInfo:
    family: str
    revision: str
    ecs_service: str
    image: str


class _WeightedTraffic:
    """What the simulators do alike: each tick, share its requests among the targets by weight,
    draw each version's 5xx by its image tag, and publish the counts (`tick`); find the ECS
    service behind a target. A simulator says only where its weights come from (`_weights`),
    what a target runs (`_image`) and where its metrics go (`_publish`)."""

    clients: AwsClients
    cluster: str
    requests_per_second: float
    error_rates: Mapping[str, float]
    publication_lag: float
    clock: Callable[[], float]
    _publisher: DelayedPublisher | None

    @property
    def publisher(self) -> DelayedPublisher:
        if self._publisher is None:
            self._publisher = DelayedPublisher(
                self.clients.cloudwatch, lag=self.publication_lag, clock=self.clock
            )
        return self._publisher

    def error_rate(self, image: str) -> float:
        tag = short_name(image).rsplit(":", 1)[-1]
        return self.error_rates.get(tag, DEFAULT_ERROR_RATE)

    #: Latency factor by image tag (e.g. {"v5": 2.0}: every response twice as slow).
    latency_factors: Mapping[str, float]
    #: Sigma of a log-normal load factor shared by all versions each tick (0: steady), with a
    #: spike now and then: noisy latency, the same for the canary and the stable.
    latency_noise: float
    _rng: random.Random

    def tick_load(self) -> float:
        """This tick's shared load factor on every version's response times."""
        if not self.latency_noise:
            return 1.0
        spike = SPIKE_FACTOR if self._rng.random() < SPIKE_CHANCE else 1.0
        return spike * self._rng.lognormvariate(0.0, self.latency_noise)

    def latencies(self, image: str, requests: int, load: float) -> list[float]:
        """The response times (ms) of `requests` served by `image` under `load`."""
        tag = short_name(image).rsplit(":", 1)[-1]
        mu = math.log(BASE_LATENCY_MS * self.latency_factors.get(tag, 1.0) * load)
        return [self._rng.lognormvariate(mu, LATENCY_SIGMA) for _ in range(requests)]

    def tick(self, seconds: float, at: datetime | None = None) -> dict[str, tuple[int, int]]:
        """Publish `seconds` worth of traffic at time `at`, split by weight among the targets
        whose image is found; return {published name: (requests, 5xx)}."""
        when = at or datetime.fromtimestamp(self.clock(), UTC)
        self.publisher.flush()
        return self._serve(self._weights(), seconds, when)

    def tick_seconds(self, starts: Sequence[datetime]) -> None:
        """Publish one second of traffic stamped at each of `starts` (each its own tick), split
        by the weights read once, now: a ticker catching up after a stall reads the route once,
        not once for every second it missed."""
        self.publisher.flush()  # what was held back for the publication lag, due by now
        if not starts:
            return
        split = self._weights()
        for when in starts:
            self._serve(split, 1.0, when)

    def _serve(
        self, split: tuple[Mapping[str, int], int], seconds: float, when: datetime
    ) -> dict[str, tuple[int, int]]:
        weights, total = split
        load = self.tick_load()
        written: dict[str, tuple[int, int]] = {}
        for target, weight in weights.items():
            if weight <= 0:
                continue
            image = self._image(target)
            if image is None:
                continue
            requests = int(round(self.requests_per_second * seconds * weight / total))
            errors = int(round(requests * self.error_rate(image)))
            share = Share(image, requests, errors, load)
            written[self._publish(target, weights, share, when)] = (requests, errors)
        return written

    # What each simulator says for itself ---------------------------------------------------
    def _weights(self) -> tuple[Mapping[str, int], int]:
        """The split now: each target's weight, and the total they are out of."""
        raise NotImplementedError

    def _image(self, target: str) -> str | None:
        """The image a target runs (None: nothing found behind it, so it gets no traffic)."""
        raise NotImplementedError

    def _publish(
        self, target: str, weights: Mapping[str, int], share: Share, when: datetime
    ) -> str:
        """Write one target's share (its image was found) where its metrics go; its name."""
        raise NotImplementedError

    def _active_services(self) -> Iterator[dict[str, Any]]:
        """The cluster's ACTIVE ECS services, described ten at a time as they are asked for."""
        ecs = self.clients.ecs
        arns = ecs.list_services(cluster=self.cluster)["serviceArns"]
        for i in range(0, len(arns), 10):
            for svc in ecs.describe_services(cluster=self.cluster, services=arns[i : i + 10])[
                "services"
            ]:
                if svc.get("status") == "ACTIVE":
                    yield svc


def _cached(cache: dict[str, T], key: str, lookup: Callable[[str], T | None]) -> T | None:
    """cache[key], looked up (and kept) the first time it is found."""
    if key not in cache:
        found = lookup(key)
        if found is None:
            return None
        cache[key] = found
    return cache[key]


@dataclass
class TrafficSimulator(_WeightedTraffic):
    """Writes one service's per-node request counts for each tick of simulated time."""

    clients: AwsClients
    cluster: str
    mesh: str
    virtual_router: str
    route: str
    requests_per_second: float = 50.0
    #: 5xx rate by image tag (e.g. {"v3": 0.2}).
    error_rates: Mapping[str, float] = field(default_factory=dict)
    #: Seconds of `clock` before a data point reaches CloudWatch (the agent's path is slow).
    publication_lag: float = 120.0
    clock: Callable[[], float] = time.time
    #: Unused: the CloudWatch agent publishes no Envoy latency (docs/METRICS.md).
    latency_factors: Mapping[str, float] = field(default_factory=dict)
    latency_noise: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)
    _publisher: DelayedPublisher | None = None
    _nodes: dict[str, NodeInfo] = field(default_factory=dict)

    def _weights(self) -> tuple[Mapping[str, int], int]:
        router = AppMeshRouter(self.clients.appmesh, self.mesh, self.virtual_router, self.route)
        return router.read_weights(), 100

    def _image(self, node: str) -> str | None:
        info = _cached(self._nodes, node, self._lookup)
        return info.image if info else None

    def _publish(self, node: str, weights: Mapping[str, int], share: Share, when: datetime) -> str:
        info = self._nodes[node]
        put_envoy_counts(
            self.publisher,
            Version(self.cluster, info.family, info.revision, info.ecs_service, node),
            requests=share.requests,
            errors=share.errors,
            timestamp=when,
        )
        return node

    def _lookup(self, node: str) -> NodeInfo | None:
        """virtual node -> Cloud Map service name -> ECS service registered to it -> image."""
        try:
            spec = self.clients.appmesh.describe_virtual_node(
                meshName=self.mesh, virtualNodeName=node
            )["virtualNode"]["spec"]
        except Exception:  # deleted meanwhile: no traffic for it
            return None
        cloudmap_name = spec["serviceDiscovery"]["awsCloudMap"]["serviceName"]
        for svc in self._active_services():
            for registry in svc.get("serviceRegistries", []):
                if self._cloudmap_name(registry["registryArn"]) == cloudmap_name:
                    return self._from_task_definition(svc["taskDefinition"], svc["serviceName"])
        log.debug("no ECS service found for virtual node %s", node)
        return None

    def _cloudmap_name(self, arn: str) -> str | None:
        service_id = arn.rsplit("/", 1)[-1]
        try:
            return self.clients.servicediscovery.get_service(Id=service_id)["Service"]["Name"]
        except Exception:
            return None

    def _from_task_definition(self, arn: str, ecs_service: str) -> NodeInfo:
        td: dict[str, Any] = self.clients.ecs.describe_task_definition(taskDefinition=arn)[
            "taskDefinition"
        ]
        for container in td["containerDefinitions"]:
            if "envoy" not in container["image"] and container.get("name") != "envoy":
                return NodeInfo(
                    family=td["family"],
                    revision=str(td["revision"]),
                    ecs_service=ecs_service,
                    image=container["image"],
                )
        raise AwsStepError(f"task definition {arn} has no application container")


@dataclass
class AlbTrafficSimulator(_WeightedTraffic):
    """Writes one ALB rule's per-target-group request and 5xx counts for each tick."""

    clients: AwsClients
    cluster: str
    listener_rule: str | None = None
    listener: str | None = None
    requests_per_second: float = 50.0
    #: 5xx rate by image tag (e.g. {"v3": 0.2}).
    error_rates: Mapping[str, float] = field(default_factory=dict)
    #: Seconds of `clock` before a data point reaches CloudWatch (ALB: about a minute).
    publication_lag: float = 60.0
    clock: Callable[[], float] = time.time
    latency_factors: Mapping[str, float] = field(default_factory=dict)
    latency_noise: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)
    _publisher: DelayedPublisher | None = None
    _images: dict[str, str] = field(default_factory=dict)

    def _weights(self) -> tuple[Mapping[str, int], int]:
        router = AlbRouter(
            self.clients.elbv2, listener_rule=self.listener_rule, listener=self.listener
        )
        raw = router.read_target_groups()
        return raw, sum(raw.values())

    def _image(self, arn: str) -> str | None:
        return _cached(self._images, arn, self._lookup)

    def _publish(self, arn: str, weights: Mapping[str, int], share: Share, when: datetime) -> str:
        put_alb_counts(
            self.publisher,
            load_balancer=load_balancer_dimension(self.listener_rule or self.listener or ""),
            target_group=target_group_dimension(arn),
            requests=share.requests,
            errors=share.errors,
            timestamp=when,
            latencies_ms=self.latencies(share.image, share.requests, share.load),
        )
        return target_group_name(arn)

    def _lookup(self, target_group_arn: str) -> str | None:
        """target group -> ECS service registered to it -> its load-balanced container's image."""
        for svc in self._active_services():
            for lb in svc.get("loadBalancers", []):
                if lb.get("targetGroupArn") == target_group_arn:
                    td = self.clients.ecs.describe_task_definition(
                        taskDefinition=svc["taskDefinition"]
                    )
                    for container in td["taskDefinition"]["containerDefinitions"]:
                        if container["name"] == lb.get("containerName"):
                            return str(container["image"])
        log.debug("no ECS service found for target group %s", target_group_arn)
        return None


@dataclass
class EcsTrafficSimulator(_WeightedTraffic):
    """Router ecs behind an ALB: the production split the deployment emulator holds, written as
    the two target groups' counts (the running revision in `stable_group`, a new one in
    `canary_group`, where ECS registers its tasks)."""

    clients: AwsClients
    cluster: str
    service: str
    deployments: Any  # sandbox.ecs_deployments.EcsDeployments
    listener_rule: str
    stable_group: str
    canary_group: str
    #: The task definition the service ran when seeded (its tasks are in `stable_group`).
    first_task_definition: str
    requests_per_second: float = 50.0
    error_rates: Mapping[str, float] = field(default_factory=dict)
    #: Seconds of `clock` before a data point reaches CloudWatch (ALB: about a minute).
    publication_lag: float = 60.0
    clock: Callable[[], float] = time.time
    latency_factors: Mapping[str, float] = field(default_factory=dict)
    latency_noise: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)
    _publisher: DelayedPublisher | None = None
    _images: dict[str, str] = field(default_factory=dict)
    #: Task definition -> the target group its tasks are registered in.
    _groups: dict[str, str] = field(default_factory=dict)

    def _weights(self) -> tuple[Mapping[str, int], int]:
        shares = self.deployments.production_traffic(cluster=self.cluster, service=self.service)
        return {td: int(round(share)) for td, share in shares.items()}, 100

    def _image(self, task_definition: str) -> str | None:
        return _cached(self._images, task_definition, self._app_image)

    def _publish(
        self, task_definition: str, weights: Mapping[str, int], share: Share, when: datetime
    ) -> str:
        arn = self._group(task_definition, weights)
        put_alb_counts(
            self.publisher,
            load_balancer=load_balancer_dimension(self.listener_rule),
            target_group=target_group_dimension(arn),
            requests=share.requests,
            errors=share.errors,
            timestamp=when,
            latencies_ms=self.latencies(share.image, share.requests, share.load),
        )
        return target_group_name(arn)

    def _group(self, task_definition: str, weights: Mapping[str, int]) -> str:
        """The target group a revision's tasks are in. A new revision's go to the group the
        other revision is not in (ECS's alternate); after a promotion the groups have swapped
        roles, so it is remembered."""
        self._groups.setdefault(self.first_task_definition, self.stable_group)
        if task_definition not in self._groups:
            others = {self._groups.get(td) for td in weights if td != task_definition}
            known = self.canary_group if self.stable_group in others else self.stable_group
            self._groups[task_definition] = known
        return self._groups[task_definition]

    def _app_image(self, task_definition: str) -> str | None:
        td = self.clients.ecs.describe_task_definition(taskDefinition=task_definition)
        for container in td["taskDefinition"]["containerDefinitions"]:
            if container["name"] == "app":
                return str(container["image"])
        return None


#: ListServiceDeployments statuses of a deployment under way (sandbox.ecs_deployments.ACTIVE).
_UNDER_WAY = [
    "PENDING",
    "IN_PROGRESS",
    "STOP_REQUESTED",
    "ROLLBACK_REQUESTED",
    "ROLLBACK_IN_PROGRESS",
]


@dataclass
class ServedEcsDeployments:
    """`EcsDeployments.production_traffic` read through the ECS API, for the emulator behind the
    served moto (sandbox.ecs_moto): the deployment under way's two revisions and their production
    weights, else the service's task definition at 100 %."""

    ecs: Any  # a boto3 ECS client

    def production_traffic(self, *, cluster: str, service: str) -> dict[str, float]:
        listed = self.ecs.list_service_deployments(
            cluster=cluster, service=service, status=_UNDER_WAY
        )["serviceDeployments"]
        if not listed:
            found = self.ecs.describe_services(cluster=cluster, services=[service])["services"]
            return {found[0]["taskDefinition"]: 100.0}
        arn = listed[0]["serviceDeploymentArn"]
        deployment = self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])[
            "serviceDeployments"
        ][0]
        revisions = [*deployment["sourceServiceRevisions"], deployment["targetServiceRevision"]]
        tds = {
            r["serviceRevisionArn"]: r["taskDefinition"]
            for r in self.ecs.describe_service_revisions(
                serviceRevisionArns=[r["arn"] for r in revisions]
            )["serviceRevisions"]
        }
        shares = {tds[r["arn"]]: float(r["requestedProductionTrafficWeight"]) for r in revisions}
        return {td: w for td, w in shares.items() if w > 0}
