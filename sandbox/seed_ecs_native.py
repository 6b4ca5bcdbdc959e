"""Seed one service for router ecs: an ALB rule forwarding to two target groups (blue at 100,
green at 0), and an ECS service with ECS's deployment controller and the alternate target group
(`advancedConfiguration`), created in moto and in the deployment emulator alike.

In process, pass the emulator that answers the boto3 client (`route_client`); against the served
moto (sandbox.strict_moto), pass `deployments=None`: the service is then created with the LINEAR
strategy, which registers it in the emulator behind moto's ECS API (sandbox.ecs_moto).
"""

from __future__ import annotations

from typing import Any

from sandbox.ecs_deployments import EcsDeployments
from sandbox.seed_alb import _ensure_target_group, seed_alb_service
from sandbox.seed_ecs import APP_PORT, ensure_ecs_service
from workers.aws.clients import AwsClients


def seed_ecs_native_service(
    clients: AwsClients,
    deployments: EcsDeployments | None,
    *,
    key: str,
    cluster: str = "prod",
    image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v1",
    desired_count: int = 2,
) -> dict[str, str]:
    """Create the service's ALB and ECS resources; return their names and ARNs (with
    `green_target_group_arn`)."""
    names = seed_alb_service(
        clients, key=key, cluster=cluster, image=image, desired_count=desired_count
    )
    elbv2, ecs = clients.elbv2, clients.ecs
    blue, rule = names["target_group_arn"], names["listener_rule"]
    green = _ensure_target_group(elbv2, f"{key}-green", names["vpc"])
    names["green_target_group_arn"] = green
    # ECS's managed shifting needs the production rule to forward to both groups
    # (docs/ECS.md, [DG-ALB]); ECS moves these weights itself.
    elbv2.modify_rule(
        RuleArn=rule,
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": blue, "Weight": 100},
                        {"TargetGroupArn": green, "Weight": 0},
                    ]
                },
            }
        ],
    )
    # The ALB seed's service has neither the alternate group nor the controller set, and moto's
    # UpdateService changes no load balancer: it is created again.
    ecs.delete_service(cluster=cluster, service=key, force=True)
    account = blue.split(":")[4]
    balancer: dict[str, Any] = {
        "targetGroupArn": blue,
        "containerName": "app",
        "containerPort": APP_PORT,
        "advancedConfiguration": {
            "alternateTargetGroupArn": green,
            "productionListenerRule": rule,
            "roleArn": f"arn:aws:iam::{account}:role/ecs-infrastructure-for-load-balancers",
        },
    }
    # The strategy the bot's UpdateService sets anyway; served, it puts the service in the
    # emulator (sandbox.ecs_moto).
    served: dict[str, Any] = (
        {}
        if deployments is not None
        else {
            "deploymentConfiguration": {
                "strategy": "LINEAR",
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            }
        }
    )
    ensure_ecs_service(
        ecs,
        cluster=cluster,
        name=key,
        task_definition_arn=names["task_definition_arn"],
        desired_count=desired_count,
        subnets=[names["subnet"]],
        group_id=names["security_group"],
        loadBalancers=[balancer],
        deploymentController={"type": "ECS"},
        **served,
    )
    if deployments is None:
        return names
    deployments.create_service(
        serviceName=key,
        taskDefinition=names["task_definition_arn"],
        cluster=cluster,
        desiredCount=desired_count,
    )
    return names
