"""Errors raised by the AWS drivers, with messages a person can act on."""

from __future__ import annotations

from botocore.exceptions import ClientError

# Error codes meaning "this resource does not exist", as returned by real AWS and by moto.
NOT_FOUND_CODES = frozenset(
    {
        "NotFoundException",
        "ResourceNotFound",
        "ResourceNotFoundException",
        "MeshNotFound",
        "VirtualNodeNotFound",
        "VirtualRouterNotFound",
        "RouteNotFound",
        "ServiceNotFound",
        "ServiceNotFoundException",
        "NamespaceNotFound",
        "ClusterNotFoundException",
        "TaskDefinitionNotFoundException",
        "LoadBalancerNotFound",
        "ListenerNotFound",
        "RuleNotFound",
        "TargetGroupNotFound",
    }
)


class AwsStepError(Exception):
    """An AWS step could not be done; the message says what is wrong and what to do."""


class RolledBackByAws(AwsStepError):
    """AWS itself rolled the rollout back (router ecs: an alarm, a pause's timeout, a person in
    the console); the message is AWS's reason and the deployment ends rolled back with it."""


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or "" for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    """The AWS error message of a botocore ClientError, or str(exc) for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


def is_not_found(exc: BaseException) -> bool:
    """True when the error only says the resource does not exist."""
    return error_code(exc) in NOT_FOUND_CODES


def describe_failure(exc: BaseException, *, operation: bool = False) -> str:
    """An error for a person, without anything secret: "Code: message" of an AWS error, to embed
    in a sentence, or with `operation` a sentence of its own ("AWS refused UpdateRoute: Code:
    message"); any other error's own text (its type's name when it has none)."""
    code = error_code(exc)
    message = error_message(exc) or type(exc).__name__
    text = f"{code}: {message}" if code else message
    if operation and isinstance(exc, ClientError):
        return f"AWS refused {getattr(exc, 'operation_name', 'AWS')}: {text}"
    return text
