"""Traffic shifting through the weighted targets of an App Mesh route."""

from __future__ import annotations

import copy
import logging
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.errors import AwsStepError, describe_failure, is_not_found
from workers.domain.traffic import TrafficRouter, Weights, format_weights, validate_weights

logger = logging.getLogger(__name__)

# The keys of a route spec that carry an action with weighted targets.
ROUTE_KINDS = ("httpRoute", "http2Route", "grpcRoute", "tcpRoute")


def route_kind(spec: dict[str, Any]) -> str:
    """Which of httpRoute/http2Route/grpcRoute/tcpRoute a route spec uses."""
    kinds = [kind for kind in ROUTE_KINDS if spec.get(kind)]
    if len(kinds) != 1:
        raise AwsStepError(
            "The route spec should hold exactly one of httpRoute, http2Route, grpcRoute or "
            f"tcpRoute, but holds {', '.join(kinds) or 'none of them'}."
        )
    return kinds[0]


def route_targets(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The weightedTargets list of a route spec, as App Mesh returned it."""
    return list(spec[route_kind(spec)].get("action", {}).get("weightedTargets") or [])


def weights_of(targets: list[dict[str, Any]]) -> Weights:
    """weightedTargets as node -> weight; one node listed on two ports counts once, summed."""
    weights: Weights = {}
    for target in targets:
        node = target["virtualNode"]
        weights[node] = weights.get(node, 0) + int(target.get("weight", 0))
    return weights


def with_weights(spec: dict[str, Any], weights: Weights) -> dict[str, Any]:
    """A copy of the whole spec with only the weighted targets replaced.

    update_route replaces the entire spec, so match, retry policy, timeouts and priority must
    travel along unchanged. A target keeps the port it had.
    """
    new_spec = copy.deepcopy(spec)
    kind = route_kind(new_spec)
    ports = {t["virtualNode"]: t["port"] for t in route_targets(spec) if "port" in t}
    targets = []
    for node, weight in weights.items():
        target: dict[str, Any] = {"virtualNode": node, "weight": weight}
        if node in ports:
            target["port"] = ports[node]
        targets.append(target)
    new_spec[kind].setdefault("action", {})["weightedTargets"] = targets
    return new_spec


class AppMeshRouter(TrafficRouter):
    """The TrafficRouter of one App Mesh route: targets are virtual node names."""

    def __init__(self, appmesh_client: Any, mesh: str, virtual_router: str, route: str) -> None:
        self._client = appmesh_client
        self.mesh = mesh
        self.virtual_router = virtual_router
        self.route = route

    def describe(self) -> dict[str, Any]:
        """The route's spec as App Mesh holds it now."""
        try:
            response = self._client.describe_route(
                meshName=self.mesh, virtualRouterName=self.virtual_router, routeName=self.route
            )
        except ClientError as exc:
            if is_not_found(exc):
                raise AwsStepError(
                    f"Route {self.route} of virtual router {self.virtual_router} in mesh "
                    f"{self.mesh} does not exist; check the service's catalogue entry."
                ) from exc
            raise AwsStepError(
                f"Could not read route {self.route} in mesh {self.mesh}: {describe_failure(exc)}."
            ) from exc
        return dict(response["route"]["spec"])

    def read_weights(self) -> Weights:
        return weights_of(route_targets(self.describe()))

    def set_weights(self, weights: Weights) -> bool:
        # Validate before any call: moto (and a typo) would accept sums over 100.
        validate_weights(weights)
        spec = self.describe()
        current_targets = route_targets(spec)
        current = weights_of(current_targets)
        if current == weights and len(current_targets) == len(weights):
            logger.info("route %s already at %s", self.route, format_weights(weights))
            return False
        # Real App Mesh refuses unknown nodes but moto routes to them silently; checking only
        # nodes new to the route keeps a shift between known targets at two calls.
        for node in weights:
            if node not in current:
                self._require_node(node)
        new_spec = with_weights(spec, weights)
        try:
            self._client.update_route(
                meshName=self.mesh,
                virtualRouterName=self.virtual_router,
                routeName=self.route,
                spec=new_spec,
            )
        except ClientError as exc:
            raise AwsStepError(
                f"Could not set route {self.route} in mesh {self.mesh} to "
                f"{format_weights(weights)}: {describe_failure(exc)}."
            ) from exc
        logger.info(
            "route %s: %s -> %s", self.route, format_weights(current), format_weights(weights)
        )
        return True

    def _require_node(self, node: str) -> None:
        try:
            self._client.describe_virtual_node(meshName=self.mesh, virtualNodeName=node)
        except ClientError as exc:
            if is_not_found(exc):
                raise AwsStepError(
                    f"Virtual node {node} does not exist in mesh {self.mesh}, so route "
                    f"{self.route} cannot send traffic to it."
                ) from exc
            raise AwsStepError(
                f"Could not check virtual node {node} in mesh {self.mesh}: {describe_failure(exc)}."
            ) from exc
