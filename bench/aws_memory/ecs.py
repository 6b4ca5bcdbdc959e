"""The stand-in's ECS: clusters, task definitions and services, at steady state at once."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.aws_memory.common import ACCOUNT, REGION, AwsError, Held, last, one_page


@dataclass(kw_only=True)
class EcsMemory(Held):
    """ECS's calls (`_ecs_<Operation>`), answered from dicts under the caller's lock."""

    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: family -> its revisions in order (revision n is [n - 1]); tags by task definition ARN.
    families: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    td_tags: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: (cluster, name) -> the service (its tags under "tags", removed unless include=TAGS).
    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def _ecs_CreateCluster(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802 - API names
        name = str(r.get("clusterName") or "default")
        cluster = self.clusters.setdefault(
            name,
            {
                "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}",
                "clusterName": name,
                "status": "ACTIVE",
                "activeServicesCount": 0,
                "runningTasksCount": 0,
                "pendingTasksCount": 0,
            },
        )
        return {"cluster": cluster}

    def _ecs_DescribeClusters(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        found, failures = [], []
        for name in r.get("clusters") or ["default"]:
            cluster = self.clusters.get(last(name))
            if cluster:
                found.append(cluster)
            else:
                arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{last(name)}"
                failures.append({"arn": arn, "reason": "MISSING"})
        return {"clusters": found, "failures": failures}

    def _cluster(self, r: Mapping[str, Any]) -> str:
        name = last(str(r.get("cluster") or "default"))
        if name not in self.clusters:
            raise AwsError(400, "ClusterNotFoundException", "Cluster not found.")
        return name

    def _ecs_RegisterTaskDefinition(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        family = str(r["family"])
        revisions = self.families.setdefault(family, [])
        number = len(revisions) + 1
        arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{number}"
        definition = {k: copy.deepcopy(v) for k, v in r.items() if k != "tags"}
        definition.update(
            taskDefinitionArn=arn,
            revision=number,
            status="ACTIVE",
            compatibilities=["EC2", "FARGATE"],
            registeredAt=time.time(),
        )
        revisions.append(definition)
        self.td_tags[arn] = list(r.get("tags") or [])
        return {"taskDefinition": definition, "tags": self.td_tags[arn]}

    def _definition(self, ref: str) -> dict[str, Any]:
        name = ref.rsplit("/", 1)[-1]
        family, _, number = name.partition(":")
        revisions = self.families.get(family, [])
        if number:
            index = int(number) - 1
            if 0 <= index < len(revisions):
                return revisions[index]
        else:
            active = [d for d in revisions if d["status"] == "ACTIVE"]
            if active:
                return active[-1]
        raise AwsError(400, "ClientException", "Unable to describe task definition.")

    def _ecs_DescribeTaskDefinition(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        definition = self._definition(str(r["taskDefinition"]))
        answer: dict[str, Any] = {"taskDefinition": definition}
        if "TAGS" in (r.get("include") or []):
            answer["tags"] = self.td_tags.get(definition["taskDefinitionArn"], [])
        return answer

    def _ecs_DeregisterTaskDefinition(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        definition = self._definition(str(r["taskDefinition"]))
        definition["status"] = "INACTIVE"
        return {"taskDefinition": definition}

    def _ecs_ListTaskDefinitions(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        prefix = str(r.get("familyPrefix") or "")
        status = str(r.get("status") or "ACTIVE")
        arns = [
            d["taskDefinitionArn"]
            for family, revisions in sorted(self.families.items())
            if family.startswith(prefix)
            for d in revisions
            if d["status"] == status
        ]
        if r.get("sort") == "DESC":
            arns.reverse()
        page, token = one_page(arns, r, "nextToken", "maxResults", 100)
        return {"taskDefinitionArns": page, **({"nextToken": token} if token else {})}

    def _ecs_CreateService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        cluster = self._cluster(r)
        name = str(r["serviceName"])
        existing = self.services.get((cluster, name))
        if existing and existing["status"] == "ACTIVE":
            raise AwsError(
                400, "InvalidParameterException", "Creation of service was not idempotent."
            )
        definition = self._definition(str(r["taskDefinition"]))
        desired = int(r.get("desiredCount", 0))
        now = time.time()
        service = {
            "serviceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}",
            "serviceName": name,
            "clusterArn": self.clusters[cluster]["clusterArn"],
            "status": "ACTIVE",
            "desiredCount": desired,
            "runningCount": desired,
            "pendingCount": 0,
            "launchType": r.get("launchType", "FARGATE"),
            "platformVersion": r.get("platformVersion", "LATEST"),
            "taskDefinition": definition["taskDefinitionArn"],
            "deploymentConfiguration": copy.deepcopy(r.get("deploymentConfiguration", {})),
            "loadBalancers": copy.deepcopy(r.get("loadBalancers", [])),
            "serviceRegistries": copy.deepcopy(r.get("serviceRegistries", [])),
            "networkConfiguration": copy.deepcopy(r.get("networkConfiguration", {})),
            "schedulingStrategy": "REPLICA",
            "deploymentController": {"type": "ECS"},
            "enableECSManagedTags": bool(r.get("enableECSManagedTags", False)),
            "propagateTags": r.get("propagateTags", "NONE"),
            "createdAt": now,
            "events": [],
            "deployments": [],
            "tags": list(r.get("tags") or []),
        }
        self._deploy(service, now)
        self.services[(cluster, name)] = service
        return {"service": _untagged(service)}

    def _deploy(self, service: dict[str, Any], now: float) -> None:
        """A new PRIMARY deployment, at steady state at once (a stand-in does not start tasks)."""
        desired = service["desiredCount"]
        service["deployments"] = [
            {
                "id": self._next_id("ecs-svc/", 19),
                "status": "PRIMARY",
                "taskDefinition": service["taskDefinition"],
                "desiredCount": desired,
                "pendingCount": 0,
                "runningCount": desired,
                "failedTasks": 0,
                "createdAt": now,
                "updatedAt": now,
                "launchType": service["launchType"],
                "rolloutState": "COMPLETED",
                "rolloutStateReason": "ECS deployment completed.",
            }
        ]
        service.update(runningCount=desired, pendingCount=0)

    def _service(self, r: Mapping[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(r)
        service = self.services.get((cluster, last(str(r["service"]))))
        if service is None or service["status"] == "INACTIVE":
            raise AwsError(400, "ServiceNotFoundException", "Service not found.")
        return service

    def _ecs_UpdateService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        service = self._service(r)
        if service["status"] != "ACTIVE":
            raise AwsError(400, "ServiceNotActiveException", "Service was not ACTIVE.")
        if "desiredCount" in r:
            service["desiredCount"] = int(r["desiredCount"])
        if r.get("taskDefinition"):
            service["taskDefinition"] = self._definition(str(r["taskDefinition"]))[
                "taskDefinitionArn"
            ]
        self._deploy(service, time.time())
        return {"service": _untagged(service)}

    def _ecs_DeleteService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        service = self._service(r)
        if service["desiredCount"] and not r.get("force"):
            raise AwsError(
                400,
                "InvalidParameterException",
                "The service cannot be stopped while it is scaled above 0.",
            )
        service.update(status="INACTIVE", desiredCount=0, runningCount=0, deployments=[])
        return {"service": _untagged(service)}

    def _ecs_DescribeServices(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        cluster = self._cluster(r)
        tags = "TAGS" in (r.get("include") or [])
        found, failures = [], []
        for ref in r.get("services") or []:
            service = self.services.get((cluster, last(str(ref))))
            if service is None:
                failures.append({"arn": str(ref), "reason": "MISSING"})
            else:
                found.append(copy.deepcopy(service) if tags else _untagged(service))
        return {"services": found, "failures": failures}

    def _ecs_ListServices(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        cluster = self._cluster(r)
        arns = [
            s["serviceArn"]
            for (c, _), s in self.services.items()
            if c == cluster and s["status"] != "INACTIVE"
        ]
        # ListServices answers 10 a page unless maxResults (at most 100) says otherwise.
        page, token = one_page(arns, r, "nextToken", "maxResults", 10)
        return {"serviceArns": page, **({"nextToken": token} if token else {})}

    def _ecs_TagResource(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        arn = str(r["resourceArn"])
        for service in self.services.values():
            if service["serviceArn"] == arn:
                service["tags"] = [*service["tags"], *r.get("tags", [])]
        return {}


def _untagged(service: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in service.items() if k != "tags"})
