"""Shared pieces of the ALB driver tests: moto clients, a seeded service, an API call log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from sandbox.seed_alb import seed_alb_service
from workers.aws.clients import AwsClients, make_clients

READS = ("Describe", "List", "Get")


class CallLog:
    """Records every ECS and ELBv2 API call, through botocore's before-call event."""

    def __init__(self, clients: AwsClients) -> None:
        self.calls: list[str] = []
        for client in (clients.ecs, clients.elbv2):
            client.meta.events.register("before-call.*.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls

    def take_writes(self) -> list[str]:
        return [c for c in self.take() if not c.startswith(READS)]


@pytest.fixture(name="clients")
def clients_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MOTO_ECS_SERVICE_RUNNING", raising=False)
    with mock_aws():
        yield make_clients()


@pytest.fixture(name="seeded")
def seeded_fixture(clients: AwsClients) -> dict[str, str]:
    return seed_alb_service(clients, key="payments")


def rule(clients: AwsClients, arn: str) -> dict[str, Any]:
    return dict(clients.elbv2.describe_rules(RuleArns=[arn])["Rules"][0])


def add_target_group(clients: AwsClients, name: str, like: str = "payments-v1") -> str:
    source = clients.elbv2.describe_target_groups(Names=[like])["TargetGroups"][0]
    created = clients.elbv2.create_target_group(
        Name=name,
        Protocol=source["Protocol"],
        Port=source["Port"],
        VpcId=source["VpcId"],
        TargetType=source["TargetType"],
    )
    return str(created["TargetGroups"][0]["TargetGroupArn"])
