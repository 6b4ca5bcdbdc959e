"""The boto3 clients the AWS drivers use, built once with sane retry and timeout settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "us-east-1"

# Standard retry mode backs off on throttling; the short connect timeout keeps a worker job from
# hanging when an endpoint is unreachable.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20
)


@dataclass(frozen=True)
class AwsClients:
    """One client per AWS service the rollout engine talks to."""

    ecs: Any
    appmesh: Any
    servicediscovery: Any
    cloudwatch: Any
    #: Elastic Load Balancing v2 (router alb); None where only App Mesh is used.
    elbv2: Any = None


def make_clients(
    region: str | None = None,
    *,
    endpoint_url: str | None = None,
    session: boto3.session.Session | None = None,
) -> AwsClients:
    """Build the clients; boto3 itself honours AWS_ENDPOINT_URL (a moto server in tests).

    `endpoint_url` and `session` are for the sandbox and tests, which point several processes'
    clients at one moto server with throwaway credentials.
    """
    region_name = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    session = session or boto3.session.Session(region_name=region_name)

    def client(name: str) -> Any:
        return session.client(name, config=_CONFIG, endpoint_url=endpoint_url)

    return AwsClients(
        ecs=client("ecs"),
        appmesh=client("appmesh"),
        servicediscovery=client("servicediscovery"),
        cloudwatch=client("cloudwatch"),
        elbv2=client("elbv2"),
    )


def sandbox_clients(endpoint: str) -> AwsClients:
    """Clients pointed at a moto server, with throwaway credentials (sandbox and tests only)."""
    session = boto3.session.Session(
        aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=DEFAULT_REGION
    )
    return make_clients(endpoint_url=endpoint, session=session)
