"""The error budget of a deployment: how much chance of a false rollback each look may spend.

A deployment is looked at many times (every `analysis_interval`, at every step, while holding
and at gates), so a test with a fixed p-value cut at every look fails a healthy canary more
often the more it is looked at. Here each of the two questions ("is the canary above
max_error_rate?", "is the canary worse than the stable?") gets a budget for the whole
deployment, spent in two parts (docs/ANALYSIS.md has the reasoning and the measurements):

* END_SHARE of it at the **end of each bake**, the look that decides whether the canary goes on:
  an exact p-value on all the evidence of the deployment so far must fall below
  ``budget * END_SHARE * step_weight(step)`` (15 % of it at the first step, 75 % at the second,
  then 5 %, 2.5 %...: the sum stays within the budget however many steps there are);
* the rest at **every look** (during the bake, while holding for data, at a gate, whatever
  their number) through an always-valid test: a likelihood ratio averaged over a few
  alternatives (an e-value) must reach ``1 / (budget * (1 - END_SHARE))``. By Ville's
  inequality a healthy canary's ratio ever reaches that with probability at most
  ``budget * (1 - END_SHARE)``, over any number of looks.

By the union bound a canary no worse than the stable is failed by the comparison with
probability at most WORSE_BUDGET over the deployment, and one at max_error_rate by the
threshold test with probability at most THRESHOLD_BUDGET.

Everything here is pure: the decision is a function of the counts seen so far.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

#: Chance, over a whole deployment, that a canary exactly as good as the stable is failed as
#: "worse than stable".
WORSE_BUDGET = 0.004
#: Chance, over a whole deployment, that a canary exactly at max_error_rate is failed as above it.
THRESHOLD_BUDGET = 0.001
#: With the stable's counts from before the deployment (a baseline), the end-of-bake "worse"
#: failure needs two exact tests to agree (an intersection-union rule, docs/ANALYSIS.md): the
#: comparison with the stable's baseline and deployment counts pooled at WORSE_BUDGET's
#: boundary, and the stratified comparison (the deployment's minutes only) at this looser
#: budget's. A stationary stable: false rollbacks stay within WORSE_BUDGET; an outage that moves
#: both versions' rates during the deployment voids the pooled test, and this bounds them then.
OUTAGE_BUDGET = 0.02
#: Share of each budget spent by the exact tests at the ends of bakes; the rest goes to the
#: always-valid test at every look.
END_SHARE = 0.9
#: Shares of the end-of-bake budget at the ends of the first and second steps; the rest is
#: halved from step to step after them (step_weight).
FIRST_STEP_SHARE = 0.15
SECOND_STEP_SHARE = 0.75
#: Alternatives the always-valid tests average over: the canary's 5xx odds this many times the
#: stable's, or its 5xx rate this many times max_error_rate. Coarse on purpose: this test only has
#: to stop clear breaches between the ends of bakes; the exact tests decide the close calls.
WORSE_RATIOS: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)
THRESHOLD_RATIOS: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)
#: Largest stored evidence ratio: keeps verdicts JSON-safe (no infinities).
MAX_EVIDENCE = 1e300


def end_alpha(budget: float, step_index: int) -> float:
    """The p-value boundary of the end-of-bake test at step `step_index` (0 for the first)."""
    return budget * END_SHARE * step_weight(step_index)


def step_weight(step_index: int) -> float:
    """Share of the end-of-bake budget at a step: 0.15, 0.75, then 0.05, 0.025... (sum 1).

    Most goes to the first two steps' ends, the looks before the canary serves more than a
    quarter of the traffic (where a bad canary must be stopped), and most of that to the second:
    it is the last of them and the first with two steps of evidence. The first step's look has
    little data (a small weight for one bake), so a big share buys little; later steps have
    more data, so they need less to reach the same power. docs/ANALYSIS.md has the measurements.
    """
    if step_index == 0:
        return FIRST_STEP_SHARE
    if step_index == 1:
        return SECOND_STEP_SHARE
    return (1 - FIRST_STEP_SHARE - SECOND_STEP_SHARE) * 0.5 ** (step_index - 1)


def evidence_needed(budget: float) -> float:
    """The evidence ratio the always-valid test needs at any look: 1 / its share of the budget."""
    return 1.0 / (budget * (1 - END_SHARE))


# --- vs max_error_rate --------------------------------------------------------------------


def threshold_evidence(requests: int, errors: int, threshold: float) -> float:
    """Evidence ratio that the canary's 5xx rate is above `threshold` (a fraction).

    The mean over q in threshold x THRESHOLD_RATIOS of the binomial likelihood ratio
    (q / t) ** errors * ((1 - q) / (1 - t)) ** (requests - errors): a martingale for a canary at
    exactly the threshold, a supermartingale below it.
    """
    if errors == 0:
        return 1.0 if threshold > 0 or requests == 0 else 0.0
    if threshold <= 0:
        return MAX_EVIDENCE  # any 5xx is above a 0 % threshold
    alternatives = [threshold * r for r in THRESHOLD_RATIOS if threshold * r < 1]
    if not alternatives:
        alternatives = [(1 + threshold) / 2]
    logs = [
        errors * math.log(q / threshold)
        + (requests - errors) * (math.log1p(-q) - math.log1p(-threshold))
        for q in alternatives
    ]
    return _mean_exp(logs)


def threshold_p(requests: int, errors: int, threshold: float) -> float | None:
    """Exact one-sided p-value P(X >= errors) for X ~ Binomial(requests, threshold)."""
    if requests <= 0:
        return None
    if errors == 0:
        return 1.0
    if threshold <= 0:
        return 0.0
    return min(1.0, max(0.0, binom_sf(errors - 1, requests, threshold)))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X > k) for X ~ Binomial(n, p); the same as scipy.stats.binom.sf(k, n, p).

    Summed term by term from the side of `k` away from the mode (each term from the last by the
    pmf's ratio), like hypergeom_sf below, so that scipy stays out of the workers.
    """
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    q = 1.0 - p
    mode = math.floor((n + 1) * p)
    first = k + 1

    def log_pmf(x: int) -> float:
        return (
            math.lgamma(n + 1)
            - math.lgamma(x + 1)
            - math.lgamma(n - x + 1)
            + x * math.log(p)
            + (n - x) * math.log1p(-p)
        )

    if first > mode:
        term = total = math.exp(log_pmf(first))
        x = first
        while x < n and term > total * 1e-18:
            term *= (n - x) * p / ((x + 1) * q)
            x += 1
            total += term
        return total
    term = lower = math.exp(log_pmf(k))
    x = k
    while x > 0 and term > lower * 1e-18:
        term *= x * q / ((n - x + 1) * p)
        x -= 1
        lower += term
    return 1.0 - lower


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


