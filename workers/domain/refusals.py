"""Why a request was not carried out, as codes: the engine's refusals, and the rules of who may
do what.

The codes are what a deployment's log keeps (`events.Refused`); workers.slack.answers words them.
Apart from workers.domain.outcomes (which needs the Deployment, which needs the events) so that
the events can name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

#: What a person may ask of a service (bot.permissions checks each).
Action = Literal["deploy", "approve", "abort", "rollback"]


class Refusal(StrEnum):
    """Why a request was not carried out."""

    INVALID = "invalid"  # a bad override or image: `detail` says what
    BUSY = "busy"  # the service's lock is held: `deployment` is the holder (None if just gone)
    UNKNOWN = "unknown"  # no deployment has that id
    OVER = "over"  # the deployment has finished
    NOT_ROLLBACKABLE = "not_rollbackable"  # it is already rolling back or tearing down
    NOT_ABORTED = "not_aborted"  # it moved meanwhile to where it cannot be rolled back
    OTHER_GATE = "other_gate"  # the button is for another step's gate than the open one
    ALREADY_APPROVED = "already_approved"  # the step's gate was approved (by the last approval)
    ROLLING_BACK = "rolling_back"  # no gate to approve: it is rolling back
    NOT_AT_GATE = "not_at_gate"  # no gate is open
    OWN_DEPLOYMENT = "own_deployment"  # four-eyes: the requester may not approve
    TOO_FAST = "too_fast"  # it kept changing under the compare-and-set


class Forbidden(StrEnum):
    """Why a person may not do what they asked of a service (bot.permissions, the rules of
    design.md "Who may do what"), each with the ids its Denial names."""

    ELSEWHERE = "elsewhere"  # not from the app's own workspace or organisation
    WRONG_CHANNEL = "wrong_channel"  # only from the service's channel (ids: that channel)
    NOT_DEPLOYER = "not_deployer"  # ids: the deployers to ask
    NOT_APPROVER = "not_approver"  # ids: the approvers to ask
    FOUR_EYES = "four_eyes"  # the requester may not approve (ids: the other approvers)
    NOT_DEPLOYER_OR_APPROVER = "not_deployer_or_approver"  # abort, roll back; ids: whom to ask
    GROUPS_UNKNOWN = "groups_unknown"  # user groups Slack could not list now (ids: those groups)
    NOT_IN_CATALOGUE = "not_in_catalogue"  # the service left the catalogue: no approving


@dataclass(frozen=True)
class Denial:
    """Why a person may not do what they asked of a service, in typed fields.

    `ids` are the Slack ids the reason names: the service's channel (WRONG_CHANNEL), whom to
    ask (NOT_DEPLOYER, NOT_APPROVER, NOT_DEPLOYER_OR_APPROVER, FOUR_EYES: empty when nobody
    else may) or the user groups that could not be checked (GROUPS_UNKNOWN).
    """

    reason: Forbidden
    service: str
    action: Action
    ids: tuple[str, ...] = ()
