"""The deployment's error budget: boundaries pinned on cases checkable by hand, exact tails
checked against scipy, and evidence that accumulates across steps (workers/analysis/sequential.py).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, fisher_exact, hypergeom

from workers.analysis import sequential as seq
from workers.analysis.judge import Counts, Outcome, StepCounts, Verdict, judge

DEFAULTS = {"max_error_rate_pct": 1.0, "min_requests": 100}


def run(canary: Counts, stable: Counts, *, bake_complete: bool = True, **kwargs) -> Verdict:
    return judge(canary, stable, **{**DEFAULTS, **kwargs}, bake_complete=bake_complete)


# --- the budget -------------------------------------------------------------------------------


def test_budget_and_boundaries_by_hand() -> None:
    assert (seq.WORSE_BUDGET, seq.THRESHOLD_BUDGET, seq.END_SHARE) == (0.004, 0.001, 0.9)
    assert [seq.step_weight(i) for i in range(5)] == pytest.approx(
        [0.15, 0.75, 0.05, 0.025, 0.0125]
    )
    # 0.004 x 0.9 = 0.0036 x 0.15, 0.75, 0.05, 0.025.
    assert [seq.end_alpha(seq.WORSE_BUDGET, i) for i in range(4)] == pytest.approx(
        [0.00054, 0.0027, 0.00018, 0.00009]
    )
    assert [seq.end_alpha(seq.THRESHOLD_BUDGET, i) for i in range(4)] == pytest.approx(
        [0.000135, 0.000675, 0.000045, 0.0000225]
    )
    # 1 / (0.004 x 0.1) and 1 / (0.001 x 0.1).
    assert seq.evidence_needed(seq.WORSE_BUDGET) == pytest.approx(2500)
    assert seq.evidence_needed(seq.THRESHOLD_BUDGET) == pytest.approx(10000)


def test_the_budget_is_never_overspent_however_many_steps() -> None:
    for budget in (seq.WORSE_BUDGET, seq.THRESHOLD_BUDGET):
        assert sum(seq.step_weight(i) for i in range(60)) == pytest.approx(1.0)
        spent_at_ends = sum(seq.end_alpha(budget, i) for i in range(20))
        at_any_look = 1 / seq.evidence_needed(budget)  # Ville's inequality
        assert spent_at_ends + at_any_look <= budget


# --- exact tails against scipy ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (0, 10, 0.01),
        (3, 10, 0.01),
        (10, 300, 0.01),
        (2, 200, 0.01),
        (149_999, 30_000_000, 0.01),
        (320_000, 30_000_000, 0.01),
        (5, 5, 0.5),
        (0, 1, 0.3),
    ],
)
def test_binomial_tail_equals_scipy(k: int, n: int, p: float) -> None:
    # lgamma of numbers near 3e7 leaves about 1e-7 of relative error in the far tail.
    assert seq.binom_sf(k, n, p) == pytest.approx(binom.sf(k, n, p), rel=1e-6, abs=1e-300)


def _stratified_reference(layers: list[seq.Stratum]) -> float:
    """The exact stratified tail, by numpy convolution of scipy's hypergeometric pmfs."""
    dist = np.array([1.0])
    for la in layers:
        xs = np.arange(0, la.errors + 1)
        dist = np.convolve(dist, hypergeom.pmf(xs, la.requests, la.errors, la.canary_requests))
    return float(dist[sum(la.canary_errors for la in layers) :].sum())


@pytest.mark.parametrize(
    "layers",
    [
        [seq.Stratum(30, 165, 3000, 30000), seq.Stratum(75, 187, 7500, 30000)],
        [
            seq.Stratum(3, 20, 300, 3000),
            seq.Stratum(10, 30, 750, 3000),
            seq.Stratum(12, 25, 1500, 3000),
        ],
        [seq.Stratum(0, 5, 30, 300), seq.Stratum(2, 3, 75, 300)],
        [seq.Stratum(1, 1, 10, 100), seq.Stratum(0, 0, 25, 100), seq.Stratum(4, 4, 50, 100)],
    ],
)
def test_stratified_p_equals_the_exact_convolution(layers: list[seq.Stratum]) -> None:
    assert seq.worse_p(layers) == pytest.approx(_stratified_reference(layers), rel=1e-7)


def test_one_step_is_fishers_test() -> None:
    layer = seq.Stratum(canary_errors=9, errors=36, canary_requests=600, requests=6000)
    expected = fisher_exact([[9, 591], [27, 5373]], alternative="greater").pvalue
    assert seq.worse_p([layer]) == pytest.approx(expected, rel=1e-9)


