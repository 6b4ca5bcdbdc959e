"""Judging a canary's latency from per-period percentiles (pure, no I/O).

CloudWatch gives a percentile per period (the ALB's `TargetResponseTime` with `Stat: p99`), not
the requests' own times, so no exact test exists as for the 5xx counts. The rule is a tolerance
on the effect, made honest over many looks by persistence (docs/ANALYSIS.md, "Latency"):

* a period is judged only when the side(s) it compares served at least `min_period_requests`,
  five requests expected beyond the percentile (500 for p99): a p99 over a few dozen requests
  is their slowest one. CloudWatch's alarms call a percentile "statistically significant" from
  10 / (1 - p) points (1,000 for p99: CloudWatch user guide, "Percentile-based alarms and low
  data samples"); half that is enough here because the spread test below sees the extra noise
  of small samples (docs/ANALYSIS.md measures both);
* a breach is the canary above the ceiling (`max_latency`), or slower than the stable by more
  than `max_latency_increase`, in **more than half** of the judged whole periods of the step,
  and in at least MIN_PERIODS of them: one slow minute, on either side, never rolls back;
* and beyond the periods' own spread: the mean over the periods of log(canary / stable) (or of
  log(canary / ceiling)) must exceed the limit's log by a one-sided Student t quantile of
  standard errors: at 99 % at the look that decides the step (the first with its bake over),
  at 99.9 % at every other look, which need only stop clear breaches early. Latency that is
  noisy on each side separately (tasks on different hosts, a pause now and then) widens that
  spread, so it makes a breach harder to declare instead of easier.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import median
from typing import Any

#: At least this many judged periods before latency can fail a step (a 5-minute bake has 5).
MIN_PERIODS = 3
#: Requests expected beyond the percentile in a period for it to be judged (500 for p99).
MIN_TAIL = 5
#: One-sided confidence of rule 3's Student t test at the look that decides a step (the first
#: with its bake over) and at every other look (during the bake, holding, at a gate). The
#: latency rule's share of the deployment's false-rollback budget: at most 0.1 % of healthy
#: canaries with latency noisy on each side (docs/ANALYSIS.md, "The latency rule's share of
#: the budget"); measured, not guaranteed, since CloudWatch's per-period percentiles are not an
#: exact model.
DECIDING_CONFIDENCE = 0.99
EVERY_LOOK_CONFIDENCE = 0.999
#: How the catalogue writes a percentile: p50, p90, p99, p99.9 (CloudWatch's `pNN.NN`).
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d{1,2})?)")


def parse_percentile(text: str) -> float:
    """ "p99" -> 99.0; ValueError for anything that is not pNN or pNN.N(N) strictly in (0, 100)."""
    found = _PERCENTILE.fullmatch(str(text).strip().lower())
    if not found or not 0 < float(found.group(1)) < 100:
        raise ValueError(
            f"latency_percentile {text!r} is not a percentile: write p50, p90, p95, p99 or p99.9"
        )
    return float(found.group(1))


def percentile_stat(percentile: float) -> str:
    """CloudWatch's statistic for a percentile: 99.0 -> "p99", 99.9 -> "p99.9"."""
    return f"p{percentile:g}"


def min_period_requests(percentile: float) -> int:
    """Requests a period needs for its percentile to be judged: MIN_TAIL beyond it (p99: 500)."""
    return math.ceil(round(MIN_TAIL / (1 - percentile / 100), 6))


@dataclass(frozen=True)
class LatencyPeriod:
    """One whole period: each side's requests and its latency at the percentile (None: no
    data point, e.g. a side that served nothing)."""

    start: float  # epoch seconds
    canary_requests: int
    stable_requests: int
    canary_ms: float | None
    stable_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "canary_requests": self.canary_requests,
            "stable_requests": self.stable_requests,
            "canary_ms": self.canary_ms,
            "stable_ms": self.stable_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyPeriod:
        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            start=float(data["start"]),
            canary_requests=int(data["canary_requests"]),
            stable_requests=int(data["stable_requests"]),
            canary_ms=opt("canary_ms"),
            stable_ms=opt("stable_ms"),
        )


@dataclass(frozen=True)
class LatencySeries:
    """What a check fetched: the percentile asked for and the step's whole periods, in order."""

    percentile: float
    periods: tuple[LatencyPeriod, ...]

    def without_stable(self) -> LatencySeries:
        """The same periods with nothing from the stable (at 100 % it serves nothing)."""
        return LatencySeries(
            self.percentile,
            tuple(
                LatencyPeriod(p.start, p.canary_requests, 0, p.canary_ms, None)
                for p in self.periods
            ),
        )


@dataclass(frozen=True)
class LatencyLimits:
    """The catalogue's latency keys: an absolute ceiling and a relative increase, each optional."""

    percentile: float = 99.0
    max_ms: float | None = None
    max_increase_pct: float | None = None

    @property
    def enabled(self) -> bool:
        return self.max_ms is not None or self.max_increase_pct is not None


