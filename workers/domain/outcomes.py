"""What the engine made of a person's request: done, or refused and why, in typed fields.

The engine never words an answer: workers.slack.answers does (mentions, Slack markup).
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.domain.deployment import Deployment
from workers.domain.refusals import Refusal


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
