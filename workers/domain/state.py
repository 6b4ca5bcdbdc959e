"""The deployment state machine as data: states, triggers and the allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    PROVISIONING = "provisioning"
    WAITING_READY = "waiting_ready"
    SHIFTING = "shifting"
    BAKING = "baking"
    HOLDING = "holding"
    AWAITING_APPROVAL = "awaiting_approval"
    POST_PROMOTION = "post_promotion"
    TEARING_DOWN = "tearing_down"
    PROMOTED = "promoted"
    ROLLING_BACK = "rolling_back"
    CLEANING_UP = "cleaning_up"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """The state as people read it in Slack: "rolling back", not "rolling_back"."""
        return self.value.replace("_", " ")


class Trigger(StrEnum):
    PROVISIONED = "provisioned"  # canary resources exist
    READY = "ready"  # canary tasks running and steady
    SHIFTED = "shifted"  # route weights applied for the current step
    CHECKED = "checked"  # a check that changes nothing but records its figures
    NOT_ENOUGH_DATA = "not_enough_data"  # bake over, too few requests to judge: hold
    PASSED = "passed"  # step passed, no gate: go to the next step
    GATE_OPENED = "gate_opened"  # step passed (or a plan to accept): wait for a person
    APPROVED = "approved"  # a person approved the next step
    BAKE_DONE = "bake_done"  # post-promotion bake over: tear the old version down
    TORN_DOWN = "torn_down"  # old version removed: done
    ROLL_BACK = "roll_back"  # abort, breach, timeout or error: restore stable first
    ROUTE_RESTORED = "route_restored"  # 100 % stable again; now remove the canary
    CLEANED_UP = "cleaned_up"  # canary removed (or kept at 0): done
    GIVE_UP = "give_up"  # something could not be undone automatically


#: States from which the deployment can still be rolled back.
ROLLBACKABLE = frozenset(
    {
        State.PROVISIONING,
        State.WAITING_READY,
        State.SHIFTING,
        State.BAKING,
        State.HOLDING,
        State.AWAITING_APPROVAL,
        State.POST_PROMOTION,
    }
)
TERMINAL = frozenset({State.PROMOTED, State.ROLLED_BACK, State.FAILED})
#: Jobs in these states go to the high-priority queue (invariant 5: rollback is the fast path).
URGENT = frozenset({State.ROLLING_BACK})

_S, _T = State, Trigger
TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (_S.PROVISIONING, _T.PROVISIONED): _S.WAITING_READY,
    (_S.WAITING_READY, _T.CHECKED): _S.WAITING_READY,
    (_S.WAITING_READY, _T.READY): _S.SHIFTING,
    # A plan loosened by allowed overrides is accepted by an approver before the first shift.
    (_S.WAITING_READY, _T.GATE_OPENED): _S.AWAITING_APPROVAL,
    (_S.SHIFTING, _T.SHIFTED): _S.BAKING,
    (_S.BAKING, _T.CHECKED): _S.BAKING,
    (_S.BAKING, _T.NOT_ENOUGH_DATA): _S.HOLDING,
    (_S.BAKING, _T.PASSED): _S.SHIFTING,
    (_S.BAKING, _T.GATE_OPENED): _S.AWAITING_APPROVAL,
    (_S.HOLDING, _T.CHECKED): _S.HOLDING,
    (_S.HOLDING, _T.PASSED): _S.SHIFTING,
    (_S.HOLDING, _T.GATE_OPENED): _S.AWAITING_APPROVAL,
    (_S.AWAITING_APPROVAL, _T.CHECKED): _S.AWAITING_APPROVAL,
    (_S.AWAITING_APPROVAL, _T.APPROVED): _S.SHIFTING,
    (_S.POST_PROMOTION, _T.CHECKED): _S.POST_PROMOTION,
    (_S.POST_PROMOTION, _T.BAKE_DONE): _S.TEARING_DOWN,
    (_S.TEARING_DOWN, _T.TORN_DOWN): _S.PROMOTED,
    (_S.TEARING_DOWN, _T.GIVE_UP): _S.FAILED,
    (_S.ROLLING_BACK, _T.ROUTE_RESTORED): _S.CLEANING_UP,
    (_S.ROLLING_BACK, _T.GIVE_UP): _S.FAILED,
    (_S.CLEANING_UP, _T.CLEANED_UP): _S.ROLLED_BACK,
    (_S.CLEANING_UP, _T.GIVE_UP): _S.FAILED,
    **{(state, _T.ROLL_BACK): _S.ROLLING_BACK for state in ROLLBACKABLE},
}
# The last step's shift leads to the post-promotion bake rather than an ordinary bake.
SHIFTED_TO_FULL = State.POST_PROMOTION


class TransitionError(ValueError):
    """A trigger that is not allowed in the deployment's current state."""


def next_state(state: State, trigger: Trigger, *, full_weight: bool = False) -> State:
    """The state that `trigger` leads to from `state`, or TransitionError."""
    if state == State.SHIFTING and trigger == Trigger.SHIFTED and full_weight:
        return SHIFTED_TO_FULL
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise TransitionError(f"{trigger.value} is not allowed while {state.value}") from None


def is_active(state: State) -> bool:
    """True until the deployment reaches a terminal state."""
    return state not in TERMINAL
