"""The BENCHMARK stand-in's own ECS, App Mesh and Cloud Map, held in memory (`--standin full`).

bench/aws_standin.py answers a check's read calls itself and forwards the rest to moto. At
thousands of deployments moto cannot carry the rest: its Cloud Map lists every service of the
account on every `ListServices` and it slows as it fills, so a ramp of 5,000 deployments through
it takes about an hour (docs/BENCHMARKS.md, "Scale", 2026-12-01). `MemoryAws` answers the calls
of the App Mesh backend's whole life instead (seeding, discovery, provisioning, route weights,
readiness, clean-up), from dicts, in the protocols botocore speaks (JSON 1.1 for ECS and Cloud
Map, RPC v2 CBOR as well, REST-JSON for App Mesh).

It is a stand-in for measuring, not a test world (sandbox/strict_moto.py is): it validates
little beyond what the benchmark's own calls need, an ECS service is at steady state as soon as
it is created or updated (every desired task running, the rollout COMPLETED), and every Cloud Map
namespace belongs to one made-up VPC. Resources have the shapes AWS documents for them (and moto
answers with), so the engine cannot tell them from moto's. Why App Mesh and not ALB: the App Mesh
path is the one the in-flight benchmark has always measured, its weights are one route per
service (one resource, `UpdateRoute`), and the ALB path would need ELBv2's query protocol (XML)
for listeners, rules and target groups as well.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from bench.aws_standin import Answer, Call, decode_cbor, encode_cbor, service_model

ACCOUNT = "123456789012"
REGION = "us-east-1"
#: The made-up VPC every namespace is in (no EC2 is answered here).
VPC = "vpc-0standin0000000"

RouteWrite = Callable[[str, str, str, dict[str, int]], None]


class AwsError(Exception):
    """An AWS error answer: HTTP status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _not_found(code: str, message: str) -> AwsError:
    return AwsError(404 if code == "NotFoundException" else 400, code, message)


def _page(
    items: list[Any], request: Mapping[str, Any], token: str, limit: str, most: int
) -> tuple[list[Any], str | None]:
    """One page of `items` from the request's token and page size (its default `most`)."""
    start = int(request.get(token) or 0)
    size = int(request.get(limit) or most)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _cbor_error(code: str, message: str) -> bytes:
    """{"__type": code, "message": message} in CBOR (RFC 8949): a map of two text strings."""

    def text(value: str) -> bytes:
        raw = value.encode()
        n = len(raw)
        if n < 24:
            head = bytes([0x60 | n])
        elif n < 256:
            head = bytes([0x78, n])
        else:
            head = bytes([0x79]) + n.to_bytes(2, "big")
        return head + raw

    return bytes([0xA2]) + text("__type") + text(code) + text("message") + text(message[:60000])


