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

One module per service (ecs.py, cloudmap.py, appmesh.py, each a part of `MemoryAws`), what they
share in common.py, the wire in protocol.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.aws_memory import protocol
from bench.aws_memory.appmesh import AppMeshMemory, RouteWrite, weights
from bench.aws_memory.cloudmap import CloudMapMemory
from bench.aws_memory.common import ACCOUNT, REGION, VPC, AwsError
from bench.aws_memory.ecs import EcsMemory
from bench.aws_standin import Answer, Call, service_model

__all__ = ["ACCOUNT", "REGION", "VPC", "AwsError", "MemoryAws", "RouteWrite", "weights"]


@dataclass(kw_only=True)
class MemoryAws(EcsMemory, CloudMapMemory, AppMeshMemory):
    """ECS, App Mesh and Cloud Map in memory: `handle` answers a call or returns None (unknown
    to it: the stand-in forwards it to moto). `on_route` hears every route write: (mesh, router,
    route, weights by virtual node)."""

    # the entry ---------------------------------------------------------------------------------
    def handle(self, call: Call, method: str, path: str, body: bytes) -> Answer | None:
        handler = getattr(self, f"_{call.service}_{call.operation}", None)
        if handler is None or call.service not in ("ecs", "appmesh", "servicediscovery"):
            return None
        try:
            if call.service == "appmesh":
                request = {
                    **json.loads(body or b"{}"),
                    **protocol.path_params(call.operation, path),
                }
                return protocol.rest(handler(request))
            answer = self.call(call.service, call.operation, protocol.decode(call, body))
            return protocol.encode(call, answer)
        except AwsError as err:
            return protocol.error(call, err)

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

    # seeding (bench/common.py) -----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "ECS services": sum(s["status"] == "ACTIVE" for s in self.services.values()),
                "Cloud Map services": len(self.registry),
                "App Mesh resources": len(self.mesh_items),
            }