@dataclass(frozen=True)
class LatencyFinding:
    """The latency judgement of one look, with the figures of its sentence."""

    breached: bool
    percentile: float
    #: Medians over the judged periods (None when a side had none).
    canary_ms: float | None
    stable_ms: float | None
    #: Median over the compared periods of the canary's increase on the stable, in percent.
    increase_pct: float | None
    #: Periods judged against the ceiling / compared with the stable, and how many breached.
    ceiling_periods: int
    ceiling_over: int
    compared_periods: int
    increase_over: int
    max_ms: float | None
    max_increase_pct: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "breached": self.breached,
            "percentile": self.percentile,
            "canary_ms": self.canary_ms,
            "stable_ms": self.stable_ms,
            "increase_pct": self.increase_pct,
            "ceiling_periods": self.ceiling_periods,
            "ceiling_over": self.ceiling_over,
            "compared_periods": self.compared_periods,
            "increase_over": self.increase_over,
            "max_ms": self.max_ms,
            "max_increase_pct": self.max_increase_pct,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyFinding:
        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            breached=bool(data["breached"]),
            percentile=float(data["percentile"]),
            canary_ms=opt("canary_ms"),
            stable_ms=opt("stable_ms"),
            increase_pct=opt("increase_pct"),
            ceiling_periods=int(data.get("ceiling_periods", 0)),
            ceiling_over=int(data.get("ceiling_over", 0)),
            compared_periods=int(data.get("compared_periods", 0)),
            increase_over=int(data.get("increase_over", 0)),
            max_ms=opt("max_ms"),
            max_increase_pct=opt("max_increase_pct"),
            reason=str(data.get("reason", "")),
        )


def t_upper_tail(t: float, df: int) -> float:
    """P(T > t) for Student's t with `df` >= 1 degrees of freedom and t >= 0, exactly, by the
    finite series of Abramowitz & Stegun 26.7.3-4 (plain Python: scipy would cost ~75 MB in
    every worker, docs/BENCHMARKS.md; tests/test_latency.py checks it against scipy)."""
    if df < 1 or t < 0:
        raise ValueError(f"need df >= 1 and t >= 0, got df={df}, t={t}")
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(2, df - 1, 2):
            term *= c2 * k / (k + 1)
            total += term
        inside = 2 / math.pi * (theta + s * math.cos(theta) * total)
    else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        term = total = 1.0
        for k in range(1, df - 2, 2):
            term *= c2 * k / (k + 1)
            total += term
        inside = s * total
    return max(0.0, (1 - inside) / 2)


@lru_cache(maxsize=256)
def t_quantile(df: int, confidence: float) -> float:
    """The one-sided `confidence` quantile of Student's t with `df` >= 1 degrees of freedom:
    the t whose upper tail is 1 - confidence, by bisection on the exact tail (to 1e-9)."""
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    tail = 1 - confidence
    low, high = 0.0, 1.0
    while t_upper_tail(high, df) > tail:
        low, high = high, 2 * high
    while high - low > 1e-9 * high:
        mid = (low + high) / 2
        low, high = (mid, high) if t_upper_tail(mid, df) > tail else (low, mid)
    return (low + high) / 2


def t_statistic(excess: Sequence[float]) -> float:
    """How many standard errors the mean of `excess` (log ratios minus the limit's log) lies
    above 0; +inf when every period is over by the same amount."""
    n = len(excess)
    mean = sum(excess) / n
    var = sum((x - mean) ** 2 for x in excess) / (n - 1)
    if var <= 1e-12 * max(1.0, mean * mean):  # the same excess in every period (float noise)
        return math.inf if mean > 0 else -math.inf if mean < 0 else 0.0
    return mean / math.sqrt(var / n)


def _beyond_spread(excess: Sequence[float], confidence: float) -> tuple[float, float]:
    """(t, the quantile it must exceed) for the log excesses of the judged periods."""
    return t_statistic(excess), t_quantile(len(excess) - 1, confidence)


def _persistent(over: int, judged: int) -> bool:
    """A breach that persists: more than half of the judged periods, and at least MIN_PERIODS."""
    return judged >= MIN_PERIODS and over >= MIN_PERIODS and 2 * over > judged