# --- vs the stable, step by step ----------------------------------------------------------


@dataclass(frozen=True)
class Stratum:
    """One step's 2x2 counts, as the comparison with the stable uses them."""

    canary_errors: int
    errors: int  # canary's and stable's 5xx together
    canary_requests: int
    requests: int  # canary's and stable's together

    @property
    def share(self) -> float:
        """The canary's share of the requests: its expected share of the 5xx if no worse."""
        return self.canary_requests / self.requests

    @property
    def expected(self) -> float:
        return self.errors * self.share


def worse_evidence(layers: Sequence[Stratum]) -> float:
    """Evidence ratio that the canary's 5xx odds are above the stable's, over all steps.

    Given a step's 5xx, each is the canary's with probability `share` if the canary is no worse,
    and share * r / (1 + share * (r - 1)) if its odds are r times the stable's. The likelihood
    ratio, multiplied over steps, is r ** canary_errors / prod (1 + share * (r - 1)) ** errors;
    its mean over r in WORSE_RATIOS is the evidence. (Sampling requests without replacement
    only makes it smaller on average: Hoeffding 1963, theorem 4.)
    """
    if not layers:
        return 1.0
    x = sum(layer.canary_errors for layer in layers)
    logs = [
        x * math.log(r) - sum(la.errors * math.log1p(la.share * (r - 1)) for la in layers)
        for r in WORSE_RATIOS
    ]
    return _mean_exp(logs)


