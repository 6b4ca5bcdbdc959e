"""Judging a canary step from its cumulative request and 5xx counts (pure, no I/O).

The rules are in docs/ANALYSIS.md; the contract is "Judging a step" in the design. This module
decides; the sentence that says why, for people, is written by workers/analysis/sentences.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from statistics import NormalDist
from typing import Any

from workers.analysis import sentences as words
from workers.analysis import sequential as seq
from workers.analysis.latency import LatencyFinding, LatencyLimits, LatencySeries, judge_latency

# Re-exported: the Slack messages and the tests import them from here.
from workers.analysis.sentences import format_count as format_count
from workers.analysis.sentences import format_pct as format_pct
from workers.analysis.sequential import hypergeom_sf

#: Confidence of the Wilson lower bound shown with each verdict (a figure for readers: the
#: decision itself is the deployment's error budget, workers/analysis/sequential.py).
CONFIDENCE = 0.99
#: Normal quantile for CONFIDENCE (about 2.326), used by the Wilson score lower bound.
Z_ONE_SIDED: float = NormalDist().inv_cdf(CONFIDENCE)


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


@dataclass(frozen=True)
class StepCounts:
    """The final counts of one earlier step of the deployment (the canary runs the same image)."""

    canary: Counts
    stable: Counts

    def to_dict(self) -> dict[str, Any]:
        return {"canary": self.canary.to_dict(), "stable": self.stable.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepCounts:
        return cls(Counts.from_dict(data["canary"]), Counts.from_dict(data["stable"]))


@dataclass(frozen=True)
class Figures:
    """The sequential figures behind a verdict (docs/ANALYSIS.md): all of them over the
    deployment so far, not only this step."""

    #: Exact binomial p-value of the canary's 5xx against max_error_rate.
    threshold_p: float | None = None
    #: Evidence ratios (e-values) against "at most max_error_rate" and "no worse than stable".
    threshold_evidence: float | None = None
    worse_evidence: float | None = None
    #: The p-value boundaries of this look: set only at the end of a bake.
    threshold_boundary: float | None = None
    worse_boundary: float | None = None
    #: How many steps the evidence covers (this one included).
    steps: int = 1
    #: The canary's and stable's counts over those steps, when more than one.
    deployment_canary: Counts | None = None
    deployment_stable: Counts | None = None
    #: Latency at `latency_percentile` (99.0 for p99) this look, in milliseconds: the medians
    #: over the step's judged periods (workers/analysis/latency.py); None when not judged.
    latency_percentile: float | None = None
    canary_latency_ms: float | None = None
    stable_latency_ms: float | None = None
    #: The stable's counts from before the deployment (its baseline), when the engine read them;
    #: the p-value of the canary's deployment counts against them pooled with the stable's
    #: deployment counts (one-sided Fisher); and, at the end of a bake, the looser boundary the
    #: stratified p-value must then be below (docs/ANALYSIS.md, "A baseline").
    baseline: Counts | None = None
    baseline_p: float | None = None
    worse_loose_boundary: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold_p": self.threshold_p,
            "threshold_evidence": self.threshold_evidence,
            "worse_evidence": self.worse_evidence,
            "threshold_boundary": self.threshold_boundary,
            "worse_boundary": self.worse_boundary,
            "steps": self.steps,
            "deployment_canary": _opt_counts_dict(self.deployment_canary),
            "deployment_stable": _opt_counts_dict(self.deployment_stable),
            "latency_percentile": self.latency_percentile,
            "canary_latency_ms": self.canary_latency_ms,
            "stable_latency_ms": self.stable_latency_ms,
            "baseline": _opt_counts_dict(self.baseline),
            "baseline_p": self.baseline_p,
            "worse_loose_boundary": self.worse_loose_boundary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figures:
        def opt_float(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        def opt_counts(key: str) -> Counts | None:
            value = data.get(key)
            return None if value is None else Counts.from_dict(value)

        return cls(
            threshold_p=opt_float("threshold_p"),
            threshold_evidence=opt_float("threshold_evidence"),
            worse_evidence=opt_float("worse_evidence"),
            threshold_boundary=opt_float("threshold_boundary"),
            worse_boundary=opt_float("worse_boundary"),
            steps=int(data.get("steps", 1)),
            deployment_canary=opt_counts("deployment_canary"),
            deployment_stable=opt_counts("deployment_stable"),
            latency_percentile=opt_float("latency_percentile"),
            canary_latency_ms=opt_float("canary_latency_ms"),
            stable_latency_ms=opt_float("stable_latency_ms"),
            baseline=opt_counts("baseline"),
            baseline_p=opt_float("baseline_p"),
            worse_loose_boundary=opt_float("worse_loose_boundary"),
        )


def _opt_counts_dict(counts: Counts | None) -> dict[str, Any] | None:
    return None if counts is None else counts.to_dict()


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    BAKING = "baking"
    NOT_ENOUGH_DATA = "not_enough_data"


class ReasonCode(StrEnum):
    """What a verdict rests on, as a short code (its sentence says it for people)."""

    ALARM = "alarm"  # a configured alarm is in ALARM
    ERROR_RATE = "error_rate"  # the canary's 5xx rate is above max_error_rate
    WORSE_THAN_STABLE = "worse_than_stable"
    LATENCY = "latency"  # the canary's latency is persistently above its limit
    HEALTHY = "healthy"  # nothing failed (pass, or baking on)
    ALARMS_QUIET = "alarms_quiet"  # judged by alarms only, and none fired
    TOO_FEW_REQUESTS = "too_few_requests"  # the bake is over below min_requests
    NO_REQUESTS_YET = "no_requests_yet"
    UNKNOWN = "unknown"  # a verdict recorded before codes were


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
    figures: Figures = Figures()
    #: No metric tells the two versions apart (router ecs without an ALB): the configured alarms
    #: alone judged this step, over its bake.
    alarms_only: bool = False
    code: ReasonCode = ReasonCode.UNKNOWN
    #: The latency judgement of this look (None: no limit set or not enough periods to judge).
    latency: LatencyFinding | None = None

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
            "figures": self.figures.to_dict(),
            "alarms_only": self.alarms_only,
            "code": self.code.value,
            "latency": None if self.latency is None else self.latency.to_dict(),
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
            figures=Figures.from_dict(data.get("figures") or {}),
            alarms_only=bool(data.get("alarms_only", False)),
            code=_reason_code(data.get("code")),
            latency=(
                None if data.get("latency") is None else LatencyFinding.from_dict(data["latency"])
            ),
        )


def _reason_code(value: Any) -> ReasonCode:
    try:
        return ReasonCode(value)
    except ValueError:
        return ReasonCode.UNKNOWN


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


def judge(
    canary: Counts,
    stable: Counts,
    *,
    max_error_rate_pct: float,
    min_requests: int,
    bake_complete: bool,
    alarms_firing: Sequence[str] = (),
    earlier: Sequence[StepCounts] = (),
    end_of_bake: bool | None = None,
    alarms_only: bool = False,
    latency: LatencySeries | None = None,
    latency_limits: LatencyLimits | None = None,
    baseline: Counts | None = None,
) -> Verdict:
    """Judge a look at a step from its cumulative counts since the step's weight was applied.

    `earlier` holds the final counts of the deployment's earlier steps, in order (same image,
    so their evidence counts too); the step being judged is step len(earlier) + 1.
    `end_of_bake` is true at the one look that decides the step (the first with the bake over)
    and false at every other look (during the bake, while holding, at a gate); by default it
    follows `bake_complete`. The error budget behind the boundaries is in
    workers/analysis/sequential.py and docs/ANALYSIS.md.

    FAIL needs an alarm, or the deployment's evidence crossing a boundary (above max_error_rate,
    or worse than the stable); PASS needs the bake over and at least min_requests at this step
    (and at least one request: no data is never a pass); otherwise NOT_ENOUGH_DATA or BAKING.

    `alarms_only`: no metric tells the two versions apart, so the configured alarms are the
    whole judgement: PASS once the bake is over with none in ALARM (the caller sets it only when
    alarms are configured: with none there would be nothing to judge by).

    `latency` (the step's per-period percentiles, from the same fetch as the counts) and
    `latency_limits` (the catalogue's latency keys) add the latency rule of
    workers/analysis/latency.py: a persistent breach fails the step after the 5xx rules (its
    spread test at 99 % at the look that decides, at 99.9 % at every other look); a judged
    latency is named in the sentence of a pass.

    `baseline`: the stable's counts over a window before the deployment (the engine reads them
    at provisioning). With them, the end-of-bake "worse than the stable" failure needs both the
    stratified p-value at or below the looser boundary of seq.OUTAGE_BUDGET and the p-value of
    the canary against the stable's baseline and deployment counts pooled at or below the
    step's WORSE_BUDGET boundary. Without them (None, or no request in them) the rule is as it
    was; the always-valid test at every look never uses them.
    """
    if not 0 <= max_error_rate_pct < 100:
        raise ValueError(f"max_error_rate_pct must be in [0, 100), got {max_error_rate_pct}")
    if min_requests < 0:
        raise ValueError(f"min_requests cannot be negative, got {min_requests}")
    if isinstance(alarms_firing, str):
        # A bare string would be read as a sequence of one-letter alarm names.
        raise TypeError("alarms_firing must be a sequence of alarm names, not a string")

    alarms = tuple(alarms_firing)
    steps = [*earlier, StepCounts(canary, stable)]
    step_number = len(steps)
    deciding = bake_complete if end_of_bake is None else end_of_bake
    all_canary = Counts(sum(s.canary.requests for s in steps), sum(s.canary.errors for s in steps))
    all_stable = Counts(sum(s.stable.requests for s in steps), sum(s.stable.errors for s in steps))
    threshold = float(max_error_rate_pct)
    theta = threshold / 100
    layers = strata(steps)
    lower = wilson_lower_bound(all_canary.errors, all_canary.requests)
    threshold_e = seq.threshold_evidence(all_canary.requests, all_canary.errors, theta)
    worse_e = seq.worse_evidence(layers)
    finding = (
        None
        if alarms_only or latency_limits is None
        else judge_latency(latency, latency_limits, deciding=deciding)
    )
    figures = Figures(
        threshold_p=seq.threshold_p(all_canary.requests, all_canary.errors, theta),
        threshold_evidence=threshold_e,
        worse_evidence=worse_e,
        threshold_boundary=(
            seq.end_alpha(seq.THRESHOLD_BUDGET, step_number - 1) if deciding else None
        ),
        worse_boundary=seq.end_alpha(seq.WORSE_BUDGET, step_number - 1) if deciding else None,
        steps=step_number,
        deployment_canary=all_canary if earlier else None,
        deployment_stable=all_stable if earlier else None,
        latency_percentile=None if finding is None else finding.percentile,
        canary_latency_ms=None if finding is None else finding.canary_ms,
        stable_latency_ms=None if finding is None else finding.stable_ms,
    )
    lower_pct = None if lower is None else lower * 100
    p_value = seq.worse_p(layers)
    # The stable before the deployment, pooled with its deployment counts: a sharper estimate
    # of its rate, valid as long as that rate did not move (hence the stratified test as well).
    pooled = baseline_p = None
    if baseline is not None and baseline.requests and p_value is not None:
        pooled = Counts(
            baseline.requests + all_stable.requests, baseline.errors + all_stable.errors
        )
        baseline_p = worse_than_stable_p(all_canary, pooled)
    if baseline_p is not None:
        figures = replace(
            figures,
            baseline=baseline,
            baseline_p=baseline_p,
            worse_loose_boundary=(
                seq.end_alpha(seq.OUTAGE_BUDGET, step_number - 1) if deciding else None
            ),
        )

    def verdict(outcome: Outcome, reason: str, code: ReasonCode) -> Verdict:
        return Verdict(
            outcome,
            canary,
            stable,
            threshold,
            lower_pct,
            p_value,
            alarms,
            reason,
            figures,
            alarms_only,
            code,
            finding,
        )

    scope = words.over_steps(step_number, bool(earlier))
    if alarms:
        return verdict(Outcome.FAIL, words.alarms_firing(alarms, canary), ReasonCode.ALARM)
    if alarms_only:
        if bake_complete:
            return verdict(Outcome.PASS, words.ALARMS_QUIET_PASSED, ReasonCode.ALARMS_QUIET)
        return verdict(Outcome.BAKING, words.ALARMS_QUIET_BAKING, ReasonCode.ALARMS_QUIET)
    needed = seq.evidence_needed(seq.THRESHOLD_BUDGET)
    if all_canary.requests and threshold_e >= needed:
        return verdict(
            Outcome.FAIL,
            words.above_by_evidence(all_canary, threshold, scope, threshold_e, needed),
            ReasonCode.ERROR_RATE,
        )
    tp, tb = figures.threshold_p, figures.threshold_boundary
    if tp is not None and tb is not None and tp <= tb:
        return verdict(
            Outcome.FAIL,
            words.above_at_end(all_canary, threshold, scope, tp, tb, step_number),
            ReasonCode.ERROR_RATE,
        )
    needed = seq.evidence_needed(seq.WORSE_BUDGET)
    if worse_e >= needed:
        return verdict(
            Outcome.FAIL,
            words.worse_by_evidence(all_canary, all_stable, scope, layers, worse_e, needed),
            ReasonCode.WORSE_THAN_STABLE,
        )
    wb, lb = figures.worse_boundary, figures.worse_loose_boundary
    if p_value is not None and wb is not None and baseline_p is not None and lb is not None:
        if p_value <= lb and baseline_p <= wb:
            assert baseline is not None and pooled is not None
            return verdict(
                Outcome.FAIL,
                words.worse_with_baseline(
                    all_canary,
                    all_stable,
                    scope,
                    layers,
                    p=p_value,
                    loose_boundary=lb,
                    baseline=baseline,
                    pooled=pooled,
                    baseline_p=baseline_p,
                    boundary=wb,
                    step_number=step_number,
                ),
                ReasonCode.WORSE_THAN_STABLE,
            )
    elif p_value is not None and wb is not None and p_value <= wb:
        return verdict(
            Outcome.FAIL,
            words.worse_at_end(all_canary, all_stable, scope, layers, p_value, wb, step_number),
            ReasonCode.WORSE_THAN_STABLE,
        )

    if finding is not None and finding.breached:
        return verdict(
            Outcome.FAIL, words.latency_breached(finding.reason, canary), ReasonCode.LATENCY
        )
    latency_text = f"; {finding.reason}" if finding is not None and finding.reason else ""
    baseline_text = (
        words.baseline_note(baseline, baseline_p, wb, lb)
        if baseline_p is not None and baseline is not None
        else ""
    )

    def healthy() -> str:
        sentence = words.healthy(all_canary, all_stable, threshold, tp, tb, p_value, scope)
        return sentence + baseline_text + latency_text

    if bake_complete and canary.requests >= max(min_requests, 1):
        return verdict(
            Outcome.PASS,
            healthy(),
            ReasonCode.HEALTHY,
        )
    if bake_complete:
        return verdict(
            Outcome.NOT_ENOUGH_DATA,
            words.too_few_requests(canary.requests, max(min_requests, 1)),
            ReasonCode.TOO_FEW_REQUESTS,
        )
    if canary.requests == 0:
        return verdict(Outcome.BAKING, words.NO_REQUESTS_YET, ReasonCode.NO_REQUESTS_YET)
    return verdict(
        Outcome.BAKING,
        words.still_baking(healthy()),
        ReasonCode.HEALTHY,
    )


def strata(steps: Sequence[StepCounts]) -> list[seq.Stratum]:
    """The steps where both sides served requests: the comparison with the stable, step by step
    (pooling steps would compare a canary that served mostly late against a stable that served
    mostly early)."""
    return [
        seq.Stratum(
            canary_errors=s.canary.errors,
            errors=s.canary.errors + s.stable.errors,
            canary_requests=s.canary.requests,
            requests=s.canary.requests + s.stable.requests,
        )
        for s in steps
        if s.canary.requests and s.stable.requests
    ]
