"""deploy/iam-policy.json allows exactly the AWS actions the worker calls, plus reasoned extras.

The calls are found statically: every method of a boto3 client (and every paginator) named in
workers/, mapped to its API operation with botocore's own service models.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "deploy" / "iam-policy.json"
#: boto3 client name -> IAM service prefix.
SERVICES = {
    "ecs": "ecs",
    "appmesh": "appmesh",
    "servicediscovery": "servicediscovery",
    "cloudwatch": "cloudwatch",
    "elbv2": "elasticloadbalancing",
}
#: Modules whose client attribute does not name its service (`self._client`).
MODULE_CLIENT = {"appmesh_router": "appmesh", "alb_router": "elbv2"}
#: Actions the policy needs that are not API operations the code calls, each with its reason.
EXTRA_ACTIONS = {
    "iam:PassRole": "RegisterTaskDefinition of the canary passes the stable's task and "
    "execution roles on (restricted to ecs-tasks.amazonaws.com)",
    "ecs:TagResource": "the canary's task definition and ECS service are created with tags",
    "appmesh:TagResource": "the canary's virtual node is created with tags",
    "servicediscovery:TagResource": "the canary's Cloud Map service is created with tags",
    "elasticloadbalancing:AddTags": "the canary's target group is created with tags",
}


@cache
def _api_names(client_name: str) -> dict[str, str]:
    client = boto3.client(client_name, region_name="us-east-1")
    return dict(client.meta.method_to_api_mapping)


def _service_of(receiver: str, method: str, module: str) -> str | None:
    """Which client a call is made on: named in the receiver, else unique, else the module's."""
    lowered = receiver.lower()
    named = [s for s in SERVICES if s in lowered]
    if len(named) == 1:
        return named[0]
    owners = [s for s in SERVICES if method in _api_names(s)]
    if len(owners) == 1:
        return owners[0]
    return MODULE_CLIENT.get(module)


def calls_in_code() -> dict[str, list[str]]:
    """IAM action -> where the code calls it ("workers/aws/x.py:12")."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "workers").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            # Every call of a method named like an API operation counts, whatever the receiver's
            # name: a client held in a variable called `sd` must not slip through.
            receiver = ast.unparse(node.func.value)
            method = node.func.attr
            if method == "get_paginator":
                arg = node.args[0] if node.args else None
                assert isinstance(arg, ast.Constant), f"{path}:{node.lineno}: dynamic paginator"
                method = str(arg.value)
            elif not any(method in _api_names(s) for s in SERVICES):
                continue  # exceptions, meta, … of a client: not an API call
            service = _service_of(receiver, method, path.stem)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert service is not None, f"{where}: cannot tell which client {method} is called on"
            api = _api_names(service).get(method)
            assert api is not None, f"{where}: {service} has no operation {method}"
            found.setdefault(f"{SERVICES[service]}:{api}", []).append(where)
    return found


def policy_actions() -> dict[str, dict]:
    """IAM action -> the statement that allows it."""
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    allowed: dict[str, dict] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert "*" not in action, f"{action}: no wildcards in a least-privilege policy"
            assert action not in allowed, f"{action} is listed twice"
            allowed[action] = statement
    return allowed


def test_the_code_calls_aws_at_all() -> None:
    called = calls_in_code()
    # A scanner that finds nothing would pass everything: a few calls every backend needs.
    for action in ("appmesh:UpdateRoute", "ecs:RegisterTaskDefinition", "cloudwatch:GetMetricData"):
        assert action in called


def test_policy_allows_every_call_of_the_code() -> None:
    missing = sorted(set(calls_in_code()) - set(policy_actions()))
    assert not missing, f"deploy/iam-policy.json lacks: {missing}"


def test_policy_allows_nothing_else_without_a_reason() -> None:
    unused = sorted(set(policy_actions()) - set(calls_in_code()) - set(EXTRA_ACTIONS))
    assert not unused, f"not called by workers/ (remove, or give a reason here): {unused}"


def test_pass_role_only_to_ecs_tasks() -> None:
    statement = policy_actions()["iam:PassRole"]
    condition = statement.get("Condition", {}).get("StringEquals", {})
    assert condition.get("iam:PassedToService") == "ecs-tasks.amazonaws.com"


def test_pass_role_only_on_named_roles_the_user_fills_in() -> None:
    """Never `*`: the worker may pass on the stable's task and execution roles, no other role.

    The policy names placeholders (ACCOUNT_ID, the role names) that the README's "Scoping
    iam:PassRole" tells the user to replace with what the stable task definitions use.
    """
    statement = policy_actions()["iam:PassRole"]
    resources = statement["Resource"]
    resources = [resources] if isinstance(resources, str) else resources
    assert resources and "*" not in resources
    for arn in resources:
        assert re.fullmatch(r"arn:aws:iam::[A-Z0-9_]+:role/[A-Za-z0-9_+=,.@/*-]+", arn), arn
        assert not arn.endswith(":role/*"), f"{arn}: every role of the account"
    readme = (ROOT / "README.md").read_text()
    for placeholder in ("ACCOUNT_ID", "STABLE_TASK_ROLE_NAME", "STABLE_EXECUTION_ROLE_NAME"):
        assert placeholder in readme, f"the README does not say what {placeholder} becomes"
