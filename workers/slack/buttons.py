"""The buttons' contract with bot/: fixed action ids and the value naming deployment and step."""

from __future__ import annotations

from dataclasses import dataclass

from workers.domain.ids import is_deployment_id

APPROVE, ABORT, ROLLBACK = "canary_approve", "canary_abort", "canary_rollback"
#: The card's link button; Slack still sends a click payload, which the bot only acknowledges.
OPEN_THREAD = "canary_open_thread"


@dataclass(frozen=True)
class ButtonValue:
    """What a button of a deployment's thread names: the deployment and the step it is for."""

    deployment_id: str
    step: int

    def encode(self) -> str:
        """The button's `value`: "<deployment id>:<step>"."""
        return f"{self.deployment_id}:{self.step}"

    @classmethod
    def decode(cls, value: object) -> ButtonValue | None:
        """The value Slack sent back, or None when it is not one of ours."""
        if not isinstance(value, str):
            return None
        dep_id, _, step = value.partition(":")
        if not is_deployment_id(dep_id) or not step.isdigit() or len(step) > 3:
            return None
        return cls(dep_id, int(step))
