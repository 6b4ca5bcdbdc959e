"""Checks due together share their AWS reads (workers.engine.batch): in process, moto made
strict, fakeredis, simulated time and traffic. Calls are counted by a botocore event hook."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from sandbox.seed_alb import seed_alb_service
from sandbox.simulator import AlbTrafficSimulator
from sandbox.strict_moto import STRICT
from tests.fakes import TICK, FakeClock, RecordingScheduler, fake_runtime
from tests.test_engine import ERROR_RATES, V2, serving
from workers import api, defaults
from workers.analysis.judge import Counts, Outcome, ReasonCode
from workers.analysis.window import MetricWindow
from workers.aws.clients import AwsClients, make_clients
from workers.aws.cloudwatch import (
    METRIC_QUERIES_PER_CALL,
    CountsQuery,
    CountsRead,
    LatencyQuery,
    Measurement,
    QueryFailed,
    Side,
    fetch_many,
)
from workers.domain.catalogue import parse_catalogue
from workers.domain.deployment import Deployment, LastRead
from workers.domain.state import State
from workers.engine.batch import presence_due, read_key, window_of
from workers.engine.machine import Engine
from workers.runtime.context import Runtime
from workers.runtime.jobs import runner


@dataclass
class Fleet:
    """Several ALB services behind one listener, each with its own traffic, one Runtime."""

    rt: Runtime
    clients: AwsClients
    clock: FakeClock
    sims: dict[str, AlbTrafficSimulator]
    seeded: dict[str, dict[str, str]]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    in_engine: bool = False

    @property
    def scheduler(self) -> RecordingScheduler:
        return self.rt.scheduler  # type: ignore[return-value]

    def count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.in_engine:
            self.calls.append((model.name, params))

    def called(self, name: str) -> list[dict[str, Any]]:
        return [params for op, params in self.calls if op == name]

    def dep(self, dep_id: str) -> Deployment:
        found = self.rt.store.get(dep_id)
        assert found is not None
        return found

    def run_due(self) -> int:
        """Run every job due now (urgent first); how many ran."""
        ran = 0
        while (job := self.scheduler.pop_due("run")) is not None:
            assert job.version is not None
            self.in_engine = True
            try:
                runner(self.rt).run(job.dep_id, job.version)
            finally:
                self.in_engine = False
            ran += 1
        return ran

    def advance(self) -> None:
        """Move the clock to the next due job (at most TICK), publishing every service's traffic."""
        nxt = self.scheduler.next_due("run")
        assert nxt is not None, "nothing scheduled"
        step = min(max(nxt - self.clock.now, 0.0), TICK)
        self.clock.advance(step)
        if step > 0:
            at = datetime.fromtimestamp(self.clock.now - step / 2, UTC)
            for sim in self.sims.values():
                sim.tick(step, at=at)

    def next_round(self) -> None:
        """Move the clock (publishing traffic) until some job is due."""
        while self.scheduler.next_due("run") > self.clock.now:  # type: ignore[operator]
            self.advance()

    def drive(self, until: Any, max_seconds: float = 3600) -> None:
        deadline = self.clock.now + max_seconds
        while not until():
            if not self.run_due():
                assert self.clock.now < deadline, "the fleet never got there"
                self.advance()


RPS = (8.0, 16.0, 32.0, 64.0)


