"""What each check of a deployment saw: one compact sample per check, the chart's data.

The counts are the step's so far (cumulative from the moment the step's weight was applied, as
the judge reads them: workers.engine.checks.judge), not per window: the line a chart draws from
them is the very figure each verdict quoted, and a per-window rate is the difference of two
samples of one step. The store keeps them beside the deployment (`dep:<id>:samples`), written in
the same MULTI as the check's move, bounded and expiring with the event log
(workers/engine/store.py, Retention).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from workers.analysis.judge import Verdict


class CheckSample(BaseModel):
    """One check: when, at which step and weight, the canary's and the stable's counts so far.

    Stored with one-letter keys (a deployment may hold a few thousand of them).
    """

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True, frozen=True
    )

    at: float = Field(validation_alias="t", serialization_alias="t")
    #: 1-based step (0 before the first shift).
    step: int = Field(validation_alias="s", serialization_alias="s")
    #: The canary's weight in percent at this check.
    weight: int = Field(validation_alias="w", serialization_alias="w")
    canary_requests: int = Field(validation_alias="cr", serialization_alias="cr")
    canary_errors: int = Field(validation_alias="ce", serialization_alias="ce")
    stable_requests: int = Field(validation_alias="sr", serialization_alias="sr")
    stable_errors: int = Field(validation_alias="se", serialization_alias="se")
    #: The verdict's outcome ("pass", "fail", "baking", "not_enough_data").
    outcome: str = Field(validation_alias="o", serialization_alias="o")
    #: Latency at the judged percentile, when the verdict carries it (None: not measured).
    canary_latency_ms: float | None = Field(
        default=None, validation_alias="cl", serialization_alias="cl"
    )
    stable_latency_ms: float | None = Field(
        default=None, validation_alias="sl", serialization_alias="sl"
    )

    @property
    def canary_rate_pct(self) -> float | None:
        """The canary's 5xx rate in percent, None when it served nothing."""
        return _pct(self.canary_errors, self.canary_requests)

    @property
    def stable_rate_pct(self) -> float | None:
        return _pct(self.stable_errors, self.stable_requests)


def sample_of(verdict: Verdict, *, at: float, step: int, weight: int) -> CheckSample:
    """The sample of one check's verdict."""
    return CheckSample(
        at=at,
        step=step,
        weight=weight,
        canary_requests=verdict.canary.requests,
        canary_errors=verdict.canary.errors,
        stable_requests=verdict.stable.requests,
        stable_errors=verdict.stable.errors,
        outcome=verdict.outcome.value,
        # The medians over the step's judged periods (workers/analysis/latency.py); None when
        # latency was not judged at this check.
        canary_latency_ms=verdict.figures.canary_latency_ms,
        stable_latency_ms=verdict.figures.stable_latency_ms,
    )


def _pct(errors: int, requests: int) -> float | None:
    return errors / requests * 100 if requests else None
