"""The sentences of a verdict: why a step passed, failed or bakes on, in words and figures a
person can check by hand (pure, no I/O).

workers.analysis.judge decides; each function here writes one of its reasons from the figures
the decision rests on. Percentages and counts are written as the Slack messages write them
(workers/slack/format.py uses `format_pct` and `format_count`), so a sentence and the figures
shown beside it read alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from workers.analysis import sequential as seq

#: The reasons that take no figure.
ALARMS_QUIET_PASSED = "no alarm in ALARM over the bake (judged by alarms only)"
ALARMS_QUIET_BAKING = "baking, no alarm in ALARM so far (judged by alarms only)"
NO_REQUESTS_YET = "baking: no canary requests yet"


class Tally(Protocol):
    """Requests served and how many were answered 5xx (workers.analysis.judge.Counts): a
    protocol, so that this module needs nothing of the judge's."""

    @property
    def requests(self) -> int: ...

    @property
    def errors(self) -> int: ...


# the reasons, one function each (in the order the judge tries them) ----------------------------
def over_steps(step_number: int, earlier: bool) -> str:
    """ " over steps 1-3" when the figures cover the deployment's earlier steps too, else ""."""
    return f" over steps 1-{step_number}" if earlier else ""


def alarms_firing(alarms: Sequence[str], canary: Tally) -> str:
    noun = "alarm" if len(alarms) == 1 else "alarms"
    verb = "is" if len(alarms) == 1 else "are"
    return f"{noun} {', '.join(alarms)} {verb} in ALARM; {canary_so_far(canary)}"


def _above(canary: Tally, threshold: float, scope: str) -> str:
    """The canary's rate over the threshold (empty when it served nothing)."""
    if not canary.requests:
        return ""
    return (
        f"canary {format_count(canary.requests)} req, {format_count(canary.errors)} × 5xx"
        f"{scope} ({format_pct(_rate_pct(canary))}) > {format_pct(threshold)}"
    )


def above_by_evidence(
    canary: Tally, threshold: float, scope: str, evidence: float, needed: float
) -> str:
    """Above max_error_rate: the always-valid evidence crossed what any look needs."""
    return (
        f"{_above(canary, threshold, scope)}: evidence {_ratio_text(evidence)} to 1 against "
        f"{format_pct(threshold)} or less, {_ratio_text(needed)} needed at any look"
    )


def above_at_end(
    canary: Tally, threshold: float, scope: str, p: float, boundary: float, step_number: int
) -> str:
    """Above max_error_rate: the exact binomial p-value below the end of bake's boundary."""
    return (
        f"{_above(canary, threshold, scope)}: {_p_text(p)} against {format_pct(threshold)} "
        f"(exact binomial), below {_small(boundary)}, the boundary at the end of step "
        f"{step_number}"
    )


def _compared(canary: Tally, stable: Tally, scope: str) -> str:
    return f"canary {_rate_with_counts(canary)} vs stable {_rate_with_counts(stable)}{scope}"


def worse_by_evidence(
    canary: Tally,
    stable: Tally,
    scope: str,
    layers: Sequence[seq.Stratum],
    evidence: float,
    needed: float,
) -> str:
    """Worse than the stable: the always-valid evidence crossed what any look needs."""
    return (
        f"{_compared(canary, stable, scope)}: worse than stable, {_shares_text(layers)}; "
        f"evidence {_ratio_text(evidence)} to 1, {_ratio_text(needed)} needed at any look"
    )


def worse_with_baseline(
    canary: Tally,
    stable: Tally,
    scope: str,
    layers: Sequence[seq.Stratum],
    *,
    p: float,
    loose_boundary: float,
    baseline: Tally,
    pooled: Tally,
    baseline_p: float,
    boundary: float,
    step_number: int,
) -> str:
    """Worse than the stable at the end of a bake, with the stable's baseline: the stratified
    p-value below the looser boundary, and the p-value against the pooled stable below the
    step's."""
    return (
        f"{_compared(canary, stable, scope)}: worse than stable, {_shares_text(layers)}; "
        f"{_p_text(p)}, below {_small(loose_boundary)}; and with the stable's "
        f"{_rate_with_counts(baseline)} before the deployment, {_rate_with_counts(pooled)} in "
        f"all: {_p_text(baseline_p)} (Fisher), below {_small(boundary)}; the boundaries at the "
        f"end of step {step_number}"
    )


def worse_at_end(
    canary: Tally,
    stable: Tally,
    scope: str,
    layers: Sequence[seq.Stratum],
    p: float,
    boundary: float,
    step_number: int,
) -> str:
    """Worse than the stable at the end of a bake: the stratified p-value below the boundary."""
    return (
        f"{_compared(canary, stable, scope)}: worse than stable, {_shares_text(layers)}; "
        f"{_p_text(p)}, below {_small(boundary)}, the boundary at the end of step {step_number}"
    )


def latency_breached(reason: str, canary: Tally) -> str:
    """The latency rule's own reason, with the canary's counts so far."""
    return f"{reason}; {canary_so_far(canary)}"


def baseline_note(
    baseline: Tally, baseline_p: float, boundary: float | None, loose_boundary: float | None
) -> str:
    """What the stable's baseline said, added to a pass or a bake that goes on."""
    return (
        f"; with the stable's {_rate_with_counts(baseline)} before the deployment: "
        f"{_p_text(baseline_p)}"
    ) + (
        f" (boundary {_small(boundary)}, and {_small(loose_boundary)} step by step)"
        if boundary and loose_boundary
        else ""
    )


