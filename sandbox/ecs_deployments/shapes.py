"""The emulator's records in the shapes botocore parses: a Service (DescribeServices), a
ServiceDeployment (DescribeServiceDeployments), its brief (ListServiceDeployments) and a
service revision's summary within them. Pure.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.ecs_deployments.records import Deployment, Revision, Service


def service_shape(svc: Service) -> dict[str, Any]:
    return {
        "serviceArn": svc.arn,
        "serviceName": svc.name,
        "clusterArn": svc.cluster_arn,
        "status": "ACTIVE",
        "desiredCount": svc.desired_count,
        "taskDefinition": svc.task_definition,
        "deploymentConfiguration": copy.deepcopy(svc.deployment_configuration),
        "deploymentController": {"type": "ECS"},
        **({"currentServiceDeployment": svc.current_deployment} if svc.current_deployment else {}),
    }


def revision_shape(revision: Revision) -> dict[str, Any]:
    return {
        "arn": revision.arn,
        "requestedTaskCount": revision.requested,
        "runningTaskCount": revision.requested,
        "pendingTaskCount": 0,
        "requestedTestTrafficWeight": revision.test_weight,
        "requestedProductionTrafficWeight": revision.production_weight,
    }


def deployment_shape(d: Deployment) -> dict[str, Any]:
    alarms = d.config.get("alarms") or {}
    if not alarms.get("enable"):
        alarm_status = "DISABLED"
    elif d.triggered_alarms:
        alarm_status = "TRIGGERED"
    elif d.status == "SUCCESSFUL":
        alarm_status = "MONITORING_COMPLETE"
    else:
        alarm_status = "MONITORING"
    shape: dict[str, Any] = {
        "serviceDeploymentArn": d.arn,
        "serviceArn": d.service.arn,
        "clusterArn": d.service.cluster_arn,
        "createdAt": d.created_at,
        "startedAt": d.created_at,
        "updatedAt": d.updated_at or d.created_at,
        "sourceServiceRevisions": [revision_shape(d.source)],
        "targetServiceRevision": revision_shape(d.target),
        "status": d.status,
        "lifecycleStage": d.stage,
        "deploymentConfiguration": copy.deepcopy(d.config),
        "deploymentCircuitBreaker": {"status": "DISABLED"},
        "alarms": {
            "status": alarm_status,
            "alarmNames": list(alarms.get("alarmNames") or []),
            "triggeredAlarmNames": list(d.triggered_alarms),
        },
        "lifecycleHookDetails": [],
    }
    if d.hook is not None:
        shape["lifecycleHookDetails"] = [
            {
                "hookId": d.hook.hook_id,
                "targetType": "PAUSE",
                "status": d.hook.status,
                "expiresAt": d.hook.expires_at,
                "timeoutAction": d.hook.timeout_action,
            }
        ]
    if d.status_reason:
        shape["statusReason"] = d.status_reason
    if d.finished_at:
        shape["finishedAt"] = d.finished_at
    if d.stopped_at:
        shape["stoppedAt"] = d.stopped_at
    if d.rollback:
        shape["rollback"] = dict(d.rollback)
    return shape


def brief_shape(d: Deployment) -> dict[str, Any]:
    brief = {
        "serviceDeploymentArn": d.arn,
        "serviceArn": d.service.arn,
        "clusterArn": d.service.cluster_arn,
        "startedAt": d.created_at,
        "createdAt": d.created_at,
        "targetServiceRevisionArn": d.target.arn,
        "status": d.status,
    }
    if d.finished_at:
        brief["finishedAt"] = d.finished_at
    if d.status_reason:
        brief["statusReason"] = d.status_reason
    return brief
