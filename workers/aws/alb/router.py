"""Traffic shifting through the weighted target groups of an ALB listener rule's forward action.

Targets are target-group names (unique per account and region, and the last-but-one part of a
target group's ARN), so a split reads "payments-v1 90 %, payments-4f2a9c1e 10 %".
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.cloudwatch import AlbTarget
from workers.aws.errors import AwsStepError, describe_failure, is_not_found
from workers.domain.traffic import (
    TrafficRouter,
    Weights,
    WeightsError,
    format_weights,
    validate_weights,
)

logger = logging.getLogger(__name__)

#: An ALB forward action takes at most this many target groups.
MAX_TARGET_GROUPS = 5

RawWeights = dict[str, int]
"""Target-group ARN -> the weight the load balancer holds (0..999, not necessarily percent)."""


def arn_resource(arn: str) -> str:
    """The resource part of an ELBv2 ARN ("targetgroup/name/id", "listener-rule/app/...")."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or "/" not in parts[5]:
        raise AwsStepError(f"{arn!r} is not an Elastic Load Balancing ARN.")
    return parts[5]


def target_group_name(arn: str) -> str:
    """The name in a target-group ARN (".../targetgroup/payments-v1/73e2d6bc24d8a067")."""
    kind, _, rest = arn_resource(arn).partition("/")
    if kind != "targetgroup":
        raise AwsStepError(f"{arn!r} is not a target group ARN.")
    return rest.split("/", 1)[0]


def target_group_dimension(arn: str) -> str:
    """CloudWatch's TargetGroup dimension of a target group: "targetgroup/name/id"."""
    return arn_resource(arn)


def load_balancer_arn_of(arn: str) -> str:
    """The load balancer a listener or listener-rule ARN belongs to (read off the ARN)."""
    prefix = arn.rsplit(":", 1)[0]
    kind, _, rest = arn_resource(arn).partition("/")
    parts = rest.split("/")
    if kind not in ("listener", "listener-rule", "loadbalancer") or len(parts) < 3:
        raise AwsStepError(f"{arn!r} is not a load balancer, listener or listener rule ARN.")
    return f"{prefix}:loadbalancer/{'/'.join(parts[:3])}"


def load_balancer_dimension(arn: str) -> str:
    """CloudWatch's LoadBalancer dimension ("app/name/id") of a load balancer, listener or rule."""
    return arn_resource(load_balancer_arn_of(arn)).removeprefix("loadbalancer/")


def alb_target(load_balancer: str, target_group_arn: str, name: str, cluster: str) -> AlbTarget:
    """What CloudWatch's ALB metrics of one target group are read by: the LoadBalancer and
    TargetGroup dimensions of `load_balancer` (a load balancer, listener or rule ARN) and the
    target group's ARN."""
    return AlbTarget(
        load_balancer=load_balancer_dimension(load_balancer),
        target_group=target_group_dimension(target_group_arn),
        target_group_name=name,
        cluster=cluster,
    )


def rule_label(*, listener_rule: str | None, listener: str | None) -> str:
    """ "listener rule <load balancer>/<rule id>", or "listener <lb>/<id> (default action)"."""
    arn = listener_rule or listener or ""
    try:
        lb = load_balancer_dimension(arn).split("/")[1]
    except (AwsStepError, IndexError):
        return f"listener rule {arn}" if listener_rule else f"listener {arn}"
    tail = arn.rsplit("/", 1)[-1]
    if listener_rule:
        return f"listener rule {lb}/{tail}"
    return f"listener {lb}/{tail} (default action)"


def forward_index(actions: list[dict[str, Any]], where: str) -> int:
    """The position of the one forward action among a rule's actions."""
    found = [i for i, action in enumerate(actions) if action.get("Type") == "forward"]
    if len(found) != 1:
        raise AwsStepError(
            f"{where} has {len(found) or 'no'} forward actions; the canary bot needs exactly one "
            "forward action to weight target groups in."
        )
    return found[0]


def forward_targets(action: dict[str, Any]) -> RawWeights:
    """ARN -> weight of a forward action, in either form ELBv2 returns."""
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    if groups:
        # A target group without a weight has weight 1 (the API's default).
        return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
    if action.get("TargetGroupArn"):
        return {action["TargetGroupArn"]: 1}
    return {}


def as_percent(raw: RawWeights) -> Weights:
    """Raw weights as whole percentages by target-group name (rounded; all 0 when none)."""
    total = sum(raw.values())
    return {
        target_group_name(arn): (round(weight * 100 / total) if total else 0)
        for arn, weight in raw.items()
    }


def same_split(raw: RawWeights, weights: Weights) -> bool:
    """True when the raw weights already send exactly `weights` (percent) to the same groups."""
    names = {target_group_name(arn): w for arn, w in raw.items()}
    if set(names) != set(weights):
        return False
    total = sum(names.values())
    # Exact proportion: {a: 1} is already {a: 100}, {a: 9, b: 1} is already {a: 90, b: 10}.
    return total > 0 and all(names[n] * 100 == weights[n] * total for n in weights)


