"""The seeding both sandboxes share (App Mesh and ALB): the tagged VPC, the ECS cluster, a Fargate
task definition and an ECS service, each looked up before it is created.

What differs per sandbox (the containers beside the app, how the service meets the traffic)
comes in as arguments.
"""

from __future__ import annotations

from typing import Any

import boto3

from workers.aws.clients import AwsClients

APP_PORT = 8080
SANDBOX_TAG = "canary-sandbox"


def ec2_client(clients: AwsClients) -> Any:
    """An EC2 client in the region, and at the endpoint, the given clients talk to."""
    region = clients.ecs.meta.region_name
    return boto3.client("ec2", region_name=region, endpoint_url=_endpoint(clients.ecs))


def _endpoint(client: Any) -> str | None:
    # Reuse the endpoint the given clients talk to (a moto server) for the EC2 client.
    url = client.meta.endpoint_url
    return None if url.endswith(".amazonaws.com") else url


def sandbox_network(ec2: Any) -> tuple[str, str, str]:
    """A tagged sandbox VPC with one subnet and one security group (moto checks they exist)."""
    tag_filter = [{"Name": "tag:Name", "Values": [SANDBOX_TAG]}]
    vpcs = ec2.describe_vpcs(Filters=tag_filter)["Vpcs"]
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
    else:
        vpc_id = ec2.create_vpc(
            CidrBlock="10.42.0.0/16",
            TagSpecifications=[
                {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": SANDBOX_TAG}]}
            ],
        )["Vpc"]["VpcId"]
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc_id]}]
    subnets = ec2.describe_subnets(Filters=vpc_filter)["Subnets"]
    if subnets:
        subnet_id = subnets[0]["SubnetId"]
    else:
        subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    groups = ec2.describe_security_groups(
        Filters=[*vpc_filter, {"Name": "group-name", "Values": [SANDBOX_TAG]}]
    )["SecurityGroups"]
    if groups:
        group_id = groups[0]["GroupId"]
    else:
        group_id = ec2.create_security_group(
            GroupName=SANDBOX_TAG, Description="canary sandbox services", VpcId=vpc_id
        )["GroupId"]
    return vpc_id, subnet_id, group_id


def ensure_cluster(ecs: Any, cluster: str) -> None:
    """An ACTIVE ECS cluster of that name."""
    found = ecs.describe_clusters(clusters=[cluster])["clusters"]
    if not any(c["status"] == "ACTIVE" for c in found):
        ecs.create_cluster(clusterName=cluster)


def active_task_definition(ecs: Any, cluster: str, service: str) -> str | None:
    """The task definition the ACTIVE ECS service of that name runs, if there is one."""
    found = ecs.describe_services(cluster=cluster, services=[service])["services"]
    active = [svc["taskDefinition"] for svc in found if svc["status"] == "ACTIVE"]
    return active[0] if active else None


def app_container(image: str, **extra: Any) -> dict[str, Any]:
    """The application's container definition, listening on APP_PORT, with `extra` settings."""
    return {
        "name": "app",
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": APP_PORT, "protocol": "tcp"}],
        "environment": [{"name": "PORT", "value": str(APP_PORT)}],
        **extra,
    }


def ensure_task_definition(
    ecs: Any,
    family: str,
    *,
    cpu: str,
    memory: str,
    containers: list[dict[str, Any]],
    **extra: Any,
) -> str:
    """The family's latest ACTIVE revision, else a new Fargate one with these containers (and
    `extra` RegisterTaskDefinition arguments)."""
    existing = ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")
    if existing["taskDefinitionArns"]:
        latest = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        return str(latest["taskDefinitionArn"])
    registered = ecs.register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu=cpu,
        memory=memory,
        executionRoleArn="arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        taskRoleArn=f"arn:aws:iam::123456789012:role/{family}-task",
        containerDefinitions=containers,
        **extra,
        tags=[{"key": "app", "value": family}],
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def ensure_ecs_service(
    ecs: Any,
    *,
    cluster: str,
    name: str,
    task_definition_arn: str,
    desired_count: int,
    subnets: list[str],
    group_id: str,
    **wiring: Any,
) -> None:
    """An ACTIVE Fargate ECS service of that name, else a new one; `wiring` are the CreateService
    arguments that put it behind the traffic (service registries, load balancers...) or replace
    the defaults (deploymentConfiguration)."""
    found = ecs.describe_services(cluster=cluster, services=[name])["services"]
    if any(s["status"] == "ACTIVE" for s in found):
        return
    ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=task_definition_arn,
        desiredCount=desired_count,
        launchType="FARGATE",
        platformVersion="LATEST",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": subnets,
                "securityGroups": [group_id],
                "assignPublicIp": "DISABLED",
            }
        },
        **{
            "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100},
            **wiring,
        },
        enableECSManagedTags=True,
        propagateTags="SERVICE",
        tags=[{"key": "app", "value": name}],
    )
