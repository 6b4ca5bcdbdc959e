"""The state machine table."""

import pytest

from workers.domain.state import (
    ROLLBACKABLE,
    TERMINAL,
    TRANSITIONS,
    State,
    TransitionError,
    Trigger,
    next_state,
)


def test_every_state_but_terminal_ones_can_be_left() -> None:
    sources = {state for state, _ in TRANSITIONS}
    assert sources == set(State) - TERMINAL


def test_every_state_is_reachable_from_provisioning() -> None:
    # POST_PROMOTION is entered by the last shift (next_state's full_weight), not by the table.
    seen, todo = (
        {State.PROVISIONING, State.POST_PROMOTION},
        [State.PROVISIONING, State.POST_PROMOTION],
    )
    while todo:
        state = todo.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src == state and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    assert seen == set(State)


def test_rollback_allowed_until_tear_down_starts() -> None:
    for state in ROLLBACKABLE:
        assert next_state(state, Trigger.ROLL_BACK) == State.ROLLING_BACK
    for state in (State.TEARING_DOWN, State.ROLLING_BACK, State.CLEANING_UP, *TERMINAL):
        with pytest.raises(TransitionError):
            next_state(state, Trigger.ROLL_BACK)


def test_last_shift_leads_to_post_promotion_bake() -> None:
    assert next_state(State.SHIFTING, Trigger.SHIFTED) == State.BAKING
    assert next_state(State.SHIFTING, Trigger.SHIFTED, full_weight=True) == State.POST_PROMOTION


def test_a_gate_is_left_only_by_approval_or_rollback() -> None:
    leaving = {t for (s, t), d in TRANSITIONS.items() if s == State.AWAITING_APPROVAL and d != s}
    assert leaving == {Trigger.APPROVED, Trigger.ROLL_BACK}


def test_terminal_states_accept_nothing() -> None:
    for state in TERMINAL:
        for trigger in Trigger:
            with pytest.raises(TransitionError):
                next_state(state, trigger)