@dataclass
class MemoryAws:
    """ECS, App Mesh and Cloud Map in memory: `handle` answers a call or returns None (unknown
    to it: the stand-in forwards it to moto). `on_route` hears every route write: (mesh, router,
    route, weights by virtual node)."""

    on_route: RouteWrite | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: family -> its revisions in order (revision n is [n - 1]); tags by task definition ARN.
    families: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    td_tags: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: (cluster, name) -> the service (its tags under "tags", removed unless include=TAGS).
    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    meshes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (mesh, kind, name...) -> the App Mesh resource's data.
    mesh_items: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # the entry ---------------------------------------------------------------------------------
    def handle(self, call: Call, method: str, path: str, body: bytes) -> Answer | None:
        handler = getattr(self, f"_{call.service}_{call.operation}", None)
        if handler is None or call.service not in ("ecs", "appmesh", "servicediscovery"):
            return None
        try:
            if call.service == "appmesh":
                request = {**json.loads(body or b"{}"), **_path_params(call.operation, path)}
                return self._rest(handler(request))
            return _encode(call, self.call(call.service, call.operation, _decode(call, body)))
        except AwsError as err:
            return _error(call, err)

    def call(self, service: str, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """One call's answer from its request (as boto3's keyword arguments); raises AwsError.
        The seeding calls this directly, the HTTP answers through `handle`."""
        handler = getattr(self, f"_{service}_{operation}")
        if service == "appmesh":  # REST-JSON: the body is the output's payload member
            payload = service_model(service).operation_model(operation).output_shape
            member = payload.serialization.get("payload") if payload else None
            data = dict(handler(request))
            return {member: data} if member else data
        with self._lock:
            return dict(handler(request))

    def _next_id(self, prefix: str, width: int = 16) -> str:
        return f"{prefix}{next(self._ids):0{width}x}"

    # ECS ---------------------------------------------------------------------------------------
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
            cluster = self.clusters.get(_last(name))
            if cluster:
                found.append(cluster)
            else:
                arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{_last(name)}"
                failures.append({"arn": arn, "reason": "MISSING"})
        return {"clusters": found, "failures": failures}

    def _cluster(self, r: Mapping[str, Any]) -> str:
        name = _last(str(r.get("cluster") or "default"))
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
        page, token = _page(arns, r, "nextToken", "maxResults", 100)
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
        service = self.services.get((cluster, _last(str(r["service"]))))
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
            service = self.services.get((cluster, _last(str(ref))))
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
        page, token = _page(arns, r, "nextToken", "maxResults", 10)
        return {"serviceArns": page, **({"nextToken": token} if token else {})}

    def _ecs_TagResource(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        arn = str(r["resourceArn"])
        for service in self.services.values():
            if service["serviceArn"] == arn:
                service["tags"] = [*service["tags"], *r.get("tags", [])]
        return {}

    # Cloud Map ---------------------------------------------------------------------------------
    def add_namespace(self, name: str) -> str:
        """A private DNS namespace (CreatePrivateDnsNamespace is an asynchronous operation in
        Cloud Map; the seeding adds its namespaces here directly); returns its id."""
        with self._lock:
            for namespace in self.namespaces.values():
                if namespace["Name"] == name:
                    return str(namespace["Id"])
            ns_id = self._next_id("ns-")
            self.namespaces[ns_id] = {
                "Id": ns_id,
                "Arn": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/{ns_id}",
                "Name": name,
                "Type": "DNS_PRIVATE",
                "Properties": {"DnsProperties": {"HostedZoneId": f"Z{ns_id[3:].upper()}"}},
                "CreateDate": time.time(),
                "ServiceCount": 0,
            }
            return ns_id

    def _servicediscovery_ListNamespaces(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        summaries = [dict(n) for n in self.namespaces.values()]
        page, token = _page(summaries, r, "NextToken", "MaxResults", 100)
        return {"Namespaces": page, **({"NextToken": token} if token else {})}

    def _servicediscovery_GetNamespace(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        namespace = self.namespaces.get(str(r["Id"]))
        if namespace is None:
            raise AwsError(400, "NamespaceNotFound", f"Namespace {r['Id']} not found")
        return {"Namespace": namespace}

    def _servicediscovery_CreateService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        ns_id = str(r.get("NamespaceId") or "")
        if ns_id not in self.namespaces:
            raise AwsError(400, "NamespaceNotFound", f"Namespace {ns_id} not found")
        for service in self.registry.values():
            if service["NamespaceId"] == ns_id and service["Name"] == r["Name"]:
                if service.get("CreatorRequestId") == r.get("CreatorRequestId"):
                    return {"Service": service}  # a retried create
                raise AwsError(400, "ServiceAlreadyExists", "Service already exists")
        sid = self._next_id("srv-")
        service = {
            "Id": sid,
            "Arn": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:service/{sid}",
            "Name": r["Name"],
            "NamespaceId": ns_id,
            "Type": r.get("Type", "DNS_HTTP"),
            "CreateDate": time.time(),
            "CreatorRequestId": r.get("CreatorRequestId", ""),
            **{
                k: copy.deepcopy(r[k])
                for k in (
                    "Description",
                    "DnsConfig",
                    "HealthCheckConfig",
                    "HealthCheckCustomConfig",
                )
                if k in r
            },
        }
        if "DnsConfig" in service:
            service["DnsConfig"]["NamespaceId"] = ns_id
        self.registry[sid] = service
        return {"Service": service}

    def _servicediscovery_GetService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        service = self.registry.get(str(r["Id"]))
        if service is None:
            raise AwsError(400, "ServiceNotFound", f"Service {r['Id']} not found")
        return {"Service": service}

    def _servicediscovery_DeleteService(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        if self.registry.pop(str(r["Id"]), None) is None:
            raise AwsError(400, "ServiceNotFound", f"Service {r['Id']} not found")
        return {}

    def _servicediscovery_ListServices(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted: set[str] | None = None
        for f in r.get("Filters") or []:
            if f.get("Name") == "NAMESPACE_ID":
                wanted = set(f.get("Values") or [])
        keys = ("Id", "Arn", "Name", "Type", "Description", "DnsConfig", "CreateDate")
        summaries = [
            {k: s[k] for k in keys if k in s}
            for s in self.registry.values()
            if wanted is None or s["NamespaceId"] in wanted
        ]
        page, token = _page(summaries, r, "NextToken", "MaxResults", 100)
        return {"Services": page, **({"NextToken": token} if token else {})}

    # App Mesh (REST-JSON: the names are in the path) --------------------------------------------
    def _rest(self, value: dict[str, Any]) -> Answer:
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4()))]
        return 200, headers, json.dumps(value).encode()

    def _mesh_resource(
        self, mesh: str, kind: str, name: str, spec: Mapping[str, Any], tags: Any, **names: str
    ) -> dict[str, Any]:
        now = time.time()
        path = {
            "virtualNode": f"virtualNode/{name}",
            "virtualRouter": f"virtualRouter/{name}",
            "route": f"virtualRouter/{names.get('virtualRouterName', '')}/route/{name}",
            "mesh": "",
        }[kind]
        arn = f"arn:aws:appmesh:{REGION}:{ACCOUNT}:mesh/{mesh}" + (f"/{path}" if path else "")
        data: dict[str, Any] = {
            "meshName": mesh,
            f"{kind}Name": name,
            **names,
            "spec": copy.deepcopy(dict(spec)),
            "metadata": {
                "arn": arn,
                "createdAt": now,
                "lastUpdatedAt": now,
                "meshOwner": ACCOUNT,
                "resourceOwner": ACCOUNT,
                "uid": str(uuid.uuid4()),
                "version": 1,
            },
            "status": {"status": "ACTIVE"},
        }
        data["_tags"] = list(tags or [])
        return data

    def _appmesh_CreateMesh(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        name = str(r["meshName"])
        with self._lock:
            if name in self.meshes:
                raise AwsError(409, "ConflictException", f"Mesh {name} already exists")
            self.meshes[name] = self._mesh_resource(
                name, "mesh", name, r.get("spec", {}), r.get("tags")
            )
            return _public(self.meshes[name])

    def _appmesh_DescribeMesh(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        name = str(r["meshName"])
        with self._lock:
            if name not in self.meshes:
                raise _not_found("NotFoundException", f"Mesh {name} not found")
            return _public(self.meshes[name])

    def _create(self, key: tuple[str, ...], data: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if key[0] not in self.meshes:
                raise _not_found("NotFoundException", f"Mesh {key[0]} not found")
            if key in self.mesh_items:
                raise AwsError(409, "ConflictException", f"{key[-1]} already exists")
            self.mesh_items[key] = data
            return _public(data)

    def _get(self, key: tuple[str, ...]) -> dict[str, Any]:
        data = self.mesh_items.get(key)
        if data is None:
            raise _not_found("NotFoundException", f"{key[-1]} not found in mesh {key[0]}")
        return data

    def _appmesh_CreateVirtualNode(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        mesh, name = str(r["meshName"]), str(r["virtualNodeName"])
        data = self._mesh_resource(mesh, "virtualNode", name, r["spec"], r.get("tags"))
        return self._create((mesh, "node", name), data)

    def _appmesh_DescribeVirtualNode(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        with self._lock:
            return _public(self._get((r["meshName"], "node", r["virtualNodeName"])))

    def _appmesh_DeleteVirtualNode(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        mesh, name = r["meshName"], r["virtualNodeName"]
        with self._lock:
            data = self.mesh_items.pop((mesh, "node", name), None)
            if data is None:
                raise _not_found("NotFoundException", f"{name} not found in mesh {mesh}")
            data["status"] = {"status": "DELETED"}
            return _public(data)

    def _appmesh_CreateVirtualRouter(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        mesh, name = str(r["meshName"]), str(r["virtualRouterName"])
        data = self._mesh_resource(mesh, "virtualRouter", name, r["spec"], r.get("tags"))
        return self._create((mesh, "router", name), data)

    def _appmesh_DescribeVirtualRouter(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        with self._lock:
            return _public(self._get((r["meshName"], "router", r["virtualRouterName"])))

    def _appmesh_CreateRoute(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        mesh, router, name = str(r["meshName"]), str(r["virtualRouterName"]), str(r["routeName"])
        with self._lock:
            self._get((mesh, "router", router))
        data = self._mesh_resource(
            mesh, "route", name, r["spec"], r.get("tags"), virtualRouterName=router
        )
        return self._create((mesh, "route", router, name), data)

    def _appmesh_DescribeRoute(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        key = (r["meshName"], "route", r["virtualRouterName"], r["routeName"])
        with self._lock:
            return _public(self._get(key))

    def _appmesh_UpdateRoute(self, r: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N802
        mesh, router, route = r["meshName"], r["virtualRouterName"], r["routeName"]
        with self._lock:
            data = self._get((mesh, "route", router, route))
            data["spec"] = copy.deepcopy(r["spec"])
            data["metadata"]["version"] += 1
            data["metadata"]["lastUpdatedAt"] = time.time()
            answer = _public(data)
        if self.on_route is not None:
            self.on_route(mesh, router, route, weights(answer["spec"]))
        return answer

    def route_weights(self, mesh: str, router: str, route: str) -> dict[str, int]:
        with self._lock:
            return weights(self._get((mesh, "route", router, route))["spec"])

    # seeding (bench/common.py) -----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "ECS services": sum(s["status"] == "ACTIVE" for s in self.services.values()),
                "Cloud Map services": len(self.registry),
                "App Mesh resources": len(self.mesh_items),
            }


def weights(spec: Mapping[str, Any]) -> dict[str, int]:
    """A route spec's weights by virtual node (whichever kind of route it is)."""
    for kind in ("httpRoute", "http2Route", "grpcRoute", "tcpRoute"):
        if kind in spec:
            targets = spec[kind]["action"]["weightedTargets"]
            return {t["virtualNode"]: int(t["weight"]) for t in targets}
    return {}


def _public(data: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in data.items() if k != "_tags"})


def _untagged(service: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in service.items() if k != "tags"})


def _last(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _decode(call: Call, body: bytes) -> dict[str, Any]:
    return decode_cbor(body) if call.protocol == "cbor" else json.loads(body or b"{}")


def _encode(call: Call, value: dict[str, Any]) -> Answer:
    request_id = ("x-amzn-RequestId", str(uuid.uuid4()))
    if call.protocol == "cbor":
        headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        return 200, [*headers, request_id], encode_cbor(value, call.service, call.operation)
    return (
        200,
        [("Content-Type", "application/x-amz-json-1.1"), request_id],
        json.dumps(value).encode(),
    )


def _error(call: Call, err: AwsError) -> Answer:
    request_id = ("x-amzn-RequestId", str(uuid.uuid4()))
    if call.protocol == "cbor":
        headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        return err.status, [*headers, request_id], _cbor_error(err.code, err.message)
    if call.protocol == "rest":
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", err.code)]
        return err.status, [*headers, request_id], json.dumps({"message": err.message}).encode()
    body = json.dumps({"__type": err.code, "message": err.message}).encode()
    return err.status, [("Content-Type", "application/x-amz-json-1.1"), request_id], body


@cache
def _uri_pattern(operation: str) -> re.Pattern[str]:
    """App Mesh's requestUri of the operation as a pattern naming its path parameters."""
    uri = service_model("appmesh").operation_model(operation).http["requestUri"].split("?")[0]
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(uri)))


def _path_params(operation: str, path: str) -> dict[str, str]:
    found = _uri_pattern(operation).fullmatch(path.split("?", 1)[0])
    if found is None:
        return {}
    return {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
