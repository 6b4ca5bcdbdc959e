"""Judging a canary step from its cumulative request and 5xx counts (pure, no I/O).

The rules are in docs/ANALYSIS.md; the contract is "Judging a step" in the design.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any

#: One-sided confidence with which the canary's 5xx rate must exceed max_error_rate to fail.
CONFIDENCE = 0.99
#: Normal quantile for CONFIDENCE (about 2.326), used by the Wilson score lower bound.
Z_ONE_SIDED: float = NormalDist().inv_cdf(CONFIDENCE)
#: One-sided Fisher exact p-value below which the canary is judged worse than the stable.
WORSE_THAN_STABLE_P = 0.001


@dataclass(frozen=True)
class Counts:
    """Requests served and how many of them were answered 5xx, over one window."""

    requests: int
    errors: int

    def __post_init__(self) -> None:
        if self.requests < 0 or self.errors < 0:
            raise ValueError(f"counts cannot be negative: {self.requests} req, {self.errors} 5xx")
        if self.errors > self.requests:
            raise ValueError(f"more 5xx ({self.errors}) than requests ({self.requests})")

    @property
    def rate(self) -> float | None:
        """The 5xx fraction, or None when nothing was served."""
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rate_pct": None if rate is None else rate * 100,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        return cls(requests=int(data["requests"]), errors=int(data["errors"]))


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    BAKING = "baking"
    NOT_ENOUGH_DATA = "not_enough_data"


@dataclass(frozen=True)
class Verdict:
    """One check of a step: the outcome, the figures behind it and a sentence explaining it."""

    outcome: Outcome
    canary: Counts
    stable: Counts
    threshold_pct: float
    wilson_lower_pct: float | None
    p_value: float | None
    alarms_firing: tuple[str, ...]
    reason: str
    #: No metric tells the two versions apart (router ecs without an ALB): the configured alarms
    #: alone judged this step, over its bake.
    alarms_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for the event log (rates are included for readers, not read back)."""
        return {
            "outcome": self.outcome.value,
            "canary": self.canary.to_dict(),
            "stable": self.stable.to_dict(),
            "threshold_pct": self.threshold_pct,
            "wilson_lower_pct": self.wilson_lower_pct,
            "p_value": self.p_value,
            "alarms_firing": list(self.alarms_firing),
            "reason": self.reason,
            "alarms_only": self.alarms_only,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        def opt_float(value: Any) -> float | None:
            return None if value is None else float(value)

        return cls(
            outcome=Outcome(data["outcome"]),
            canary=Counts.from_dict(data["canary"]),
            stable=Counts.from_dict(data["stable"]),
            threshold_pct=float(data["threshold_pct"]),
            wilson_lower_pct=opt_float(data.get("wilson_lower_pct")),
            p_value=opt_float(data.get("p_value")),
            alarms_firing=tuple(data.get("alarms_firing", ())),
            reason=str(data["reason"]),
            alarms_only=bool(data.get("alarms_only", False)),
        )


def format_pct(x: float) -> str:
    """A percentage (already in percent) for people: "11.9 %", "1.0 %", "0.25 %", "0 %"."""
    return f"{_pct_number(x, extra_digits=0)} %"


def format_count(n: int) -> str:
    """A count with thousands separators: 1204 -> "1,204"."""
    return f"{n:,}"


def wilson_lower_bound(errors: int, requests: int, z: float = Z_ONE_SIDED) -> float | None:
    """One-sided Wilson score lower bound of a proportion (fraction), None without requests."""
    if requests <= 0:
        return None
    if errors == 0:
        # Exactly 0, not the tiny positive float the formula leaves, so a 0 % threshold holds.
        return 0.0
    n = requests
    p = errors / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamped to [0, p]: float rounding must not put the bound above the observed rate.
    return min(p, max(0.0, (centre - margin) / (1 + z2 / n)))


def worse_than_stable_p(canary: Counts, stable: Counts) -> float | None:
    """One-sided Fisher exact p-value that the canary's 5xx rate exceeds the stable's.

    Same as scipy.stats.fisher_exact([[ce, c_ok], [se, s_ok]], alternative="greater"), computed
    straight from the hypergeometric tail, which stays fast with counts in the millions.
    None when either side served nothing (there is nothing to compare).
    """
    if canary.requests == 0 or stable.requests == 0:
        return None
    if canary.errors == 0:
        return 1.0
    total = canary.requests + stable.requests
    total_errors = canary.errors + stable.errors
    # P(X >= canary.errors) where X is the canary's share of all errors under "no difference".
    p = hypergeom_sf(canary.errors - 1, total, total_errors, canary.requests)
    return min(1.0, max(0.0, p))


def hypergeom_sf(k: int, total: int, marked: int, drawn: int) -> float:
    """P(X > k) for X the marked items among `drawn` taken from `total`, `marked` of them marked.

    The same as scipy.stats.hypergeom.sf(k, total, marked, drawn), in plain Python: scipy costs
    about 75 MB of resident memory in every process that imports it. The tail on the far side
    of the mode is summed term by term (each term from the previous by the pmf's ratio, the
    first from log-gamma), stopping once terms no longer change the sum.
    """
    low, high = max(0, drawn - (total - marked)), min(marked, drawn)
    first = k + 1
    if first <= low:
        return 1.0
    if first > high:
        return 0.0
    unmarked = total - marked
    mode = (drawn + 1) * (marked + 1) // (total + 2)

    def log_pmf(x: int) -> float:
        return _log_choose(marked, x) + _log_choose(unmarked, drawn - x) - _log_choose(total, drawn)

    if first > mode:  # the upper tail: terms fall from `first` on
        term = total_sum = math.exp(log_pmf(first))
        x = first
        while x < high and term > total_sum * 1e-18:
            term *= (marked - x) * (drawn - x) / ((x + 1) * (unmarked - drawn + x + 1))
            x += 1
            total_sum += term
        return total_sum
    # The lower tail P(X <= k): terms fall from k down.
    term = lower = math.exp(log_pmf(k))
    x = k
    while x > low and term > lower * 1e-18:
        term *= x * (unmarked - drawn + x) / ((marked - x + 1) * (drawn - x + 1))
        x -= 1
        lower += term
    return 1.0 - lower


def _log_choose(n: int, r: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)


def judge(
    canary: Counts,
    stable: Counts,
    *,
    max_error_rate_pct: float,
    min_requests: int,
    bake_complete: bool,
    alarms_firing: Sequence[str] = (),
    alarms_only: bool = False,
) -> Verdict:
    """Judge a step from its cumulative counts since the step's weight was applied.

    FAIL needs strong evidence (an alarm, the Wilson bound above the threshold, or Fisher's
    p below WORSE_THAN_STABLE_P); PASS needs the bake over and at least min_requests (and at
    least one request: no data is never a pass); otherwise NOT_ENOUGH_DATA or BAKING.

    `alarms_only`: no metric tells the two versions apart, so the configured alarms are the
    whole judgement: PASS once the bake is over with none in ALARM (the caller sets it only when
    alarms are configured: with none there would be nothing to judge by).
    """
    if not 0 <= max_error_rate_pct < 100:
        raise ValueError(f"max_error_rate_pct must be in [0, 100), got {max_error_rate_pct}")
    if min_requests < 0:
        raise ValueError(f"min_requests cannot be negative, got {min_requests}")
    if isinstance(alarms_firing, str):
        # A bare string would be read as a sequence of one-letter alarm names.
        raise TypeError("alarms_firing must be a sequence of alarm names, not a string")

    alarms = tuple(alarms_firing)
    lower = wilson_lower_bound(canary.errors, canary.requests)
    lower_pct = None if lower is None else lower * 100
    p_value = worse_than_stable_p(canary, stable)
    threshold = float(max_error_rate_pct)

    def verdict(outcome: Outcome, reason: str) -> Verdict:
        return Verdict(
            outcome, canary, stable, threshold, lower_pct, p_value, alarms, reason, alarms_only
        )

    if alarms:
        noun = "alarm" if len(alarms) == 1 else "alarms"
        verb = "is" if len(alarms) == 1 else "are"
        return verdict(
            Outcome.FAIL, f"{noun} {', '.join(alarms)} {verb} in ALARM; {_canary_so_far(canary)}"
        )
    if alarms_only:
        if bake_complete:
            return verdict(Outcome.PASS, "no alarm in ALARM over the bake (judged by alarms only)")
        return verdict(Outcome.BAKING, "baking, no alarm in ALARM so far (judged by alarms only)")
    if lower_pct is not None and lower_pct > threshold:
        shown_lower, shown_threshold = _distinct_pcts(lower_pct, threshold)
        return verdict(
            Outcome.FAIL,
            f"canary {format_count(canary.requests)} req, {format_count(canary.errors)} × 5xx "
            f"({format_pct(canary.errors / canary.requests * 100)}) > {shown_threshold} "
            f"with {_confidence_text()} confidence (lower bound {shown_lower})",
        )
    if p_value is not None and p_value < WORSE_THAN_STABLE_P:
        return verdict(
            Outcome.FAIL,
            f"canary {_rate_with_counts(canary)} vs stable {_rate_with_counts(stable)}: "
            f"worse than stable ({_p_text(p_value)}, below {WORSE_THAN_STABLE_P:g})",
        )

    if bake_complete and canary.requests >= max(min_requests, 1):
        return verdict(
            Outcome.PASS, _healthy_sentence(canary, stable, threshold, lower_pct, p_value)
        )
    if bake_complete:
        needed = max(min_requests, 1)
        return verdict(
            Outcome.NOT_ENOUGH_DATA,
            f"{format_count(canary.requests)} canary requests, {format_count(needed)} needed "
            "to judge",
        )
    if canary.requests == 0:
        return verdict(Outcome.BAKING, "baking: no canary requests yet")
    return verdict(
        Outcome.BAKING,
        "baking, no breach so far: "
        + _healthy_sentence(canary, stable, threshold, lower_pct, p_value),
    )


def _healthy_sentence(
    canary: Counts,
    stable: Counts,
    threshold: float,
    lower_pct: float | None,
    p_value: float | None,
) -> str:
    """Why a canary with requests did not fail, with the figures to check it by hand."""
    rate_pct = canary.errors / canary.requests * 100
    if rate_pct <= threshold:
        shown_rate, shown_threshold = _distinct_pcts(rate_pct, threshold)
        against_threshold = f"within {shown_threshold}"
    else:
        # Above the threshold, but too few requests to be sure: say so rather than "within".
        assert lower_pct is not None
        shown_lower, shown_threshold = _distinct_pcts(lower_pct, threshold)
        shown_rate, _ = _distinct_pcts(rate_pct, threshold)
        against_threshold = (
            f"above {shown_threshold} but not with {_confidence_text()} confidence "
            f"(lower bound {shown_lower})"
        )
    canary_part = (
        f"canary {shown_rate} ({format_count(canary.errors)} × 5xx "
        f"of {format_count(canary.requests)} req)"
    )
    if p_value is None:
        return f"{canary_part}: {against_threshold}, no stable traffic to compare"
    return (
        f"{canary_part} vs stable {_rate_with_counts(stable)}: {against_threshold}, "
        f"no worse than stable ({_p_text(p_value)})"
    )


def _canary_so_far(canary: Counts) -> str:
    if canary.requests == 0:
        return "no canary requests yet"
    return f"canary so far {_rate_with_counts(canary)}"


def _rate_with_counts(counts: Counts) -> str:
    if counts.requests == 0:
        return "no requests"
    rate_pct = counts.errors / counts.requests * 100
    return (
        f"{format_pct(rate_pct)} ({format_count(counts.errors)} × 5xx "
        f"of {format_count(counts.requests)} req)"
    )


def _confidence_text() -> str:
    return f"{CONFIDENCE * 100:g} %"


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