def healthy(
    canary: Tally,
    stable: Tally,
    threshold: float,
    threshold_p: float | None,
    threshold_boundary: float | None,
    p_value: float | None,
    scope: str,
) -> str:
    """Why a canary with requests did not fail, with the figures to check it by hand."""
    rate_pct = _rate_pct(canary)
    if rate_pct <= threshold:
        shown_rate, shown_threshold = _distinct_pcts(rate_pct, threshold)
        against_threshold = f"within {shown_threshold}"
    else:
        # Above the threshold, but not beyond chance: say so rather than "within".
        shown_rate, shown_threshold = _distinct_pcts(rate_pct, threshold)
        assert threshold_p is not None
        against_threshold = (
            f"above {shown_threshold} but within chance "
            f"({_p_text(threshold_p)} against {shown_threshold}"
            + (
                f", boundary {_small(threshold_boundary)})"
                if threshold_boundary is not None
                else ")"
            )
        )
    canary_part = (
        f"canary {shown_rate} ({format_count(canary.errors)} × 5xx "
        f"of {format_count(canary.requests)} req)"
    )
    if p_value is None:
        return f"{canary_part}{scope}: {against_threshold}, no stable traffic to compare"
    return (
        f"{canary_part} vs stable {_rate_with_counts(stable)}{scope}: {against_threshold}, "
        f"no worse than stable ({_p_text(p_value)})"
    )


def still_baking(healthy_sentence: str) -> str:
    """A bake that goes on with requests and no breach."""
    return "baking, no breach so far: " + healthy_sentence


def too_few_requests(requests: int, wanted: int) -> str:
    """The bake is over below min_requests."""
    return f"{format_count(requests)} canary requests, {format_count(wanted)} needed to judge"


def canary_so_far(canary: Tally) -> str:
    if canary.requests == 0:
        return "no canary requests yet"
    return f"canary so far {_rate_with_counts(canary)}"


# figures for people -----------------------------------------------------------------------------
def format_pct(x: float) -> str:
    """A percentage (already in percent) for people: "11.9 %", "1.0 %", "0.25 %", "0 %"."""
    return f"{_pct_number(x, extra_digits=0)} %"


def format_count(n: int) -> str:
    """A count with thousands separators: 1204 -> "1,204"."""
    return f"{n:,}"


def _rate_pct(counts: Tally) -> float:
    return counts.errors / counts.requests * 100 if counts.requests else 0.0


def _ratio_text(x: float) -> str:
    """An evidence ratio for people: "1,250", "3.2e+40"."""
    if x >= seq.MAX_EVIDENCE:
        return f"over {seq.MAX_EVIDENCE:.0e}"
    return f"{x:,.0f}" if x < 1e6 else f"{x:.1e}"


def _small(x: float | None) -> str:
    """A small probability written out to 3 significant digits: 0.0027, 0.000135."""
    if x is None or x <= 0:
        return "0"
    decimals = max(1, 2 - math.floor(math.log10(x)))
    return f"{x:.{decimals}f}".rstrip("0").rstrip(".")


def _shares_text(layers: Sequence[seq.Stratum]) -> str:
    """The canary's share of the 5xx against what it would be if no worse: checkable by hand."""
    observed = sum(la.canary_errors for la in layers)
    total = sum(la.errors for la in layers)
    expected = sum(la.expected for la in layers)
    shown = f"{expected:,.1f}" if expected < 100 else f"{expected:,.0f}"
    return (
        f"{format_count(observed)} of the {format_count(total)} × 5xx were the canary's, "
        f"{shown} expected if it were no worse"
    )


def _rate_with_counts(counts: Tally) -> str:
    if counts.requests == 0:
        return "no requests"
    rate_pct = counts.errors / counts.requests * 100
    return (
        f"{format_pct(rate_pct)} ({format_count(counts.errors)} × 5xx "
        f"of {format_count(counts.requests)} req)"
    )


def _pct_number(x: float, extra_digits: int) -> str:
    if x == 0:
        return "0"
    magnitude = abs(x)
    # One decimal from 1 % up; two significant digits below it: 0.25, 0.050, 0.0042.
    decimals = 1 if magnitude >= 1 else min(6, 1 - math.floor(math.log10(magnitude)))
    return f"{x:.{decimals + extra_digits}f}"


def _distinct_pcts(value: float, threshold: float) -> tuple[str, str]:
    """Format two percentages with enough digits that different values never print alike.

    Without this a bound of 1.004 % would read "1.0 % > 1.0 %".
    """
    a, b = _pct_number(value, 0), _pct_number(threshold, 0)
    extra = 0
    while a == b and value != threshold and extra < 6:
        extra += 1
        a, b = _pct_number(value, extra), _pct_number(threshold, extra)
    return f"{a} %", f"{b} %"


def _p_text(p: float) -> str:
    """A p-value for people: "p=0.61", "p=0.0003", "p<0.000001"."""
    if p >= 0.995:
        return "p=1"
    if p >= 0.01:
        return f"p={p:.2f}"
    if p < 1e-6:
        return "p<0.000001"
    # One significant digit, written out: 0.0003 rather than 3e-04.
    decimals = -math.floor(math.log10(p))
    return f"p={p:.{decimals}f}"