def judge_latency(
    series: LatencySeries | None, limits: LatencyLimits, *, deciding: bool = True
) -> LatencyFinding | None:
    """The latency finding of one look, or None when latency is not judged (no limit set, no
    series fetched, or fewer than MIN_PERIODS periods with enough requests). `deciding`: the
    look that decides the step (the first with its bake over), judged at DECIDING_CONFIDENCE;
    every other look at EVERY_LOOK_CONFIDENCE."""
    if series is None or not limits.enabled:
        return None
    confidence = DECIDING_CONFIDENCE if deciding else EVERY_LOOK_CONFIDENCE
    q = series.percentile
    need = min_period_requests(q)
    canary_judged = [
        p for p in series.periods if p.canary_requests >= need and p.canary_ms is not None
    ]
    compared = [
        p
        for p in canary_judged
        if p.stable_requests >= need and p.stable_ms is not None and p.stable_ms > 0
    ]
    ceiling = canary_judged if limits.max_ms is not None else []
    if limits.max_increase_pct is None:
        compared = []
    if len(ceiling) < MIN_PERIODS and len(compared) < MIN_PERIODS:
        return None

    ceiling_over = sum(1 for p in ceiling if (p.canary_ms or 0) > (limits.max_ms or 0))
    factor = 1 + (limits.max_increase_pct or 0) / 100
    increase_over = sum(1 for p in compared if (p.canary_ms or 0) > (p.stable_ms or 0) * factor)
    shown = compared if len(compared) >= MIN_PERIODS else canary_judged
    canary_ms = median(p.canary_ms for p in shown if p.canary_ms is not None)
    stable_values = [p.stable_ms for p in compared if p.stable_ms is not None]
    stable_ms = median(stable_values) if stable_values else None
    increase = (
        median(((p.canary_ms or 0) / (p.stable_ms or 1) - 1) * 100 for p in compared)
        if compared
        else None
    )
    t_ceiling = t_stable = -math.inf
    need_ceiling = need_stable = math.inf
    if len(ceiling) >= MIN_PERIODS and limits.max_ms:
        t_ceiling, need_ceiling = _beyond_spread(
            [math.log(max(p.canary_ms or 0, 1e-9) / limits.max_ms) for p in ceiling], confidence
        )
    if len(compared) >= MIN_PERIODS:
        t_stable, need_stable = _beyond_spread(
            [
                math.log(max(p.canary_ms or 0, 1e-9) / (p.stable_ms or 1)) - math.log(factor)
                for p in compared
            ],
            confidence,
        )
    over_ceiling = _persistent(ceiling_over, len(ceiling)) and t_ceiling > need_ceiling
    over_stable = _persistent(increase_over, len(compared)) and t_stable > need_stable
    name = f"{percentile_stat(q)} latency"
    periods = f"of at least {need:,} req"
    if over_stable:
        assert limits.max_increase_pct is not None and stable_ms is not None
        reason = (
            f"{name} {format_ms(canary_ms)} on the canary vs {format_ms(stable_ms)} on the stable "
            f"(medians over {len(compared)} periods {periods}): more than "
            f"+{limits.max_increase_pct:g} % slower in {increase_over} of the {len(compared)} "
            f"periods (median {_signed(increase)}), beyond their spread "
            f"({_t_text(t_stable)} > {need_stable:.2f})"
        )
    elif over_ceiling:
        assert limits.max_ms is not None
        reason = (
            f"{name} {format_ms(canary_ms)} on the canary (median over {len(ceiling)} periods "
            f"{periods}): above {format_ms(limits.max_ms)} in {ceiling_over} of the "
            f"{len(ceiling)} periods, beyond their spread ({_t_text(t_ceiling)} > "
            f"{need_ceiling:.2f})"
        )
    else:
        parts = []
        if len(compared) >= MIN_PERIODS and stable_ms is not None:
            parts.append(
                f"{name} {format_ms(canary_ms)} vs {format_ms(stable_ms)} on the stable "
                f"(median {_signed(increase)} per period, limit +{limits.max_increase_pct:g} %, "
                f"over it in {increase_over} of {len(compared)} periods)"
            )
        elif ceiling:
            parts.append(f"{name} {format_ms(canary_ms)}")
        if ceiling:
            parts.append(
                f"within {format_ms(limits.max_ms or 0)} "
                f"(over in {ceiling_over} of {len(ceiling)} periods)"
            )
        reason = ", ".join(parts)
    return LatencyFinding(
        breached=over_stable or over_ceiling,
        percentile=q,
        canary_ms=canary_ms,
        stable_ms=stable_ms,
        increase_pct=increase,
        ceiling_periods=len(ceiling),
        ceiling_over=ceiling_over,
        compared_periods=len(compared),
        increase_over=increase_over,
        max_ms=limits.max_ms,
        max_increase_pct=limits.max_increase_pct,
        reason=reason,
    )


def format_ms(ms: float) -> str:
    """A latency for people: "412 ms", "8.5 ms", "1,204 ms"."""
    return f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _t_text(t: float) -> str:
    return "t=∞" if math.isinf(t) else f"t={t:.1f}"


def _signed(pct: float | None) -> str:
    if pct is None:
        return "n/a"
    return f"{pct:+.0f} %"


def periods_from_series(
    percentile: float,
    canary_requests: Mapping[float, float],
    stable_requests: Mapping[float, float],
    canary_ms: Mapping[float, float],
    stable_ms: Mapping[float, float],
) -> LatencySeries:
    """Whole periods by start time (epoch seconds) from the four series of one GetMetricData
    answer; a period appears when either side has a data point in it."""
    starts: Sequence[float] = sorted(
        set(canary_requests) | set(stable_requests) | set(canary_ms) | set(stable_ms)
    )
    return LatencySeries(
        percentile,
        tuple(
            LatencyPeriod(
                start=t,
                canary_requests=max(0, round(canary_requests.get(t, 0))),
                stable_requests=max(0, round(stable_requests.get(t, 0))),
                canary_ms=canary_ms.get(t),
                stable_ms=stable_ms.get(t),
            )
            for t in starts
        ),
    )
