"""Tests of the step verdict: the rules, their edge cases, and how often healthy canaries fail."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact

from workers.analysis.judge import (
    CONFIDENCE,
    Z_ONE_SIDED,
    Counts,
    Outcome,
    Verdict,
    format_count,
    format_pct,
    judge,
    wilson_lower_bound,
    worse_than_stable_p,
)
from workers.analysis.window import covered_at, metric_window

DEFAULTS = {"max_error_rate_pct": 1.0, "min_requests": 100}


def run(canary: Counts, stable: Counts, *, bake_complete: bool = True, **kwargs) -> Verdict:
    return judge(canary, stable, **{**DEFAULTS, **kwargs}, bake_complete=bake_complete)


# --- constants and formatting ---------------------------------------------------------------


def test_constants_match_the_design() -> None:
    # The Wilson bound is a figure shown with each verdict; the decision's own constants are
    # pinned in tests/test_sequential.py.
    assert CONFIDENCE == 0.99
    assert abs(Z_ONE_SIDED - 2.3263) < 1e-4


@pytest.mark.parametrize(
    ("value", "text"),
    [(11.945, "11.9 %"), (1.0, "1.0 %"), (0.25, "0.25 %"), (0.0, "0 %"), (0.05, "0.050 %")],
)
def test_format_pct(value: float, text: str) -> None:
    assert format_pct(value) == text


def test_format_count() -> None:
    assert format_count(1204) == "1,204"
    assert format_count(0) == "0"
    assert format_count(12_345_678) == "12,345,678"


# --- counts ----------------------------------------------------------------------------------


def test_counts_rate() -> None:
    assert Counts(200, 3).rate == pytest.approx(0.015)
    assert Counts(0, 0).rate is None


@pytest.mark.parametrize(("requests", "errors"), [(-1, 0), (5, -1), (5, 6)])
def test_impossible_counts_are_refused(requests: int, errors: int) -> None:
    with pytest.raises(ValueError):
        Counts(requests, errors)


# --- the statistics ---------------------------------------------------------------------------


def test_wilson_bound_by_hand() -> None:
    # 97 of 812: p = 0.11946; with z = 2.3263 the Wilson lower bound is 0.0955.
    assert wilson_lower_bound(97, 812) == pytest.approx(0.09547, abs=1e-4)
    assert wilson_lower_bound(0, 1000) == 0.0
    assert wilson_lower_bound(0, 0) is None


@pytest.mark.parametrize(
    ("canary", "stable"),
    [
        (Counts(600, 9), Counts(5400, 27)),
        (Counts(6000, 30), Counts(54000, 270)),
        (Counts(60, 0), Counts(540, 3)),
        (Counts(100, 100), Counts(100, 0)),
        (Counts(1, 1), Counts(1, 1)),
    ],
)
def test_fisher_p_equals_scipy_fisher_exact(canary: Counts, stable: Counts) -> None:
    table = [
        [canary.errors, canary.requests - canary.errors],
        [stable.errors, stable.requests - stable.errors],
    ]
    expected = fisher_exact(table, alternative="greater").pvalue
    assert worse_than_stable_p(canary, stable) == pytest.approx(expected, rel=1e-9)


def test_fisher_needs_both_sides() -> None:
    assert worse_than_stable_p(Counts(100, 5), Counts(0, 0)) is None
    assert worse_than_stable_p(Counts(0, 0), Counts(100, 5)) is None


# --- the rules --------------------------------------------------------------------------------


def test_clear_breach_fails_with_a_checkable_sentence() -> None:
    v = run(Counts(812, 97), Counts(0, 0), bake_complete=False)
    assert v.outcome is Outcome.FAIL
    assert v.wilson_lower_pct == pytest.approx(9.547, abs=0.01)
    assert v.reason == (
        "canary 812 req, 97 × 5xx (11.9 %) > 1.0 %: evidence 1.7e+65 to 1 against 1.0 % or less, "
        "10,000 needed at any look"
    )


def test_healthy_canary_passes_with_its_figures() -> None:
    v = run(Counts(1204, 3), Counts(10840, 30))
    assert v.outcome is Outcome.PASS
    assert v.reason.startswith("canary 0.25 % (3 × 5xx of 1,204 req) vs stable 0.28 %")
    assert "within 1.0 %, no worse than stable (p=0.65)" in v.reason
    assert v.p_value == pytest.approx(0.65, abs=0.01)


def test_worse_than_stable_fails_even_under_the_threshold() -> None:
    # 1.0 % vs 0.5 %: inside a 5 % threshold, but with 6,000 requests clearly worse.
    v = run(Counts(6000, 60), Counts(54000, 270), max_error_rate_pct=5.0, bake_complete=False)
    assert v.outcome is Outcome.FAIL
    assert v.p_value == pytest.approx(0.000004, abs=1e-6)
    # During the bake only the always-valid test speaks (tests/test_sequential.py).
    assert v.reason == (
        "canary 1.0 % (60 × 5xx of 6,000 req) vs stable 0.50 % (270 × 5xx of 54,000 req): "
        "worse than stable, 60 of the 330 × 5xx were the canary's, 33.0 expected if it were no "
        "worse; evidence 6,312 to 1, 2,500 needed at any look"
    )


def test_above_threshold_without_confidence_is_not_a_failure_and_says_so() -> None:
    v = run(Counts(200, 3), Counts(1800, 9))
    assert v.outcome is Outcome.PASS
    assert "1.5 %" in v.reason
    # P(Binomial(200, 1 %) >= 3) = 0.32, far above the 0.000135 of the end of step 1.
    assert "above 1.0 % but within chance (p=0.32 against 1.0 %, boundary 0.000135)" in v.reason


def test_alarm_fails_whatever_the_counts() -> None:
    v = run(Counts(0, 0), Counts(0, 0), bake_complete=False, alarms_firing=["payments-p99"])
    assert v.outcome is Outcome.FAIL
    assert v.alarms_firing == ("payments-p99",)
    assert v.reason == "alarm payments-p99 is in ALARM; no canary requests yet"
    v = run(Counts(5000, 0), Counts(5000, 0), alarms_firing=("a", "b"))
    assert v.outcome is Outcome.FAIL
    assert v.reason.startswith("alarms a, b are in ALARM; canary so far 0 %")


def test_alarm_names_must_be_a_sequence_not_a_string() -> None:
    with pytest.raises(TypeError):
        run(Counts(5, 0), Counts(5, 0), alarms_firing="payments-p99")


def test_zero_requests_is_not_enough_data_at_the_end_of_the_bake() -> None:
    v = run(Counts(0, 0), Counts(5000, 10))
    assert v.outcome is Outcome.NOT_ENOUGH_DATA
    assert v.wilson_lower_pct is None and v.p_value is None
    assert v.reason == "0 canary requests, 100 needed to judge"


def test_zero_requests_while_baking() -> None:
    v = run(Counts(0, 0), Counts(0, 0), bake_complete=False)
    assert v.outcome is Outcome.BAKING
    assert v.reason == "baking: no canary requests yet"


def test_too_few_requests_holds() -> None:
    v = run(Counts(37, 0), Counts(5000, 10))
    assert v.outcome is Outcome.NOT_ENOUGH_DATA
    assert v.reason == "37 canary requests, 100 needed to judge"


def test_exactly_min_requests_passes_and_one_less_holds() -> None:
    assert run(Counts(100, 0), Counts(900, 4)).outcome is Outcome.PASS
    assert run(Counts(99, 0), Counts(900, 4)).outcome is Outcome.NOT_ENOUGH_DATA


def test_min_requests_zero_still_needs_one_request() -> None:
    assert run(Counts(0, 0), Counts(0, 0), min_requests=0).outcome is Outcome.NOT_ENOUGH_DATA
    assert run(Counts(1, 0), Counts(0, 0), min_requests=0).outcome is Outcome.PASS


def test_stable_without_requests_skips_the_comparison() -> None:
    v = run(Counts(500, 2), Counts(0, 0))
    assert v.outcome is Outcome.PASS
    assert v.p_value is None
    assert v.reason.endswith("within 1.0 %, no stable traffic to compare")


def test_baking_reports_progress() -> None:
    v = run(Counts(412, 2), Counts(3700, 18), bake_complete=False)
    assert v.outcome is Outcome.BAKING
    assert v.reason.startswith("baking, no breach so far: canary 0.49 % (2 × 5xx of 412 req)")


def test_breach_fails_before_min_requests() -> None:
    # Strong evidence does not wait for the sample size or the end of the bake.
    assert run(Counts(40, 20), Counts(0, 0), bake_complete=False).outcome is Outcome.FAIL


def test_close_values_never_print_alike() -> None:
    v = run(Counts(1_000_000, 10_100), Counts(0, 0), bake_complete=False)
    assert v.outcome is Outcome.BAKING
    assert "canary 1.01 %" in v.reason and "above 1.00 %" in v.reason


@pytest.mark.parametrize("bad", [-1.0, 100.0, 150.0])
def test_threshold_out_of_range_is_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        run(Counts(1, 0), Counts(1, 0), max_error_rate_pct=bad)


def test_huge_counts_are_fast() -> None:
    started = time.perf_counter()
    for i in range(50):
        v = run(Counts(30_000_000, 150_000 + i), Counts(270_000_000, 1_350_000))
        assert v.outcome is Outcome.PASS
    v = run(Counts(30_000_000, 300_000), Counts(270_000_000, 1_350_000))
    assert v.outcome is Outcome.FAIL
    assert v.p_value == 0.0 or v.p_value < 1e-300
    assert "evidence over 1e+300 to 1" in v.reason
    assert time.perf_counter() - started < 1.0


def test_verdict_round_trips_through_json() -> None:
    v = run(Counts(1204, 3), Counts(10840, 30), alarms_firing=())
    data = json.loads(json.dumps(v.to_dict()))
    assert data["canary"] == {
        "requests": 1204,
        "errors": 3,
        "rate_pct": pytest.approx(0.2492, 1e-3),
    }
    assert data["outcome"] == "pass"
    assert Verdict.from_dict(data) == v


# --- properties -------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=5_000_000).flatmap(
    lambda n: st.builds(Counts, st.just(n), st.integers(min_value=0, max_value=n))
)
thresholds = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
# CloudWatch alarm names cannot contain ASCII control characters.
alarm_names = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    stable=counts,
    min_requests=st.integers(min_value=0, max_value=10_000),
    bake_complete=st.booleans(),
    threshold=thresholds,
)
def test_no_data_never_passes(
    stable: Counts, min_requests: int, bake_complete: bool, threshold: float
) -> None:
    v = judge(
        Counts(0, 0),
        stable,
        max_error_rate_pct=threshold,
        min_requests=min_requests,
        bake_complete=bake_complete,
    )
    assert v.outcome is not Outcome.PASS
    assert v.outcome is not Outcome.FAIL  # nothing served, so nothing to blame either


@settings(max_examples=300, deadline=None)
@given(canary=counts, stable=counts, min_requests=st.integers(1, 10_000), threshold=thresholds)
def test_below_min_requests_never_passes(
    canary: Counts, stable: Counts, min_requests: int, threshold: float
) -> None:
    v = judge(
        canary,
        stable,
        max_error_rate_pct=threshold,
        min_requests=min_requests,
        bake_complete=True,
    )
    if canary.requests < min_requests:
        assert v.outcome is not Outcome.PASS
    else:
        assert v.outcome in (Outcome.PASS, Outcome.FAIL)


@settings(max_examples=300, deadline=None)
@given(stable=counts, data=st.data(), threshold=thresholds, bake_complete=st.booleans())
def test_canary_no_worse_than_stable_within_threshold_never_fails(
    stable: Counts, data: st.DataObject, threshold: float, bake_complete: bool
) -> None:
    requests = data.draw(st.integers(min_value=1, max_value=5_000_000))
    # The most errors that keep the canary's observed rate at or under both the stable's rate
    # and the threshold.
    stable_rate = stable.rate if stable.rate is not None else 1.0
    limit = min(stable_rate, threshold / 100)
    errors = data.draw(st.integers(min_value=0, max_value=int(requests * limit)))
    v = judge(
        Counts(requests, errors),
        stable,
        max_error_rate_pct=threshold,
        min_requests=100,
        bake_complete=bake_complete,
    )
    assert v.outcome is not Outcome.FAIL, v.reason


@settings(max_examples=300, deadline=None)
@given(canary=counts, stable=counts, threshold=thresholds)
def test_one_more_error_never_turns_a_failure_into_a_pass(
    canary: Counts, stable: Counts, threshold: float
) -> None:
    if canary.errors == canary.requests:
        return
    worse = Counts(canary.requests, canary.errors + 1)
    kwargs = {"max_error_rate_pct": threshold, "min_requests": 100, "bake_complete": True}
    if judge(canary, stable, **kwargs).outcome is Outcome.FAIL:
        assert judge(worse, stable, **kwargs).outcome is Outcome.FAIL


@settings(max_examples=200, deadline=None)
@given(canary=counts, stable=counts, alarms=st.lists(alarm_names, max_size=3))
def test_every_verdict_is_json_safe_and_round_trips(
    canary: Counts, stable: Counts, alarms: list[str]
) -> None:
    v = judge(
        canary,
        stable,
        max_error_rate_pct=1.0,
        min_requests=100,
        bake_complete=True,
        alarms_firing=alarms,
    )
    assert (v.outcome is Outcome.FAIL) if alarms else True
    text = json.dumps(v.to_dict(), allow_nan=False)
    assert Verdict.from_dict(json.loads(text)) == v
    assert v.reason and "\n" not in v.reason
    if v.wilson_lower_pct is not None:
        assert 0 <= v.wilson_lower_pct <= canary.errors / canary.requests * 100 + 1e-9


# --- simulated bakes --------------------------------------------------------------------------

STABLE_RATE = 0.005  # the stable's true 5xx rate
CHECKS = 5  # one check a minute over a 5-minute bake
STABLE_SHARE = 9  # at the 10 % step the stable serves 9 requests for each canary request


def simulate(canary_rps: int, canary_rate: float, *, bakes: int, seed: int) -> list[int | None]:
    """For each simulated bake, the check (1..CHECKS) at which it failed, or None."""
    rng = np.random.default_rng(seed)
    per_minute = canary_rps * 60
    canary_errors = rng.binomial(per_minute, canary_rate, size=(bakes, CHECKS)).cumsum(axis=1)
    stable_errors = rng.binomial(
        per_minute * STABLE_SHARE, STABLE_RATE, size=(bakes, CHECKS)
    ).cumsum(axis=1)
    failed_at: list[int | None] = []
    for bake in range(bakes):
        failed_at.append(None)
        for check in range(1, CHECKS + 1):
            v = judge(
                Counts(per_minute * check, int(canary_errors[bake, check - 1])),
                Counts(per_minute * STABLE_SHARE * check, int(stable_errors[bake, check - 1])),
                max_error_rate_pct=1.0,
                min_requests=100,
                bake_complete=check == CHECKS,
            )
            if v.outcome is Outcome.FAIL:
                failed_at[-1] = check
                break
            if check == CHECKS:
                assert v.outcome is Outcome.PASS
    return failed_at


@pytest.mark.parametrize(("canary_rps", "seed"), [(100, 1), (10, 2)])
def test_healthy_canaries_are_rarely_rolled_back(canary_rps: int, seed: int) -> None:
    bakes = 2000
    failed = [f for f in simulate(canary_rps, STABLE_RATE, bakes=bakes, seed=seed) if f]
    assert len(failed) / bakes < 0.01


def test_a_canary_at_20_percent_errors_fails_at_the_first_check() -> None:
    failed_at = simulate(10, 0.20, bakes=200, seed=3)
    assert failed_at == [1] * 200


# The query window: whole periods, after the shift, up to the last one published ------------------
# Times are seconds after 12:00:00 (epoch 1_800_000_000 is on a whole minute).
T0 = 1_800_000_000


@pytest.mark.parametrize(
    ("started", "now", "period", "lag", "window", "covered"),
    [
        # Shift at 12:00:20: the first whole minute is 12:01; at 12:04:30 with a 2 min lag the
        # last published minute ended at 12:02, so one minute is read.
        (20, 270, 60, 120, (60, 120), 60),
        # A shift on a boundary starts there; 12:08:00 - 2 min = 12:06: six minutes.
        (0, 480, 60, 120, (0, 360), 360),
        # Nothing published yet (12:02:59 - 2 min is before 12:01): an empty window at 12:01.
        (20, 179, 60, 120, (60, 60), 0),
        # No lag: the period that just ended counts, the one under way does not.
        (20, 185, 60, 0, (60, 180), 120),
        # The sandbox's scale: 1 s periods, 2 s lag.
        (10.4, 16.9, 1, 2, (11, 14), 3),
    ],
)
def test_metric_window_reads_whole_published_periods_after_the_shift(
    started: float,
    now: float,
    period: int,
    lag: int,
    window: tuple[int, int],
    covered: int,
) -> None:
    found = metric_window(T0 + started, T0 + now, period, lag)
    assert (found.start - T0, found.end - T0) == window
    assert found.covered == covered
    assert found.empty == (covered == 0)


def test_a_bake_is_covered_after_its_whole_periods_and_the_lag() -> None:
    # Shift at 12:00:20, 5 min bake, 2 min lag: 12:01 + 5 min + 2 min = 12:08:00.
    due = covered_at(T0 + 20, 300, 60, 120)
    assert due - T0 == 480
    assert metric_window(T0 + 20, due, 60, 120).covered == 300
    assert metric_window(T0 + 20, due - 1, 60, 120).covered == 240
    # A bake that is not a whole number of periods is rounded up to one.
    assert covered_at(T0, 90, 60, 60) - T0 == 180


def test_the_previous_steps_traffic_is_never_in_the_window() -> None:
    for started in (T0 + 1, T0 + 30, T0 + 59.9):
        assert metric_window(started, T0 + 3600, 60, 60).start == T0 + 60


@pytest.mark.parametrize(("period", "lag"), [(0, 0), (60, -1)])
def test_metric_window_refuses_nonsense(period: int, lag: int) -> None:
    with pytest.raises(ValueError):
        metric_window(T0, T0 + 600, period, lag)
