"""Putting the emulator behind a boto3 ECS client: its service-deployment calls are answered
by an EcsDeployments, everything else goes on to moto or AWS.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from sandbox.ecs_deployments.emulator import EcsDeployments


#: The API calls the emulator answers, by operation name.
ROUTED_OPERATIONS = {
    "UpdateService": "update_service",
    "DescribeServiceDeployments": "describe_service_deployments",
    "ListServiceDeployments": "list_service_deployments",
    "DescribeServiceRevisions": "describe_service_revisions",
    "ContinueServiceDeployment": "continue_service_deployment",
    "StopServiceDeployment": "stop_service_deployment",
}


def route_client(client: Any, deployments: EcsDeployments) -> None:
    """Let a boto3 ECS client's service-deployment calls be answered by `deployments`.

    botocore's `before-call` event lets a handler answer instead of sending the request, after
    the client has validated and serialized it; everything else (and UpdateService of services
    the emulator does not know) goes on to moto or AWS. Errors come back as the client's own
    exception classes (`client.exceptions.ServiceDeploymentNotFoundException`...).
    """

    def answer(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict] | None:
        request = json.loads(params.get("body") or b"{}")
        if model.name == "UpdateService" and not deployments.knows(
            cluster=request.get("cluster", "default"), service=request["service"]
        ):
            return None
        try:
            parsed, status = getattr(deployments, ROUTED_OPERATIONS[model.name])(**request), 200
        except ClientError as exc:
            parsed, status = dict(exc.response), 400
        parsed["ResponseMetadata"] = {"HTTPStatusCode": status, "RetryAttempts": 0}
        return AWSResponse("https://ecs.emulator.invalid/", status, {}, None), parsed

    for operation in ROUTED_OPERATIONS:
        client.meta.events.register(f"before-call.ecs.{operation}", answer)