def worse_p(layers: Sequence[Stratum]) -> float | None:
    """One-sided p-value that the canary's 5xx rate is above the stable's, step by step.

    Conditional on each step's margins, the canary's 5xx at that step are hypergeometric; the
    p-value is P(sum >= observed) for the sum of those independent hypergeometrics (the exact
    stratified test, like R's mantelhaen.test(exact=TRUE, alternative="greater")). One step:
    exactly Fisher's test. Several steps: exact by convolution while the distributions are
    small; beyond that a normal approximation with a skewness correction, accurate there
    because the skewness of the sum shrinks as 1 / its standard deviation.
    """
    if not layers:
        return None
    observed = sum(la.canary_errors for la in layers)
    if observed == 0:
        return 1.0
    if len(layers) == 1:
        la = layers[0]
        tail = hypergeom_sf(observed - 1, la.requests, la.errors, la.canary_requests)
        return min(1.0, max(0.0, tail))
    pmfs = [_hypergeom_pmf(la) for la in layers]
    if math.prod(len(p) for _, p in pmfs[:-1]) <= EXACT_WORK:
        # All steps but the last convolved; then P(sum >= observed) summed against the last
        # step's tail, which costs one pass instead of another convolution.
        low, dist = pmfs[0]
        for lo2, p2 in pmfs[1:-1]:
            dist, low = _convolve(dist, p2), low + lo2
        last_low, last = pmfs[-1]
        tails = list(itertools.accumulate(reversed(last)))[::-1]  # tails[i] = P(last >= low+i)
        total = 0.0
        for i, mass in enumerate(dist):
            need = observed - (low + i) - last_low  # index into the last step's tail
            if need <= 0:
                total += mass
            elif need < len(tails):
                total += mass * tails[need]
        return min(1.0, max(0.0, total))
    mean = var = third = 0.0
    for la in layers:
        m, v, k3 = _hypergeom_moments(la)
        mean, var, third = mean + m, var + v, third + k3
    z = (observed - 0.5 - mean) / math.sqrt(var)
    skew = third / var**1.5
    # One Cornish-Fisher term: the upper tail of a right-skewed sum is heavier than the normal's.
    # Only above the mean and only where it makes p larger: far from the mean the expansion
    # turns over (a left-skewed sum far below its mean came out as p < 0.000001).
    z_adjusted = max(0.0, z - skew / 6 * (z * z - 1)) if z > 0 and skew > 0 else z
    return min(1.0, max(0.0, 1 - NormalDist().cdf(z_adjusted)))


#: Above this product of distribution lengths (all steps but the last) the stratified test is
#: approximated: the exact convolution would take more than about a tenth of a second.
EXACT_WORK = 200_000


def _hypergeom_pmf(la: Stratum) -> tuple[int, list[float]]:
    """(first value, pmf from it) of the canary's 5xx at a step, cut where terms vanish."""
    total, marked, drawn = la.requests, la.errors, la.canary_requests
    unmarked = total - marked
    low, high = max(0, drawn - unmarked), min(marked, drawn)
    mode = min(high, max(low, (drawn + 1) * (marked + 1) // (total + 2)))
    peak = math.exp(
        _log_choose(marked, mode) + _log_choose(unmarked, drawn - mode) - _log_choose(total, drawn)
    )
    up = [peak]
    x, term = mode, peak
    while x < high and term > peak * 1e-15:
        term *= (marked - x) * (drawn - x) / ((x + 1) * (unmarked - drawn + x + 1))
        x += 1
        up.append(term)
    down: list[float] = []
    x, term = mode, peak
    while x > low and term > peak * 1e-15:
        term *= x * (unmarked - drawn + x) / ((marked - x + 1) * (drawn - x + 1))
        x -= 1
        down.append(term)
    return mode - len(down), down[::-1] + up


def _hypergeom_moments(la: Stratum) -> tuple[float, float, float]:
    """Mean, variance and third central moment of the canary's 5xx at a step."""
    n, k, d = la.requests, la.errors, la.canary_requests
    mean = d * k / n
    if n <= 2:
        return mean, 0.0, 0.0
    var = d * k * (n - k) * (n - d) / (n * n * (n - 1))
    third = var * (n - 2 * k) * (n - 2 * d) / (n * (n - 2))
    return mean, var, third


def _convolve(a: list[float], b: list[float]) -> list[float]:
    out = [0.0] * (len(a) + len(b) - 1)
    for i, ai in enumerate(a):
        if ai:
            for j, bj in enumerate(b):
                out[i + j] += ai * bj
    return out


def _mean_exp(logs: Sequence[float]) -> float:
    """mean(exp(logs)), capped at MAX_EVIDENCE, without overflow."""
    top = max(logs)
    log_mean = top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))
    return MAX_EVIDENCE if log_mean >= math.log(MAX_EVIDENCE) else math.exp(log_mean)
