"""The ECS deployment emulator behind moto's own ECS API, for the moto_server of the sandbox.

`sandbox.ecs_deployments.EcsDeployments` plays ECS's CANARY / LINEAR service deployments; in
process it answers a boto3 client through `route_client`. Here one shared instance (on the wall
clock) answers the same calls inside moto, so every process talking to the served moto (the bot's
workers, the sandbox's traffic, the tests) sees one and the same deployments:

- CreateService with `deploymentConfiguration.strategy` CANARY or LINEAR is created by moto and
  registered in the emulator; UpdateService of such a service (or one asking for CANARY/LINEAR) is
  answered by the emulator;
- DescribeServiceDeployments, ListServiceDeployments, DescribeServiceRevisions,
  ContinueServiceDeployment and StopServiceDeployment are answered by the emulator;
- moto's records follow what the emulator decides, as ECS's own would: the service's task
  definition is the emulator's (the new one once promoted, the old one after a rollback), and the
  production listener rule forwards to the two target groups with the deployment's production
  weights (ECS shifts the rule's weights itself: docs/ECS.md, [DG-ALB]); the new revision's tasks
  are in the alternate group, so once promoted the groups have swapped roles.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from botocore.exceptions import ClientError
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ecs.models import EC2ContainerServiceBackend, ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.elbv2.models import elbv2_backends
from moto.elbv2.responses import ELBV2Response

from sandbox.ecs_deployments import ROUTED_OPERATIONS, EcsDeployments

#: moto_server answers on several threads; the emulator is not thread-safe.
_LOCK = threading.RLock()
_ACCOUNT, _REGION = "123456789012", "us-east-1"


def _alarms_in_alarm(names: Any) -> list[str]:
    """The deployment alarms in ALARM, read from moto's CloudWatch (SetAlarmState moves them)."""
    backend = cloudwatch_backends[_ACCOUNT][_REGION]
    wanted = set(names)
    alarms = backend.alarms.values()
    return [a.name for a in alarms if a.name in wanted and a.state_value == "ALARM"]


#: Seconds a minute of ECS's step bake or bake time lasts here (the sandbox's time is compressed).
BAKE_MINUTE_ENV = "STRICT_MOTO_ECS_BAKE_MINUTE"
DEPLOYMENTS = EcsDeployments(
    alarms=_alarms_in_alarm,
    region=_REGION,
    account=_ACCOUNT,
    bake_minute_seconds=float(os.environ.get(BAKE_MINUTE_ENV, "60")),
)
#: Deployment ARN -> (the source revision's target group, the target revision's), fixed when the
#: deployment is first seen: the source's is the group the production rule forwards to then.
_GROUPS: dict[str, tuple[str, str]] = {}


class _EcsError(JsonRESTError):
    def __init__(self, error: ClientError) -> None:
        detail = error.response.get("Error", {})
        super().__init__(str(detail.get("Code")), str(detail.get("Message")))


def _moto_service(cluster: str, name: str) -> Any:
    backend: EC2ContainerServiceBackend = ecs_backends[_ACCOUNT][_REGION]
    try:
        return backend._get_service(cluster, name)
    except Exception:  # gone from moto: nothing to keep in step
        return None


def _rule_weights(rule: Any) -> dict[str, int]:
    for action in rule.actions:
        groups = (action.data.get("ForwardConfig") or {}).get("TargetGroups") or []
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
    return {}


def _shift_rule(balancer: dict[str, Any], deployment: dict[str, Any]) -> None:
    """Write the deployment's production weights in the service's production listener rule."""
    advanced = balancer.get("advancedConfiguration") or {}
    rule_arn = advanced.get("productionListenerRule")
    primary, alternate = balancer.get("targetGroupArn"), advanced.get("alternateTargetGroupArn")
    if not (rule_arn and primary and alternate):
        return
    elbv2 = elbv2_backends[_ACCOUNT][_REGION]
    rules = elbv2.describe_rules(listener_arn=None, rule_arns=[rule_arn])
    if not rules:
        return
    weights = _rule_weights(rules[0])
    arn = deployment["serviceDeploymentArn"]
    if arn not in _GROUPS:
        source = alternate if weights.get(alternate, 0) > weights.get(primary, 0) else primary
        _GROUPS[arn] = (source, alternate if source == primary else primary)
    source_group, target_group = _GROUPS[arn]
    source = deployment["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"]
    target = deployment["targetServiceRevision"]["requestedProductionTrafficWeight"]
    wanted = {source_group: round(source), target_group: round(target)}
    if weights == wanted:
        return
    action = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": g, "Weight": w} for g, w in wanted.items()]
        },
    }
    elbv2.modify_rule(rule_arn, [], [action])


