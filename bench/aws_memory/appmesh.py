"""The stand-in's App Mesh: meshes, virtual nodes, virtual routers and routes (REST-JSON: the
names are in the path)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.aws_memory.common import ACCOUNT, REGION, AwsError, Held, not_found

#: Hears a route write: (mesh, router, route, weights by virtual node).
RouteWrite = Callable[[str, str, str, dict[str, int]], None]


@dataclass(kw_only=True)
class AppMeshMemory(Held):
    """App Mesh's calls (`_appmesh_<Operation>`); each takes the lock itself. `on_route` hears
    every route write."""

    on_route: RouteWrite | None = None
    meshes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (mesh, kind, name...) -> the App Mesh resource's data.
    mesh_items: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)

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
                raise not_found("NotFoundException", f"Mesh {name} not found")
            return _public(self.meshes[name])

    def _create(self, key: tuple[str, ...], data: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if key[0] not in self.meshes:
                raise not_found("NotFoundException", f"Mesh {key[0]} not found")
            if key in self.mesh_items:
                raise AwsError(409, "ConflictException", f"{key[-1]} already exists")
            self.mesh_items[key] = data
            return _public(data)

    def _get(self, key: tuple[str, ...]) -> dict[str, Any]:
        data = self.mesh_items.get(key)
        if data is None:
            raise not_found("NotFoundException", f"{key[-1]} not found in mesh {key[0]}")
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
                raise not_found("NotFoundException", f"{name} not found in mesh {mesh}")
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


def weights(spec: Mapping[str, Any]) -> dict[str, int]:
    """A route spec's weights by virtual node (whichever kind of route it is)."""
    for kind in ("httpRoute", "http2Route", "grpcRoute", "tcpRoute"):
        if kind in spec:
            targets = spec[kind]["action"]["weightedTargets"]
            return {t["virtualNode"]: int(t["weight"]) for t in targets}
    return {}


def _public(data: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in data.items() if k != "_tags"})