def with_forward_targets(
    actions: list[dict[str, Any]], index: int, targets: RawWeights
) -> list[dict[str, Any]]:
    """A copy of every action with only the forward action's target groups replaced.

    The forward action keeps its order and stickiness config; the plain TargetGroupArn form is
    dropped because the API refuses it beside a ForwardConfig that lists other groups.
    """
    new_actions = copy.deepcopy(actions)
    for action in new_actions:
        oidc = action.get("AuthenticateOidcConfig")
        if oidc is not None and "ClientSecret" not in oidc:
            # Describe never returns the secret; without this flag the write would clear it.
            oidc["UseExistingClientSecret"] = True
    forward = new_actions[index]
    forward.pop("TargetGroupArn", None)
    config = forward.setdefault("ForwardConfig", {})
    config["TargetGroups"] = [{"TargetGroupArn": arn, "Weight": w} for arn, w in targets.items()]
    return new_actions


class AlbRouter(TrafficRouter):
    """The TrafficRouter of a listener rule's forward action, or of a listener's default action.

    Exactly one of `listener_rule` and `listener` (ARNs) is given.
    """

    def __init__(
        self, elbv2_client: Any, *, listener_rule: str | None = None, listener: str | None = None
    ) -> None:
        if bool(listener_rule) == bool(listener):
            raise ValueError("AlbRouter needs exactly one of listener_rule and listener")
        if elbv2_client is None:
            raise AwsStepError("No Elastic Load Balancing client is configured (AwsClients.elbv2).")
        self._client = elbv2_client
        self.listener_rule = listener_rule or ""
        self.listener = listener or ""

    @property
    def label(self) -> str:
        """How a person names the weighted rule or listener."""
        return rule_label(listener_rule=self.listener_rule, listener=self.listener)

    def describe(self) -> list[dict[str, Any]]:
        """The rule's actions (or the listener's default actions) as ELBv2 holds them now."""
        try:
            if self.listener_rule:
                rules = self._client.describe_rules(RuleArns=[self.listener_rule])["Rules"]
                return list(rules[0]["Actions"])
            listeners = self._client.describe_listeners(ListenerArns=[self.listener])["Listeners"]
            return list(listeners[0]["DefaultActions"])
        except ClientError as exc:
            if is_not_found(exc):
                raise AwsStepError(
                    f"{self.label.capitalize()} ({self.listener_rule or self.listener}) does not "
                    "exist; check the service's catalogue entry."
                ) from exc
            raise AwsStepError(f"Could not read {self.label}: {describe_failure(exc)}.") from exc

    def read_target_groups(self) -> RawWeights:
        """Target-group ARN -> raw weight of the forward action."""
        actions = self.describe()
        return forward_targets(actions[forward_index(actions, self.label)])

    def read_weights(self) -> Weights:
        return as_percent(self.read_target_groups())

    def set_weights(self, weights: Weights) -> bool:
        # Validate before any call: ELBv2 takes weights up to 999 and any sum.
        validate_weights(weights)
        if len(weights) > MAX_TARGET_GROUPS:
            raise WeightsError(
                f"Weights name {len(weights)} target groups; an ALB forward action takes at most "
                f"{MAX_TARGET_GROUPS}."
            )
        actions = self.describe()
        index = forward_index(actions, self.label)
        current = forward_targets(actions[index])
        if same_split(current, weights):
            logger.info("%s already at %s", self.label, format_weights(weights))
            return False
        arns = {target_group_name(arn): arn for arn in current}
        # Only groups new to the rule need a lookup, so a shift between known groups stays at two
        # calls; the lookup also refuses a group that does not exist before anything is written.
        for name in weights:
            if name not in arns:
                arns[name] = self._target_group_arn(name)
        targets = {arns[name]: weight for name, weight in weights.items()}
        self._write(with_forward_targets(actions, index, targets), format_weights(weights))
        logger.info(
            "%s: %s -> %s", self.label, format_weights(as_percent(current)), format_weights(weights)
        )
        return True

    def include(self, target_group_arn: str) -> bool:
        """List a target group in the forward action at weight 0, all other weights unchanged.

        ECS refuses a service whose target group no load balancer uses, so a canary's group
        joins the rule (without traffic) before its service is created. False if already listed.
        """
        actions = self.describe()
        index = forward_index(actions, self.label)
        current = forward_targets(actions[index])
        if target_group_arn in current:
            return False
        if len(current) >= MAX_TARGET_GROUPS:
            raise AwsStepError(
                f"{self.label.capitalize()} already forwards to {len(current)} target groups, the "
                "most an ALB allows; remove an unused one first."
            )
        targets = {**current, target_group_arn: 0}
        name = target_group_name(target_group_arn)
        self._write(with_forward_targets(actions, index, targets), f"{name} added at 0 %")
        logger.info("%s: %s added at weight 0", self.label, name)
        return True

    def _write(self, actions: list[dict[str, Any]], what: str) -> None:
        try:
            # Only the actions are sent: conditions, priority and everything else stay as they are.
            if self.listener_rule:
                self._client.modify_rule(RuleArn=self.listener_rule, Actions=actions)
            else:
                self._client.modify_listener(ListenerArn=self.listener, DefaultActions=actions)
        except ClientError as exc:
            raise AwsStepError(
                f"Could not set {self.label} to {what}: {describe_failure(exc)}."
            ) from exc

    def _target_group_arn(self, name: str) -> str:
        try:
            groups = self._client.describe_target_groups(Names=[name])["TargetGroups"]
        except ClientError as exc:
            if is_not_found(exc):
                raise AwsStepError(
                    f"Target group {name} does not exist, so {self.label} cannot send traffic "
                    "to it."
                ) from exc
            raise AwsStepError(
                f"Could not look up target group {name}: {describe_failure(exc)}."
            ) from exc
        if not groups:
            raise AwsStepError(f"Target group {name} does not exist.")
        return str(groups[0]["TargetGroupArn"])