@pytest.fixture
def fleet(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    with fleet_of(monkeypatch, RPS) as world:
        yield world


@contextmanager
def fleet_of(
    monkeypatch: pytest.MonkeyPatch,
    rps_of: tuple[float, ...],
    latency_factors: tuple[dict[str, float], ...] = (),
) -> Iterator[Fleet]:
    """ALB services svc0.. served at `rps_of` req/s, each image tag's response times times its
    service's `latency_factors` (none: as fast as the stable)."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    with mock_aws():
        clients = make_clients()
        clock = FakeClock(time.time())
        STRICT.clock = clock
        services: dict[str, dict[str, object]] = {}
        sims: dict[str, AlbTrafficSimulator] = {}
        seeded: dict[str, dict[str, str]] = {}
        for i, rps in enumerate(rps_of):
            key = f"svc{i}"
            seeded[key] = seed_alb_service(clients, key=key)
            rule = seeded[key]["listener_rule"]
            services[key] = {"router": "alb", "cluster": "prod", "listener_rule": rule}
            sims[key] = AlbTrafficSimulator(
                clients,
                cluster="prod",
                listener_rule=rule,
                requests_per_second=rps,
                error_rates=ERROR_RATES,
                clock=clock,
                latency_factors=latency_factors[i] if i < len(latency_factors) else {},
            )
        cat = parse_catalogue(
            {
                "defaults": {
                    "bake": "5m",
                    "analysis_interval": "1m",
                    "metric_period": "60s",
                    "gates": "auto",
                },
                "services": services,
            }
        )
        rt = fake_runtime(cat, clock)
        rt.aws = lambda: clients
        for sim in sims.values():
            serving(sim, clock)
        world = Fleet(rt, clients, clock, sims, seeded)
        for client in (clients.cloudwatch, clients.elbv2, clients.ecs):
            client.meta.events.register("before-parameter-build.*.*", world.count)
        yield world


def start_all(fleet: Fleet) -> list[str]:
    ids = []
    for key in fleet.sims:
        answer = api.start_deployment(
            key, V2, requester="UDANA", channel="C1", overrides={}, rt=fleet.rt
        )
        assert answer.ok and answer.deployment is not None, answer.refusal
        ids.append(answer.deployment.id)
    return ids


def baking_with_data(fleet: Fleet, ids: list[str]) -> bool:
    deps = [fleet.dep(i) for i in ids]
    return all(
        d.state == State.BAKING and d.last_verdict is not None and d.last_verdict.canary.requests
        for d in deps
    )


def test_checks_due_together_share_one_get_metric_data_each_with_its_own_figures(
    fleet: Fleet,
) -> None:
    ids = start_all(fleet)
    fleet.drive(lambda: baking_with_data(fleet, ids))
    before = {i: fleet.dep(i) for i in ids}
    fleet.calls.clear()
    # The next checks of the four fall due together: the first reads for all.
    fleet.next_round()
    assert fleet.run_due() == len(ids)
    after = {i: fleet.dep(i) for i in ids}
    assert [after[i].checks for i in ids] == [before[i].checks + 1 for i in ids]
    assert len(fleet.called("GetMetricData")) == 1
    sent = fleet.called("GetMetricData")[0]["MetricDataQueries"]
    # 2 sides x (requests + 3 error metrics + the p99 latency) x services
    assert len(sent) == 2 * 5 * len(ids)
    # Each verdict has its own figures: those its own unbatched read gives, and they differ.
    engine = Engine(fleet.rt)
    mine = []
    for i in ids:
        dep = after[i]
        assert dep.last_read is not None
        window = window_of(dep, fleet.clock.now)
        assert window.end == dep.last_read.window_end
        alone = engine.backend(dep).counts(
            dep.recorded_stable(),
            dep.recorded_canary(),
            start=datetime.fromtimestamp(window.start, UTC),
            end=datetime.fromtimestamp(window.end, UTC),
        )
        assert dep.last_verdict is not None
        assert (dep.last_verdict.canary, dep.last_verdict.stable) == alone
        mine.append(dep.last_verdict.canary.requests)
    assert mine == sorted(mine) and len(set(mine)) == len(mine)  # 8, 16, 32, 64 req/s
    # Over the rest of the rollout: about one GetMetricData per round of four checks.
    fleet.calls.clear()
    checks_before = sum(fleet.dep(i).checks for i in ids)
    fleet.drive(lambda: all(not fleet.dep(i).active for i in ids), max_seconds=4 * 3600)
    checks = sum(fleet.dep(i).checks for i in ids) - checks_before
    assert {fleet.dep(i).state for i in ids} == {State.PROMOTED}
    assert len(fleet.called("GetMetricData")) <= checks / len(ids) + 2
    per_call = [len(c["services"]) for c in fleet.called("DescribeServices")]
    assert all(n <= 10 for n in per_call)


def test_a_batched_read_carries_each_deployments_latency_and_only_the_slow_one_fails(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ALB deployments at 100 req/s (600 canary requests a minute at 10 %: enough for a
    p99), the second's canary twice as slow: each round of their two checks makes one
    GetMetricData, its p99 queries in it, each verdict judges its own latency series (the
    peer's through the read kept in Redis), and the slow one alone fails, on latency."""
    with fleet_of(monkeypatch, (100.0, 100.0), ({}, {"v2": 2.0})) as fleet:
        ids = start_all(fleet)
        fast, slow = ids
        fleet.drive(lambda: baking_with_data(fleet, ids))
        rounds = 0
        while fleet.dep(slow).state == State.BAKING:
            assert rounds < 10, "the slow canary was never failed"
            fleet.calls.clear()
            fleet.next_round()
            before = {i: fleet.dep(i).checks for i in ids}
            fleet.run_due()
            assert [fleet.dep(i).checks for i in ids] == [before[i] + 1 for i in ids]
            calls = fleet.called("GetMetricData")
            assert len(calls) == 1  # both checks, counts and latency: one call
            stats = [q["MetricStat"]["Stat"] for q in calls[0]["MetricDataQueries"]]
            assert len(stats) == 2 * 5 * 2 and stats.count("p99") == 2 * 2
            rounds += 1
        assert rounds >= 1
        failed = fleet.dep(slow).last_verdict
        assert failed is not None and failed.outcome == Outcome.FAIL
        assert failed.code == ReasonCode.LATENCY
        assert failed.latency is not None and failed.latency.breached
        assert failed.reason.startswith("p99 latency "), failed.reason
        assert fleet.dep(slow).state != State.PROMOTED
        # The fast one, judged in the same calls: its own latency, within its limit.
        other = fleet.dep(fast)
        assert other.state == State.BAKING, other.reason
        kept = other.last_verdict
        assert kept is not None and kept.outcome != Outcome.FAIL
        assert kept.latency is not None and not kept.latency.breached
        assert kept.figures.canary_latency_ms is not None
        assert failed.figures.canary_latency_ms is not None
        assert failed.figures.canary_latency_ms > 1.5 * kept.figures.canary_latency_ms


def test_a_deleted_canary_fails_only_its_own_check(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batched DescribeTargetGroups fails as a whole (TargetGroupNotFound) for the one
    deleted canary; it is split, that deployment rolls back saying so, the others go on."""
    ids = start_all(fleet)
    fleet.drive(lambda: baking_with_data(fleet, ids))
    doomed = fleet.dep(ids[1])
    canary_group = doomed.recorded_canary().target_group_arn
    stable_group = fleet.seeded["svc1"]["target_group_arn"]
    # Someone sends svc1's traffic back to its stable and deletes the canary's target group.
    elbv2 = fleet.clients.elbv2
    elbv2.modify_rule(
        RuleArn=fleet.seeded["svc1"]["listener_rule"],
        Actions=[{"Type": "forward", "TargetGroupArn": stable_group}],
    )
    elbv2.delete_target_group(TargetGroupArn=canary_group)
    # Every check looks at its canary this time.
    monkeypatch.setattr(defaults, "PRESENCE_INTERVAL_SECONDS", 0)
    before = {i: fleet.dep(i).checks for i in ids}
    fleet.calls.clear()
    fleet.next_round()
    fleet.run_due()

    # One call for all four, refused as a whole, then each asked alone (the calls after those
    # are svc1's rollback steps).
    groups = fleet.called("DescribeTargetGroups")
    assert [len(g.get("TargetGroupArns", [])) for g in groups[:5]] == [4, 1, 1, 1, 1]
    assert len(fleet.called("DescribeServices")[0]["services"]) == 4  # one cluster, one call
    assert len(fleet.called("GetMetricData")) == 1
    gone = fleet.dep(ids[1])
    assert gone.state in (State.ROLLING_BACK, State.CLEANING_UP, State.ROLLED_BACK)
    assert "target group" in (gone.reason or "") and "gone" in (gone.reason or "")
    for i in (ids[0], ids[2], ids[3]):
        dep = fleet.dep(i)
        assert dep.state == State.BAKING, dep.reason
        assert dep.checks == before[i] + 1
        assert dep.last_verdict is not None and dep.last_verdict.canary.requests > 0


def test_a_check_never_waits_for_a_batch_still_reading_for_it(fleet: Fleet) -> None:
    """Another process's batch has claimed all four reads and not finished: each check reads
    for itself at once (four calls) instead of waiting for it."""
    ids = start_all(fleet)
    fleet.drive(lambda: baking_with_data(fleet, ids))
    for i in ids:
        dep = fleet.dep(i)
        fleet.rt.redis.set(read_key(fleet.rt.store.prefix, i, dep.version), b"pending", ex=30)
    before = {i: fleet.dep(i).checks for i in ids}
    fleet.calls.clear()
    fleet.next_round()
    assert fleet.run_due() == len(ids)
    assert [fleet.dep(i).checks for i in ids] == [before[i] + 1 for i in ids]
    assert len(fleet.called("GetMetricData")) == len(ids)


# fetch_many, unit: per-query statuses, whole-call failures, windows, limits -------------------
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def query(name: str, period: int = 60) -> CountsQuery:
    def metric(side: str) -> dict[str, Any]:
        dims = [{"Name": "TargetGroup", "Value": f"{name}-{side}"}]
        return {"Namespace": "N", "MetricName": "RequestCount", "Dimensions": dims}

    canary, stable = metric("c"), metric("s")
    return CountsQuery(Side((canary,), ()), Side((stable,), ()), period)


def stubbed(*responses: dict[str, Any] | ClientError) -> tuple[Any, Stubber]:
    client = boto3.client("cloudwatch", region_name="us-east-1")
    stubber = Stubber(client)
    for response in responses:
        if isinstance(response, ClientError):
            stubber.add_client_error("get_metric_data", "InvalidParameterValue", "bad", 400)
        else:
            stubber.add_response("get_metric_data", response)
    return client, stubber


def result(qid: str, *points: tuple[datetime, float], status: str = "Complete") -> dict[str, Any]:
    return {
        "Id": qid,
        "Timestamps": [t for t, _ in points],
        "Values": [v for _, v in points],
        "StatusCode": status,
    }


def test_one_querys_bad_status_fails_only_its_read() -> None:
    reads = [CountsRead(query(n), NOW - timedelta(minutes=5), NOW) for n in ("a", "b")]
    t = NOW - timedelta(minutes=2)
    client, stubber = stubbed(
        {
            "MetricDataResults": [
                result("d0_c1", (t, 10.0)),
                result("d0_s1", (t, 100.0)),
                result("d1_c1", status="InternalError"),
                result("d1_s1", (t, 50.0)),
            ]
        }
    )
    with stubber:
        found = fetch_many(client, reads)
    assert found[0] == Measurement(Counts(10, 0), Counts(100, 0))
    assert isinstance(found[1], QueryFailed)


def test_a_call_refused_as_a_whole_fails_its_reads_not_the_callers() -> None:
    reads = [CountsRead(query(n), NOW - timedelta(minutes=5), NOW) for n in ("a", "b")]
    client, stubber = stubbed(ClientError({}, "GetMetricData"))
    with stubber:
        found = fetch_many(client, reads)
    assert all(isinstance(f, QueryFailed) for f in found)


def test_each_read_sums_only_its_own_window_of_a_wider_call() -> None:
    early = CountsRead(query("a"), NOW - timedelta(minutes=10), NOW - timedelta(minutes=5))
    late = CountsRead(query("b"), NOW - timedelta(minutes=3), NOW)
    points = [(NOW - timedelta(minutes=m), 1.0) for m in range(10, 0, -1)]
    client, stubber = stubbed(
        {"MetricDataResults": [result(q, *points) for q in ("d0_c1", "d0_s1", "d1_c1", "d1_s1")]}
    )
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.cloudwatch.GetMetricData", lambda params, **_: sent.append(params)
    )
    with stubber:
        found = fetch_many(client, [early, late])
    assert sent[0]["StartTime"] == early.start and sent[0]["EndTime"] == late.end
    assert found[0] == Measurement(Counts(5, 0), Counts(5, 0))  # minutes -10..-6
    assert found[1] == Measurement(Counts(3, 0), Counts(3, 0))  # minutes -3..-1


def with_latency(name: str) -> CountsQuery:
    """`query(name)` with each side's p99 response time too (4 queries in all)."""

    def metric(side: str) -> dict[str, Any]:
        dims = [{"Name": "TargetGroup", "Value": f"{name}-{side}"}]
        return {"Namespace": "N", "MetricName": "TargetResponseTime", "Dimensions": dims}

    return replace(query(name), latency=LatencyQuery(metric("c"), metric("s"), 99.0, 1000.0))


def test_each_read_keeps_its_own_latency_periods_of_a_wider_call() -> None:
    early = CountsRead(with_latency("a"), NOW - timedelta(minutes=10), NOW - timedelta(minutes=5))
    late = CountsRead(query("b"), NOW - timedelta(minutes=3), NOW)  # latency not judged
    minutes = [NOW - timedelta(minutes=m) for m in range(10, 0, -1)]
    client, stubber = stubbed(
        {
            "MetricDataResults": [
                result("d0_c1", *[(t, 600.0) for t in minutes]),
                result("d0_s1", *[(t, 1000.0) for t in minutes]),
                result("d0_cl", *[(t, 0.2) for t in minutes]),
                result("d0_sl", *[(t, 0.1) for t in minutes]),
                result("d1_c1", *[(t, 1.0) for t in minutes]),
                result("d1_s1", *[(t, 1.0) for t in minutes]),
            ]
        }
    )
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.cloudwatch.GetMetricData", lambda params, **_: sent.append(params)
    )
    with stubber:
        found = fetch_many(client, [early, late])
    stats = {q["Id"]: q["MetricStat"]["Stat"] for q in sent[0]["MetricDataQueries"]}
    sums = {f"d{i}_{side}1": "Sum" for i in (0, 1) for side in "cs"}
    assert stats == {**sums, "d0_cl": "p99", "d0_sl": "p99"}  # one call, latency for a alone
    first, second = found
    assert isinstance(first, Measurement) and isinstance(second, Measurement)
    assert (first.canary, first.stable) == (Counts(3000, 0), Counts(5000, 0))
    assert first.latency is not None and second.latency is None
    # Minutes -10..-6 only, each with its requests and its p99 in milliseconds.
    assert [p.start for p in first.latency.periods] == [t.timestamp() for t in minutes[:5]]
    assert {
        (p.canary_requests, p.stable_requests, p.canary_ms, p.stable_ms)
        for p in first.latency.periods
    } == {(600, 1000, 200.0, 100.0)}


def test_reads_beyond_one_calls_limits_take_more_calls(aws_env: None) -> None:
    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        calls: list[int] = []
        client.meta.events.register(
            "before-parameter-build.cloudwatch.GetMetricData",
            lambda params, **_: calls.append(len(params["MetricDataQueries"])),
        )
        window = (NOW - timedelta(minutes=5), NOW)
        many = [
            CountsRead(query(f"q{i}"), *window) for i in range(METRIC_QUERIES_PER_CALL // 2 + 1)
        ]
        found = fetch_many(client, many)
        assert calls == [METRIC_QUERIES_PER_CALL, 2]  # 500 queries, then the last read's two
        assert all(f == Measurement(Counts(0, 0), Counts(0, 0)) for f in found)
        # Points, too: 100,800 a call. A day of minutes is 1,440 points a query.
        calls.clear()
        day = (NOW - timedelta(days=1), NOW)
        fetch_many(client, [CountsRead(query(f"d{i}"), *day) for i in range(40)])
        assert len(calls) == 2 and max(calls) * 1440 <= 100_800


def test_latency_queries_count_towards_a_calls_500(aws_env: None) -> None:
    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        calls: list[int] = []
        client.meta.events.register(
            "before-parameter-build.cloudwatch.GetMetricData",
            lambda params, **_: calls.append(len(params["MetricDataQueries"])),
        )
        window = (NOW - timedelta(minutes=5), NOW)
        reads = [CountsRead(with_latency(f"q{i}"), *window) for i in range(126)]
        found = fetch_many(client, reads)
        assert calls == [500, 4]  # 125 reads of 4 queries, then the last one's
        assert all(isinstance(f, Measurement) for f in found)


def test_a_batch_that_breaks_the_limit_is_refused_as_aws_would(aws_env: None) -> None:
    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        metric = {"Namespace": "N", "MetricName": "M"}
        queries = [
            {"Id": f"q{i}", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}
            for i in range(METRIC_QUERIES_PER_CALL + 1)
        ]
        with pytest.raises(ClientError, match="500"):
            client.get_metric_data(
                MetricDataQueries=queries, StartTime=NOW - timedelta(minutes=5), EndTime=NOW
            )


# when a check looks at its canary's resources ------------------------------------------------
def checked(fleet_dep: Deployment, **changes: Any) -> Deployment:
    return fleet_dep.model_copy(update=changes)


def test_presence_is_looked_at_on_an_interval_and_when_traffic_stops(fleet: Fleet) -> None:
    ids = start_all(fleet)
    fleet.drive(lambda: baking_with_data(fleet, ids))
    dep = fleet.dep(ids[0])
    assert dep.canary_checked_at is not None and dep.last_read is not None
    now = dep.canary_checked_at + 60
    later = MetricWindow(dep.last_read.window_end - 60, dep.last_read.window_end + 60)
    grown = dep.last_read.canary_requests + 5
    assert not presence_due(dep, grown, later, now)  # traffic goes on: not yet
    assert presence_due(dep, dep.last_read.canary_requests, later, now)  # it stopped
    same = MetricWindow(later.start, dep.last_read.window_end)
    assert not presence_due(dep, dep.last_read.canary_requests, same, now)  # nothing new read
    stale = dep.canary_checked_at + defaults.PRESENCE_INTERVAL_SECONDS
    assert presence_due(dep, grown, later, stale)  # the interval is up
    other_step = checked(
        dep, last_read=LastRead(step_started_at=1.0, window_end=0, canary_requests=10**9)
    )
    assert not presence_due(other_step, 0, later, now)  # a new step starts from nothing


def test_rq_lists_the_checks_waiting_or_due_soon(real_redis: tuple[Any, str]) -> None:
    """RqScheduler.due_soon: the default queue's waiting run jobs and those RQ's scheduler moves
    within the given seconds; never the high queue's (rollbacks) nor later ones."""
    from workers.runtime.queues import RqScheduler

    client, prefix = real_redis
    scheduler = RqScheduler(client, prefix)
    scheduler.run("aaaa0001", 3)
    scheduler.run("aaaa0002", 4, delay=1)
    scheduler.run("aaaa0003", 5, delay=600)
    scheduler.run("aaaa0004", 6, urgent=True)
    scheduler.notify("aaaa0001")
    assert sorted(scheduler.due_soon(3.0, 10)) == [("aaaa0001", 3), ("aaaa0002", 4)]
    assert len(scheduler.due_soon(3.0, 1)) == 1