def test_large_counts_use_an_approximation_close_to_the_exact_tail(monkeypatch) -> None:
    layers = [seq.Stratum(190, 1700, 30000, 300000), seq.Stratum(510, 1900, 75000, 300000)]
    exact = seq.worse_p(layers)
    monkeypatch.setattr(seq, "EXACT_WORK", 0)  # force the normal approximation
    approximate = seq.worse_p(layers)
    assert exact == pytest.approx(_stratified_reference(layers), rel=1e-6)
    assert 1e-4 < exact < 1e-2
    assert approximate == pytest.approx(exact, rel=0.15)


# --- the boundaries, by hand ------------------------------------------------------------------


def test_five_5xx_in_the_first_ten_requests_fail_at_any_look_four_do_not() -> None:
    # Evidence against "at most 1 %": mean over q = 2, 4, 8, 16 % of (q/1%)^e ((1-q)/0.99)^(n-e).
    def by_hand(e: int, n: int) -> float:
        qs = (0.02, 0.04, 0.08, 0.16)
        return sum((q / 0.01) ** e * ((1 - q) / 0.99) ** (n - e) for q in qs) / 4

    assert seq.threshold_evidence(10, 5, 0.01) == pytest.approx(by_hand(5, 10))  # about 121,186
    assert seq.threshold_evidence(10, 4, 0.01) == pytest.approx(by_hand(4, 10))  # about 6,830
    v = run(Counts(10, 5), Counts(90, 0), bake_complete=False)
    assert v.outcome is Outcome.FAIL
    assert v.reason == (
        "canary 10 req, 5 × 5xx (50.0 %) > 1.0 %: evidence 121,186 to 1 against 1.0 % or less, "
        "10,000 needed at any look"
    )
    assert run(Counts(10, 4), Counts(90, 0), bake_complete=False).outcome is Outcome.BAKING


def test_threshold_boundary_at_the_end_of_the_first_bake() -> None:
    # P(Binomial(300, 1 %) >= 12) = 0.00006 <= 0.000135; >= 11: 0.00026, above it.
    assert binom.sf(11, 300, 0.01) <= 0.000135 < binom.sf(10, 300, 0.01)
    v = run(Counts(300, 12), Counts(0, 0))
    assert v.outcome is Outcome.FAIL
    assert v.figures.threshold_p == pytest.approx(binom.sf(11, 300, 0.01), rel=1e-9)
    assert v.reason == (
        "canary 300 req, 12 × 5xx (4.0 %) > 1.0 %: p=0.00006 against 1.0 % (exact binomial), "
        "below 0.000135, the boundary at the end of step 1"
    )
    assert run(Counts(300, 11), Counts(0, 0)).outcome is Outcome.PASS
    # The same 12 × 5xx during the bake are not enough: only the always-valid test runs there.
    assert run(Counts(300, 12), Counts(0, 0), bake_complete=False).outcome is Outcome.BAKING


def test_worse_than_stable_at_any_look_by_hand() -> None:
    # 5 × 5xx, all the canary's, which served 10 % of the requests: mean over r = 2, 4, 8, 16
    # of (r / (0.9 + 0.1 r))^5 = (19.9 + 275 + 2306 + 10737) / 4, about 3,335 >= 2,500.
    by_hand = sum((r / (0.9 + 0.1 * r)) ** 5 for r in (2, 4, 8, 16)) / 4
    v = run(Counts(100, 5), Counts(900, 0), bake_complete=False, max_error_rate_pct=50.0)
    assert v.figures.worse_evidence == pytest.approx(by_hand)
    assert v.outcome is Outcome.FAIL
    assert "worse than stable, 5 of the 5 × 5xx were the canary's, 0.5 expected" in v.reason
    assert "evidence 3,335 to 1, 2,500 needed at any look" in v.reason
    # Four are about 567 to 1: not during the bake, but Fisher's p = 0.00009 at its end.
    four = run(Counts(100, 4), Counts(900, 0), bake_complete=False, max_error_rate_pct=50.0)
    assert four.outcome is Outcome.BAKING
    end = run(Counts(100, 4), Counts(900, 0), max_error_rate_pct=50.0)
    assert end.outcome is Outcome.FAIL
    assert end.reason.endswith("p=0.00009, below 0.00054, the boundary at the end of step 1")


