"""The backend-neutral traffic interface: weights per target and the router protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

Weights = dict[str, int]
"""Target name (an App Mesh virtual node, a target group...) -> percent of traffic."""

MAX_TARGETS = 10


class WeightsError(ValueError):
    """The requested weights are not a valid traffic split."""


def validate_weights(weights: Weights) -> None:
    """Refuse anything but 1..10 named targets with whole percentages 0..100 summing to 100."""
    if not isinstance(weights, dict):
        raise WeightsError(f"Weights must be a mapping of target to percent, not {weights!r}.")
    if not weights:
        raise WeightsError("Weights need at least one target.")
    if len(weights) > MAX_TARGETS:
        raise WeightsError(
            f"Weights name {len(weights)} targets; a route takes at most {MAX_TARGETS}."
        )
    for target, weight in weights.items():
        if not isinstance(target, str) or not target.strip():
            raise WeightsError(f"Target names must be non-empty strings, not {target!r}.")
        # bool is an int subclass; True would silently mean 1 %.
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise WeightsError(f"The weight of {target} must be a whole number, not {weight!r}.")
        if not 0 <= weight <= 100:
            raise WeightsError(f"The weight of {target} is {weight}; it must be between 0 and 100.")
    total = sum(weights.values())
    if total != 100:
        raise WeightsError(f"Weights add up to {total} %, not 100 %: {format_weights(weights)}.")


def canary_weights(stable: str, canary: str, canary_percent: int) -> Weights:
    """The split for a canary step.

    0 % routes everything to the stable as a single target (the state before and after a
    rollback); 100 % keeps the stable listed at weight 0 because it still runs until the
    post-promotion bake is over.
    """
    if stable == canary:
        raise WeightsError(f"Stable and canary must be different targets, both are {stable}.")
    if isinstance(canary_percent, bool) or not isinstance(canary_percent, int):
        raise WeightsError(f"The canary percent must be a whole number, not {canary_percent!r}.")
    if not 0 <= canary_percent <= 100:
        raise WeightsError(f"The canary percent is {canary_percent}; it must be 0..100.")
    if canary_percent == 0:
        weights: Weights = {stable: 100}
    else:
        weights = {stable: 100 - canary_percent, canary: canary_percent}
    validate_weights(weights)
    return weights


def format_weights(weights: Weights) -> str:
    """Weights as a sentence fragment, e.g. "payments-v1 90 %, payments-4f2a9c1e 10 %"."""
    return ", ".join(f"{target} {weight} %" for target, weight in weights.items())


@runtime_checkable
class TrafficRouter(Protocol):
    """Reads and rewrites how one service's traffic is split between its versions."""

    def read_weights(self) -> Weights:
        """The current split as target -> percent."""
        ...

    def set_weights(self, weights: Weights) -> bool:
        """Apply a validated split; True if a write call changed something, False if it was
        already so (and then no write call is made)."""
        ...
