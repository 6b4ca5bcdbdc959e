"""The latency rule (workers/analysis/latency.py) on hand-checkable cases, its place in the
verdict, the catalogue keys, and the latency a check fetches from the strict moto world (the
ALB's TargetResponseTime at a percentile, in the counts' own GetMetricData call)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sandbox.metrics_feed import ALB_LATENCY, DelayedPublisher, put_alb_counts
from sandbox.strict_moto import percentile_of
from workers.analysis.judge import Counts, Outcome, Verdict, judge
from workers.analysis.latency import (
    LatencyLimits,
    LatencyPeriod,
    LatencySeries,
    judge_latency,
    min_period_requests,
    parse_percentile,
    percentile_stat,
    t_quantile,
    t_statistic,
    t_upper_tail,
)
from workers.analysis.templates import AlbMetricTemplate
from workers.aws.cloudwatch import AlbTarget, CountsRead, alb_query, fetch_one
from workers.domain.catalogue import ConfigError, parse_catalogue
from workers.domain.durations import DurationError, format_milliseconds, parse_milliseconds

LIMIT_25 = LatencyLimits(percentile=99, max_increase_pct=25)


def series(*pairs: tuple[float | None, float | None], canary: int = 1500, stable: int = 4500):
    """Periods a minute apart with the given (canary ms, stable ms) and request counts."""
    return LatencySeries(
        99.0,
        tuple(LatencyPeriod(60.0 * i, canary, stable, c, s) for i, (c, s) in enumerate(pairs)),
    )


# --- the rule, by hand ----------------------------------------------------------------------


def test_percentiles_and_the_requests_a_period_needs() -> None:
    assert parse_percentile("p99") == 99.0
    assert parse_percentile("P99.9") == 99.9
    assert percentile_stat(99.0) == "p99" and percentile_stat(99.9) == "p99.9"
    # Five requests expected beyond the percentile: 500 for p99, 100 for p95, 10 for p50.
    assert [min_period_requests(q) for q in (99, 95, 50, 99.9)] == [500, 100, 10, 5000]
    for bad in ("99", "p100", "p0", "p", "latency", "p99.999"):
        with pytest.raises(ValueError, match="not a percentile"):
            parse_percentile(bad)


def test_a_canary_twice_as_slow_in_every_period_breaches_with_a_sentence_to_check() -> None:
    found = judge_latency(series(*[(400, 200)] * 4, (412, 198)), LIMIT_25)

    assert found is not None and found.breached
    assert (found.canary_ms, found.stable_ms) == (400, 200)  # medians of the five periods
    assert (found.compared_periods, found.increase_over) == (5, 5)
    assert found.increase_pct == pytest.approx(100.0)
    assert found.reason == (
        "p99 latency 400 ms on the canary vs 200 ms on the stable (medians over 5 periods of at "
        "least 500 req): more than +25 % slower in 5 of the 5 periods (median +100 %), beyond "
        "their spread (t=60.3 > 3.75)"
    )


def test_slow_periods_must_be_most_of_them_and_beyond_their_spread() -> None:
    fine = (210, 200)  # +5 %
    slow = (600, 200)  # +200 %
    assert not judge_latency(series(slow, fine, fine, fine, fine), LIMIT_25).breached  # type: ignore[union-attr]
    assert not judge_latency(series(slow, fine, slow, fine, fine), LIMIT_25).breached  # type: ignore[union-attr]
    # Three of five over, and steadily so: a breach.
    mixed = series((300, 200), fine, (310, 200), fine, (290, 200))
    # log(ratio / 1.25) is 0.182, 0.215 and 0.148 in the slow periods, -0.174 in the fine ones:
    # mean 0.039, standard error 0.088, t = 0.45 (3.75 needed): within the spread, no breach.
    found = judge_latency(mixed, LIMIT_25)
    assert found is not None and not found.breached and found.increase_over == 3
    found = judge_latency(
        series((300, 200), (290, 200), (310, 200), (305, 200), (280, 200)), LIMIT_25
    )
    assert found is not None and found.breached and found.increase_over == 5
    # Exactly at the limit (+25 %) is not over it.
    assert not judge_latency(series(*[(250, 200)] * 5), LIMIT_25).breached  # type: ignore[union-attr]


def test_over_in_most_periods_but_within_their_spread_is_no_breach() -> None:
    # Three wildly slow periods and two fine ones: over in most, but the spread of the periods
    # is as large as the excess (t = 1.77, 3.75 needed with 5 periods): noise on one side.
    found = judge_latency(
        series((600, 200), (210, 200), (600, 200), (210, 200), (600, 200)), LIMIT_25
    )
    assert found is not None and not found.breached and found.increase_over == 3


def test_the_t_quantiles_by_hand() -> None:
    # Closed forms: with 1 degree of freedom t is Cauchy, tan(pi (c - 1/2)); with 2,
    # (2c - 1) / sqrt(2 c (1 - c)). The levels used: 99 % at the look that decides, 99.9 % else.
    assert t_quantile(1, 0.99) == pytest.approx(math.tan(math.pi * 0.49), rel=1e-8)  # 31.82
    assert t_quantile(2, 0.99) == pytest.approx(0.98 / math.sqrt(2 * 0.99 * 0.01), rel=1e-8)
    assert t_quantile(2, 0.999) == pytest.approx(0.998 / math.sqrt(2 * 0.999 * 0.001), rel=1e-8)
    # Printed tables (3, 4 and 29 df; 99 % and 99.9 %), as the sentences round them.
    assert [f"{t_quantile(df, 0.99):.2f}" for df in (2, 3, 4, 29)] == [
        "6.96",
        "4.54",
        "3.75",
        "2.46",
    ]
    assert [f"{t_quantile(df, 0.999):.2f}" for df in (2, 3, 4, 29)] == [
        "22.33",
        "10.21",
        "7.17",
        "3.40",
    ]
    # The upper tail with 2 df is (1 - t / sqrt(t^2 + 2)) / 2.
    assert t_upper_tail(3.0, 2) == pytest.approx((1 - 3 / math.sqrt(11)) / 2, rel=1e-12)
    assert t_upper_tail(0.0, 7) == 0.5
    for bad in ((0, 1.0), (3, -1.0)):
        with pytest.raises(ValueError):
            t_upper_tail(bad[1], bad[0])
    with pytest.raises(ValueError, match="confidence"):
        t_quantile(4, 1.0)
    assert t_statistic([0.1, 0.2, 0.3]) == pytest.approx(0.2 / (0.1 / 3**0.5))
    assert t_statistic([0.1, 0.1, 0.1]) == math.inf


def test_the_t_quantiles_are_students() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for confidence in (0.95, 0.99, 0.995, 0.999, 0.9999):
        for df in (1, 2, 3, 4, 5, 10, 29, 30, 31, 45, 100, 1000, 1440):
            expected = float(scipy_stats.t.ppf(confidence, df))
            assert t_quantile(df, confidence) == pytest.approx(expected, rel=1e-7)
    for df in (1, 2, 3, 4, 9, 50, 501):
        for t in (0.0, 0.3, 1.0, 2.5, 7.0, 40.0):
            expected = float(scipy_stats.t.sf(t, df))
            assert t_upper_tail(t, df) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_the_look_that_decides_at_99_every_other_look_at_99_9() -> None:
    # All five periods over +25 %: log(ratio / 1.25) = 0.182, 0.077, 0.247, 0.113, 0.148,
    # mean 0.154, standard deviation 0.065, standard error 0.029: t = 5.26. Beyond 3.75 (99 %,
    # 4 df) at the end of the bake, within 7.17 (99.9 %) at any other look.
    steady = series((300, 200), (270, 200), (320, 200), (280, 200), (290, 200))
    at_end = judge_latency(steady, LIMIT_25)
    assert at_end is not None and at_end.breached
    assert at_end.reason.endswith("beyond their spread (t=5.3 > 3.75)")
    other = judge_latency(steady, LIMIT_25, deciding=False)
    assert other is not None and not other.breached and other.increase_over == 5
    # judge() takes the look that decides from end_of_bake (by default from bake_complete).
    assert verdict(steady).outcome == Outcome.FAIL
    assert verdict(steady, bake_complete=False).outcome == Outcome.BAKING
    assert verdict(steady, end_of_bake=False).outcome == Outcome.PASS  # holding, at a gate
    # A clear breach is stopped at once, at any look.
    assert verdict(series(*[(412, 198)] * 3), bake_complete=False).outcome == Outcome.FAIL


def test_a_spike_on_both_sides_is_no_breach() -> None:
    # A slow minute for everyone (a shared dependency): the comparison is period by period.
    found = judge_latency(series((210, 200), (1500, 1400), (205, 200), (990, 1000)), LIMIT_25)
    assert found is not None and not found.breached
    assert found.reason == (
        "p99 latency 600 ms vs 600 ms on the stable (median +4 % per period, limit +25 %, "
        "over it in 0 of 4 periods)"
    )


def test_periods_with_too_few_requests_are_not_judged() -> None:
    # 499 canary requests: a p99 over them is about their slowest five. Not judged at all.
    assert judge_latency(series(*[(900, 200)] * 5, canary=499), LIMIT_25) is None
    # Two judged periods are not enough to fail on.
    thin = LatencySeries(
        99.0,
        (
            LatencyPeriod(0, 1500, 4500, 900, 200),
            LatencyPeriod(60, 1500, 4500, 900, 200),
            LatencyPeriod(120, 400, 2700, 900, 200),
        ),
    )
    assert judge_latency(thin, LIMIT_25) is None
    # A stable with too few requests (or none, at 100 %) leaves only the ceiling to judge.
    assert judge_latency(series(*[(900, 200)] * 5, stable=0), LIMIT_25) is None


def test_the_absolute_ceiling_at_the_percentile() -> None:
    limits = LatencyLimits(percentile=99, max_ms=300)
    found = judge_latency(series((400, None), (390, None), (410, None), (380, None)), limits)
    assert found is not None and found.breached
    assert found.reason == (
        "p99 latency 395 ms on the canary (median over 4 periods of at least 500 req): above "
        "300 ms in 4 of the 4 periods, beyond their spread (t=16.8 > 4.54)"
    )
    # Over in three periods of four, but one well within: within the spread, not yet a breach.
    mixed = judge_latency(series((350, None), (320, None), (290, None), (310, None)), limits)
    assert mixed is not None and not mixed.breached and mixed.ceiling_over == 3
    calm = judge_latency(series((250, None), (320, None), (290, None)), limits)
    assert calm is not None and not calm.breached
    assert calm.reason == "p99 latency 290 ms, within 300 ms (over in 1 of 3 periods)"


def test_no_limit_set_means_latency_is_not_judged() -> None:
    assert judge_latency(series(*[(900, 200)] * 5), LatencyLimits()) is None
    assert judge_latency(None, LIMIT_25) is None


# --- in the verdict -------------------------------------------------------------------------


def verdict(latency: LatencySeries, **kwargs: Any) -> Verdict:
    args: dict[str, Any] = {
        "max_error_rate_pct": 1.0,
        "min_requests": 100,
        "bake_complete": True,
        "latency": latency,
        "latency_limits": LIMIT_25,
        **kwargs,
    }
    return judge(Counts(3000, 6), Counts(27000, 54), **args)


def test_a_slow_canary_with_normal_errors_fails_on_latency() -> None:
    v = verdict(series(*[(412, 198)] * 5))

    assert v.outcome == Outcome.FAIL
    assert v.reason.startswith("p99 latency 412 ms on the canary vs 198 ms on the stable")
    assert "(median +108 %)" in v.reason
    assert v.reason.endswith("; canary so far 0.20 % (6 × 5xx of 3,000 req)")
    assert (v.figures.latency_percentile, v.figures.canary_latency_ms) == (99.0, 412)
    assert v.figures.stable_latency_ms == 198
    # Read back from the event log as it was.
    assert Verdict.from_dict(v.to_dict()) == v


def test_a_healthy_canary_passes_and_its_sentence_names_the_latency() -> None:
    v = verdict(series(*[(205, 198)] * 5))
    assert v.outcome == Outcome.PASS
    assert v.reason.endswith(
        "; p99 latency 205 ms vs 198 ms on the stable (median +4 % per period, limit +25 %, "
        "over it in 0 of 5 periods)"
    )
    assert v.latency is not None and not v.latency.breached
    assert Verdict.from_dict(v.to_dict()) == v


def test_latency_fails_during_the_bake_too_and_never_when_judged_by_alarms_only() -> None:
    slow = series(*[(412, 198)] * 3)
    assert verdict(slow, bake_complete=False).outcome == Outcome.FAIL
    quiet = verdict(slow, alarms_only=True)
    assert quiet.outcome == Outcome.PASS and quiet.latency is None
    # Without limits (an older caller), latency changes nothing.
    assert verdict(slow, latency_limits=None).outcome == Outcome.PASS


def test_an_older_verdict_without_latency_reads_back() -> None:
    old = verdict(series()).to_dict()
    del old["latency"]
    for key in ("latency_percentile", "canary_latency_ms", "stable_latency_ms"):
        del old["figures"][key]
    assert Verdict.from_dict(old).latency is None


# --- the catalogue --------------------------------------------------------------------------


def test_latency_keys_and_their_defaults() -> None:
    service = {"cluster": "prod", "router": "alb", "listener_rule": "arn:rule"}
    plain = parse_catalogue({"services": {"web": service}}).services["web"]
    assert plain.latency_limits == LatencyLimits(99.0, None, 25.0)
    set_ = parse_catalogue(
        {
            "defaults": {"max_latency": "500ms", "latency_percentile": "p95"},
            "services": {"web": {**service, "max_latency_increase": "50%"}},
        }
    ).services["web"]
    assert set_.latency_limits == LatencyLimits(95.0, 500.0, 50.0)
    # A stored deployment's settings read back the same.
    assert type(set_).model_validate(set_.model_dump()).latency_limits == set_.latency_limits
    off = parse_catalogue({"services": {"web": {**service, "max_latency_increase": None}}})
    assert off.services["web"].latency_limits == LatencyLimits(99.0, None, None)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_latency", 500, "ambiguous: give a unit"),
        ("max_latency", "5m", "not a latency"),
        ("max_latency", "0ms", "longer than zero"),
        ("max_latency", "11m", "not a latency"),
        ("max_latency", "601s", "too long"),
        ("latency_percentile", "99", "not a percentile"),
        ("max_latency_increase", "fifty", "write a percentage"),
        ("max_latency_increase", "0%", "greater than 0"),
    ],
)
def test_bad_latency_keys_are_refused_with_the_fix(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalogue({"defaults": {key: value}, "services": {}})


def test_milliseconds_are_for_latency_limits_only() -> None:
    assert parse_milliseconds("500ms") == 500
    assert parse_milliseconds(" 2s ") == 2000
    assert format_milliseconds(500) == "500ms" and format_milliseconds(2000) == "2s"
    with pytest.raises(DurationError):
        parse_milliseconds("1m")  # minutes are not a latency, and never milliseconds
    # The other durations keep s/m/h/d: a bake in ms is refused.
    with pytest.raises(ConfigError, match="not a duration"):
        parse_catalogue({"defaults": {"bake": "500ms"}, "services": {}})


# --- fetched from the strict world ----------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
LB = "app/edge/50dc6c495c0c9188"


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def target(name: str) -> AlbTarget:
    return AlbTarget(LB, f"targetgroup/{name}/73e2d6bc24d8a067", name, "prod")


def test_the_nearest_rank_percentile() -> None:
    values = [(float(v), 1.0) for v in range(1, 101)]  # 1..100
    assert percentile_of(values, 99) == 99
    assert percentile_of(values, 50) == 50
    assert percentile_of([(10.0, 99.0), (500.0, 1.0)], 99) == 10
    assert percentile_of([(10.0, 98.0), (500.0, 2.0)], 99) == 500
    assert percentile_of([], 99) is None


def test_a_check_reads_each_periods_p99_in_the_counts_own_call(cloudwatch: Any) -> None:
    feed = DelayedPublisher(cloudwatch, lag=60)
    canary, stable = target("web-4f2a9c1e"), target("web-v1")
    # Two minutes; in each, 600 canary requests (593 at 100 ms, 7 at 400 ms: the 594th
    # fastest, the p99 by nearest rank, is 400 ms) and 1,000 stable ones (989 at 100 ms, 11 at
    # 200 ms: the 990th is 200 ms).
    for minute in (3, 2):
        at = NOW - timedelta(minutes=minute)
        for t, fast, slow, slow_ms in ((canary, 593, 7, 400), (stable, 989, 11, 200)):
            put_alb_counts(
                feed,
                load_balancer=LB,
                target_group=t.target_group,
                requests=fast + slow,
                errors=1,
                timestamp=at,
                latencies_ms=[100.0] * fast + [float(slow_ms)] * slow,
            )
    calls: list[dict[str, Any]] = []
    cloudwatch.meta.events.register(
        "before-parameter-build.cloudwatch.GetMetricData", lambda params, **_: calls.append(params)
    )

    query = alb_query(AlbMetricTemplate(), canary=canary, stable=stable, period=60, percentile=99.0)
    found = fetch_one(cloudwatch, CountsRead(query, NOW - timedelta(minutes=5), NOW))

    assert len(calls) == 1  # counts and latency together
    stats = {q["Id"]: q["MetricStat"]["Stat"] for q in calls[0]["MetricDataQueries"]}
    assert stats["cl"] == stats["sl"] == "p99"
    assert (found.canary, found.stable) == (Counts(1200, 2), Counts(2000, 2))
    assert found.latency is not None
    assert [
        (p.canary_requests, p.stable_requests, p.canary_ms, p.stable_ms)
        for p in found.latency.periods
    ] == [(600, 1000, 400.0, 200.0)] * 2


def test_percentiles_need_raw_values_and_a_datum_takes_150_of_them(cloudwatch: Any) -> None:
    dims = [{"Name": "LoadBalancer", "Value": LB}]
    at = NOW - timedelta(minutes=2)
    # A statistic set carries no raw values: CloudWatch has no percentile of it.
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": ALB_LATENCY,
                "Dimensions": dims,
                "Timestamp": at,
                "StatisticValues": {"SampleCount": 10, "Sum": 1.0, "Minimum": 0.05, "Maximum": 0.2},
                "Unit": "Seconds",
            }
        ],
    )

    def read(stat: str) -> list[float]:
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "q",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/ApplicationELB",
                            "MetricName": ALB_LATENCY,
                            "Dimensions": dims,
                        },
                        "Period": 60,
                        "Stat": stat,
                    },
                }
            ],
            StartTime=NOW - timedelta(minutes=5),
            EndTime=NOW,
        )
        return [float(v) for v in answer["MetricDataResults"][0]["Values"]]

    assert read("Average") == [pytest.approx(0.1)]
    assert read("p99") == []
    # One whose Min equals its Max does have one: every value is that one.
    dims[:] = [{"Name": "LoadBalancer", "Value": "app/other/1"}]
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": ALB_LATENCY,
                "Dimensions": dims,
                "Timestamp": at,
                "StatisticValues": {"SampleCount": 5, "Sum": 0.5, "Minimum": 0.1, "Maximum": 0.1},
                "Unit": "Seconds",
            }
        ],
    )
    assert read("p99") == [pytest.approx(0.1)]
    with pytest.raises(cloudwatch.exceptions.ClientError, match="150"):
        cloudwatch.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {
                    "MetricName": ALB_LATENCY,
                    "Dimensions": dims,
                    "Timestamp": at,
                    "Values": [i / 1000 for i in range(1, 152)],
                    "Unit": "Seconds",
                }
            ],
        )


# --- each backend, in process (moto, simulated time and traffic) ------------------------------


@pytest.mark.parametrize("backend", ["alb", "ecs", "appmesh"])
def test_each_backend_judges_latency_where_it_is_published(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """A canary twice as slow, with normal errors, at 100 req/s and 60 s periods: rolled back
    for its latency behind an ALB (router alb, and router ecs whose two target groups ECS shifts
    between); promoted on App Mesh, where the CloudWatch agent publishes no Envoy latency."""
    from tests import test_engine as scenarios
    from workers.domain.state import State

    with mock_aws():
        world = scenarios.make_world(monkeypatch, backend, rps=100.0, gates="auto")
        world.sim.latency_factors = {"v2": 2.0}  # type: ignore[union-attr]
        dep_id = scenarios.start(world)
        dep = world.drive(dep_id, lambda d: not d.active)
        verdicts = [e.verdict for e in world.rt.store.events(dep_id) if hasattr(e, "verdict")]
        if backend == "appmesh":
            assert dep.state == State.PROMOTED, dep.reason
            assert all(v is None or v.latency is None for v in verdicts)
            return
        assert dep.state == State.ROLLED_BACK, dep.reason
        failed = [e for e in world.rt.store.events(dep_id) if e.kind == "step_failed"]
        assert len(failed) == 1
        reason = failed[0].verdict.reason  # type: ignore[union-attr]
        assert reason.startswith("p99 latency "), reason
        assert "on the stable" in reason and "more than +25 % slower" in reason