def test_the_boundary_falls_after_the_second_step() -> None:
    # 31 × 5xx of 3,000 vs 135 of 27,000: Fisher's p = 0.00048, below step 1's 0.00054 but
    # above step 3's 0.00018.
    canary, stable = Counts(3000, 31), Counts(27000, 135)
    assert fisher_exact([[31, 2969], [135, 26865]], alternative="greater").pvalue == (
        pytest.approx(0.00048, abs=1e-5)
    )
    assert run(canary, stable).outcome is Outcome.FAIL
    quiet = StepCounts(Counts(10, 0), Counts(90, 0))  # steps without a 5xx: no evidence
    third = run(canary, stable, earlier=[quiet, quiet])
    assert third.outcome is Outcome.PASS
    assert third.figures.worse_boundary == pytest.approx(0.00018)


def test_only_the_end_of_the_bake_spends_the_steps_share() -> None:
    canary, stable = Counts(3000, 31), Counts(27000, 135)
    # A look while holding or at a gate (the bake long over) does not spend it again.
    held = run(canary, stable, end_of_bake=False)
    assert held.outcome is Outcome.PASS
    assert held.figures.worse_boundary is None


# --- evidence across steps --------------------------------------------------------------------


def test_evidence_accumulates_across_steps() -> None:
    # A canary at 1 % against a stable at 0.5 % (100 req/s): neither step is enough on its own.
    # Fisher's p is 0.0098 at step 1 (boundary 0.00054) and 0.013 at step 2 alone (boundary
    # 0.0027); the two steps together, step by step, give p = 0.0006.
    first = StepCounts(Counts(3000, 26), Counts(27000, 135))
    second_canary, second_stable = Counts(7500, 55), Counts(22500, 112)
    quiet = StepCounts(Counts(10, 0), Counts(90, 0))
    assert run(first.canary, first.stable).outcome is Outcome.PASS
    assert run(second_canary, second_stable, earlier=[quiet]).outcome is Outcome.PASS
    both = run(second_canary, second_stable, earlier=[first])
    assert both.outcome is Outcome.FAIL
    assert both.p_value == pytest.approx(0.00062, abs=1e-5)
    assert both.figures.steps == 2
    assert both.figures.deployment_canary == Counts(10500, 81)
    assert both.figures.deployment_stable == Counts(49500, 247)
    assert "over steps 1-2" in both.reason
    assert "81 of the 328 × 5xx were the canary's" in both.reason
    assert both.reason.endswith("p=0.0006, below 0.0027, the boundary at the end of step 2")


def test_the_second_step_gets_most_of_the_budget() -> None:
    # A canary at 2.5 % (5x the stable's 0.5 %) at 10 req/s that shows few of its 5xx: 7 of 300
    # at step 1 (stable 14 of 2,700), 8 of 750 at step 2 (stable 12 of 2,250). Step by step,
    # p = 0.00197: below the 0.0027 (0.004 x 0.9 x 0.75) of the end of step 2, which a quarter
    # of the budget at step 1 and a half at step 2 (0.0018) did not reach.
    first = StepCounts(Counts(300, 7), Counts(2700, 14))
    v = run(Counts(750, 8), Counts(2250, 12), earlier=[first])
    assert v.p_value == pytest.approx(0.00197, abs=1e-5)
    assert v.outcome is Outcome.FAIL
    assert v.reason.endswith("p=0.002, below 0.0027, the boundary at the end of step 2")
    # P(Bin(1,050, 1 %) >= 15) = 0.11: the threshold test alone would have let it pass.
    assert v.figures.threshold_p == pytest.approx(binom.sf(14, 1050, 0.01), rel=1e-9)
    assert v.figures.threshold_p > 0.1


def test_an_outage_hitting_both_sides_later_is_not_blamed_on_the_canary() -> None:
    # Pooled over the deployment the canary looks twice as bad (it served mostly during the
    # outage); step by step it is exactly as bad as the stable.
    early = StepCounts(Counts(3000, 15), Counts(27000, 135))
    during = (Counts(15000, 750), Counts(15000, 750))
    pooled = fisher_exact([[765, 17235], [885, 41115]], alternative="greater").pvalue
    assert pooled < 1e-40
    v = run(*during, earlier=[early], max_error_rate_pct=10.0)
    assert v.outcome is Outcome.PASS, v.reason
    assert v.p_value is not None and v.p_value > 0.3


