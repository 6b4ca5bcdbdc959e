"""What the engine made of a person's request: done, or refused and why, in typed fields.

The engine never words an answer: workers.slack.answers does (mentions, Slack markup).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workers.domain.deployment import Deployment


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


@dataclass(frozen=True)
class Answer:
    """What the engine made of a request: done, or refused and why (worded by the Slack side)."""

    ok: bool
    #: The deployment the request concerns, as it now is (for BUSY: the one holding the lock).
    deployment: Deployment | None = None
    refusal: Refusal | None = None
    #: The id asked about (for BUSY: the holder's), even when no deployment has it.
    dep_id: str | None = None
    #: The gate step a click was for.
    step: int | None = None
    #: What is wrong with the request (INVALID).
    detail: str | None = None


def refused(
    refusal: Refusal,
    dep: Deployment | None = None,
    *,
    dep_id: str | None = None,
    step: int | None = None,
    detail: str | None = None,
) -> Answer:
    return Answer(False, dep, refusal, dep_id or (dep.id if dep else None), step, detail)