def sync(deployments: EcsDeployments = DEPLOYMENTS) -> None:
    """Play the deployments to now and bring moto's services and listener rules in step."""
    with _LOCK:
        deployments.advance()
        for (cluster, name), svc in list(deployments._services.items()):
            service = _moto_service(cluster, name)
            if service is None:
                continue
            if svc.current_deployment:
                deployment = deployments._deployments[svc.current_deployment]
                shape = deployments._deployment_shape(deployment)
                for balancer in service.load_balancers or []:
                    _shift_rule(balancer, shape)
            if service.task_definition != svc.task_definition:
                service.task_definition = svc.task_definition


def keep_in_step(client: Any, deployments: EcsDeployments) -> None:
    """In process (mock_aws and `route_client`): keep moto's records in step with `deployments`
    around every call of the boto3 ECS `client`, as the served moto does by itself.

    botocore emits `after-call` also for the calls `route_client` answered."""

    def follow(**_: Any) -> None:
        sync(deployments)

    for event in ("before-call.ecs", "after-call.ecs"):
        client.meta.events.register(event, follow)


def _strategy(config: Any) -> str | None:
    return (config or {}).get("strategy") if isinstance(config, dict) else None


def _call(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    with _LOCK:
        sync()
        try:
            answer = getattr(DEPLOYMENTS, ROUTED_OPERATIONS[operation])(**request)
        except ClientError as exc:
            raise _EcsError(exc) from exc
        sync()
        return answer  # type: ignore[no-any-return]


def _request(response: EC2ContainerServiceResponse) -> dict[str, Any]:
    return json.loads(response.body or "{}")  # type: ignore[no-any-return]


def _create_service(original: Any) -> Any:
    def create_service(self: EC2ContainerServiceResponse) -> ActionResult:
        answer = original(self)
        request = _request(self)
        if _strategy(request.get("deploymentConfiguration")) in ("CANARY", "LINEAR"):
            with _LOCK:
                fields = (
                    "serviceName",
                    "taskDefinition",
                    "cluster",
                    "desiredCount",
                    "deploymentConfiguration",
                    "deploymentController",
                )
                DEPLOYMENTS.create_service(**{k: request[k] for k in fields if k in request})
        return answer

    return create_service


def _update_service(original: Any) -> Any:
    def update_service(self: EC2ContainerServiceResponse) -> ActionResult:
        request = _request(self)
        cluster = request.get("cluster", "default")
        with _LOCK:
            known = DEPLOYMENTS.knows(cluster=cluster, service=request.get("service", ""))
            service = _moto_service(cluster, request.get("service", ""))
            wants = _strategy(request.get("deploymentConfiguration")) in ("CANARY", "LINEAR")
            if not known and wants and service is not None:
                # A service created without a strategy switches to ECS's canary or linear.
                DEPLOYMENTS.create_service(
                    serviceName=service.name,
                    taskDefinition=service.task_definition,
                    cluster=service.cluster_name,
                    desiredCount=int(service.desired_count),
                )
                known = True
            if not known or service is None:
                return original(self)  # type: ignore[no-any-return]
            _call("UpdateService", request)
            return ActionResult({"service": _moto_service(cluster, request["service"])})

    return update_service


def _routed(operation: str) -> Any:
    def answer(self: EC2ContainerServiceResponse) -> ActionResult:
        return ActionResult(_call(operation, _request(self)))

    answer.__name__ = ROUTED_OPERATIONS[operation]
    return answer


def _synced(original: Any) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        sync()
        return original(self, *args, **kwargs)

    method.__name__ = original.__name__
    return method


def install() -> None:
    """Put the emulator behind moto's ECS API (once)."""
    response = EC2ContainerServiceResponse
    if getattr(response, "_ecs_deployments", False):
        return
    response.create_service = _create_service(response.create_service)  # type: ignore[method-assign]
    response.update_service = _update_service(response.update_service)  # type: ignore[method-assign]
    for operation, method in ROUTED_OPERATIONS.items():
        if operation != "UpdateService":
            setattr(response, method, _routed(operation))
    # What moto shows follows the emulator at every read a deployment can change.
    for name in ("describe_services", "list_services"):
        setattr(response, name, _synced(getattr(response, name)))
    ELBV2Response.describe_rules = _synced(ELBV2Response.describe_rules)  # type: ignore[method-assign]
    response._ecs_deployments = True  # type: ignore[attr-defined]