def test_the_threshold_counts_every_canary_request_of_the_deployment() -> None:
    # A canary at 2 % like its stable (so only the threshold speaks): 6 × 5xx of 300 at step 1,
    # 10 of 500 at step 2: 16 of 800, P(Bin(800, 1 %) >= 16) = 0.0079, not below step 2's
    # 0.000675. Three times as much traffic: 48 of 2,400, p = 0.000009, below it.
    first = StepCounts(Counts(300, 6), Counts(2700, 54))
    v = run(Counts(500, 10), Counts(1500, 30), earlier=[first])
    assert v.figures.threshold_p == pytest.approx(binom.sf(15, 800, 0.01), rel=1e-9)
    assert v.outcome is Outcome.PASS
    first = StepCounts(Counts(900, 18), Counts(8100, 162))
    big = run(Counts(1500, 30), Counts(4500, 90), earlier=[first])
    assert big.figures.threshold_p is not None and big.figures.threshold_p < 0.000675
    assert big.outcome is Outcome.FAIL


def test_figures_round_trip_through_json() -> None:
    first = StepCounts(Counts(3000, 27), Counts(27000, 135))
    v = run(Counts(7500, 66), Counts(22500, 112), earlier=[first])
    data = json.loads(json.dumps(v.to_dict(), allow_nan=False))
    assert Verdict.from_dict(data) == v
    assert StepCounts.from_dict(json.loads(json.dumps(first.to_dict()))) == first
    # A verdict stored before the figures existed still reads.
    del data["figures"]
    assert Verdict.from_dict(data).figures.steps == 1


def test_evidence_never_overflows() -> None:
    v = run(Counts(10_000_000, 5_000_000), Counts(90_000_000, 0), bake_complete=False)
    assert v.outcome is Outcome.FAIL
    assert math.isfinite(v.figures.threshold_evidence or 0)
    assert math.isfinite(v.figures.worse_evidence or 0)


# --- properties -------------------------------------------------------------------------------


@st.composite
def no_worse_steps(draw: st.DrawFn) -> list[StepCounts]:
    """Steps where the canary's observed 5xx rate is at most the stable's."""
    steps = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        cn = draw(st.integers(min_value=1, max_value=200_000))
        sn = draw(st.integers(min_value=1, max_value=200_000))
        se = draw(st.integers(min_value=0, max_value=sn))
        ce = draw(st.integers(min_value=0, max_value=cn * se // sn))
        steps.append(StepCounts(Counts(cn, ce), Counts(sn, se)))
    return steps


def test_a_left_skewed_sum_far_below_its_mean_is_not_a_failure() -> None:
    # Found by the property below: 1 x 5xx of the canary's against 2,224 expected, over steps
    # too big to convolve, came out as p < 0.000001 from the Cornish-Fisher term.
    earlier = [
        StepCounts(Counts(33230, 1), Counts(2282, 2264)),
        StepCounts(Counts(362, 0), Counts(763, 313)),
        StepCounts(Counts(8, 0), Counts(8, 8)),
    ]
    v = run(Counts(1, 0), Counts(1, 0), earlier=earlier, max_error_rate_pct=99.0)
    assert v.outcome is not Outcome.FAIL, v.reason
    assert v.p_value is not None and v.p_value > 0.5


@settings(max_examples=150, deadline=None)
@given(steps=no_worse_steps(), bake_complete=st.booleans())
def test_a_canary_no_worse_than_the_stable_at_every_step_is_never_failed_as_worse(
    steps: list[StepCounts], bake_complete: bool
) -> None:
    *earlier, last = steps
    v = run(
        last.canary,
        last.stable,
        earlier=earlier,
        bake_complete=bake_complete,
        max_error_rate_pct=99.0,
    )
    # (It may still fail against the threshold: 100 % 5xx is above 99 %.)
    assert ": worse than stable" not in v.reason, v.reason
    assert v.figures.worse_evidence is not None and v.figures.worse_evidence <= 1.0 + 1e-9


@settings(max_examples=150, deadline=None)
@given(steps=no_worse_steps(), data=st.data())
def test_one_more_canary_error_never_turns_a_failure_into_a_pass(
    steps: list[StepCounts], data: st.DataObject
) -> None:
    *earlier, last = steps
    if last.canary.errors == last.canary.requests:
        return
    errors = data.draw(
        st.integers(min_value=last.canary.errors, max_value=last.canary.requests - 1)
    )
    canary = Counts(last.canary.requests, errors)
    worse = Counts(last.canary.requests, errors + 1)
    if run(canary, last.stable, earlier=earlier).outcome is Outcome.FAIL:
        assert run(worse, last.stable, earlier=earlier).outcome is Outcome.FAIL
