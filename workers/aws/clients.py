"""The boto3 clients the AWS drivers use, built once with sane retry and timeout settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.utils import parse_timestamp

DEFAULT_REGION = "us-east-1"

# Standard retry mode backs off on throttling; the short connect timeout keeps a worker job from
# hanging when an endpoint is unreachable.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20
)
# CloudWatch checks every request against its API's constraints itself (a 400 ValidationError,
# handled as any refused call); botocore's client-side check of a batched GetMetricData (hundreds
# of queries) cost an eighth of a check's CPU, so it is left to the service ("You can disable
# parameter validation for performance reasons", botocore's Config). The test world makes the
# service's check (sandbox/strict_moto.py).
_UNVALIDATED = _CONFIG.merge(Config(parameter_validation=False))


def utc_timestamp(value: object) -> datetime:
    """A timestamp of an AWS answer as an aware datetime in UTC.

    botocore's default parser puts every timestamp in the local zone through dateutil, about
    15 µs a data point: most of a batched check's CPU went there (docs/SCALE.md). An epoch
    number (the JSON and CBOR protocols) becomes a datetime at once; anything else (the query
    protocol's ISO 8601 strings) goes to botocore's own parser.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return parse_timestamp(value)


def botocore_session() -> botocore.session.Session:
    """A botocore session whose clients parse timestamps with `utc_timestamp`."""
    session = botocore.session.get_session()
    # ResponseParserFactory.set_parser_defaults: the parsers botocore makes for each answer
    # take this timestamp_parser (the hook the AWS CLI uses for its --cli-timestamp-format).
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=utc_timestamp
    )
    return session


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
    credentials: tuple[str, str] | None = None,
) -> AwsClients:
    """Build the clients; boto3 itself honours AWS_ENDPOINT_URL (a moto server in tests).

    `endpoint_url` and `credentials` (access key id, secret) are for the sandbox and tests,
    which point several processes' clients at one moto server with throwaway credentials.
    """
    region_name = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    core = botocore_session()
    if credentials is not None:
        core.set_credentials(*credentials)
    session = boto3.session.Session(botocore_session=core, region_name=region_name)

    def client(name: str, config: Config = _CONFIG) -> Any:
        return session.client(name, config=config, endpoint_url=endpoint_url)

    return AwsClients(
        ecs=client("ecs"),
        appmesh=client("appmesh"),
        servicediscovery=client("servicediscovery"),
        cloudwatch=client("cloudwatch", _UNVALIDATED),
        elbv2=client("elbv2"),
    )


def sandbox_clients(endpoint: str) -> AwsClients:
    """Clients pointed at a moto server, with throwaway credentials (sandbox and tests only)."""
    return make_clients(DEFAULT_REGION, endpoint_url=endpoint, credentials=("sandbox", "sandbox"))
