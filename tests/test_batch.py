"""Checks due together share their AWS reads (workers.engine.batch): in process, moto made
strict, fakeredis, simulated time and traffic. Calls are counted by a botocore event hook."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from sandbox.seed_alb import seed_alb_service
from sandbox.simulator import AlbTrafficSimulator
from sandbox.strict_moto import STRICT
from tests.fakes import TICK, FakeClock, SlotRecorder, fake_runtime
from tests.test_engine import ERROR_RATES, V2, serving
from workers import api, defaults
from workers.analysis.judge import Counts, Outcome, ReasonCode, Verdict
from workers.analysis.window import MetricWindow, covered_at
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
from workers.domain.events import Cause
from workers.domain.state import State
from workers.engine import watchdog
from workers.engine.batch import presence_due, window_of
from workers.engine.checks import cadence_start, check_delay
from workers.engine.machine import Engine
from workers.engine.runner import Runner
from workers.engine.slots import run_slot
from workers.runtime.context import Runtime
from workers.runtime.jobs import runner
from workers.runtime.queues import slot_of
from workers.runtime.scheduler import PAST_SECOND, pause


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
    #: What each slot job said ("4 checked, 0 stale").
    slot_results: list[str] = field(default_factory=list)

    @property
    def scheduler(self) -> SlotRecorder:
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
        """Run every job due now (urgent run jobs first, then slot jobs); how many ran."""
        ran = 0
        while True:
            job = self.scheduler.pop_due("run")
            if job is not None and not job.urgent and self.scheduler.next_due("slot") is not None:
                # Slot jobs due at the same time go first (they are older).
                slot = self.scheduler.pop_due("slot")
                if slot is not None:
                    self.scheduler.jobs.append(job)
                    job = slot
            if job is None:
                job = self.scheduler.pop_due("slot")
            if job is None:
                return ran
            self.in_engine = True
            try:
                if job.kind == "slot":
                    self.slot_results.append(run_slot(runner(self.rt), self.scheduler, job.due))
                else:
                    assert job.version is not None
                    runner(self.rt).run(job.dep_id, job.version)
            finally:
                self.in_engine = False
            ran += 1

    def next_due(self) -> float | None:
        times = [t for k in ("run", "slot") if (t := self.scheduler.next_due(k)) is not None]
        return min(times) if times else None

    def advance(self) -> None:
        """Move the clock to the next due job (at most TICK), publishing every service's traffic."""
        nxt = self.next_due()
        assert nxt is not None, "nothing scheduled"
        step = min(max(nxt - self.clock.now, 0.0), TICK)
        self.clock.advance(step)
        if step > 0:
            at = datetime.fromtimestamp(self.clock.now - step / 2, UTC)
            for sim in self.sims.values():
                sim.tick(step, at=at)

    def next_round(self) -> None:
        """Move the clock (publishing traffic) until some job is due."""
        while self.next_due() > self.clock.now:  # type: ignore[operator]
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
        rt = fake_runtime(cat, clock, slots=True)
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
    # The next checks of the four fall due in the same slot: one job reads for all.
    fleet.next_round()
    fleet.slot_results.clear()
    assert fleet.run_due() == 1
    assert fleet.slot_results == ["4 checked, 0 stale"]
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
    peer's in the same slot job), and the slow one alone fails, on latency."""
    with fleet_of(monkeypatch, (100.0, 100.0), ({}, {"v2": 2.0})) as fleet:
        ids = start_all(fleet)
        fast, slow = ids
        fleet.drive(lambda: baking_with_data(fleet, ids))
        rounds = 0
        kept: Verdict | None = None
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
            seen = fleet.dep(fast).last_verdict
            if seen is not None and seen.latency is not None:
                kept = seen  # the fast one's latest verdict with its latency judged
        assert rounds >= 1
        failed = fleet.dep(slow).last_verdict
        assert failed is not None and failed.outcome == Outcome.FAIL
        assert failed.code == ReasonCode.LATENCY
        assert failed.latency is not None and failed.latency.breached
        assert failed.reason.startswith("p99 latency "), failed.reason
        assert fleet.dep(slow).state != State.PROMOTED
        # The fast one, judged in the same calls: its own latency, within its limit.
        # (It may have passed its step in the round the slow one failed at the end of the
        # bake: the spread test is strictest between deciding looks.)
        other = fleet.dep(fast)
        assert other.state == State.BAKING, other.reason
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


def in_one_slot(fleet: Fleet) -> tuple[list[str], dict[str, int]]:
    """Start the four, drive them to baking with data, then to their next slot (due now);
    their ids and checks so far."""
    ids = start_all(fleet)
    fleet.drive(lambda: baking_with_data(fleet, ids))
    fleet.next_round()
    assert fleet.scheduler.pop_due("run") is None  # every check due waits in its slot
    fleet.slot_results.clear()
    fleet.calls.clear()
    return ids, {i: fleet.dep(i).checks for i in ids}


def test_a_member_whose_deployment_moved_on_is_skipped_as_stale(fleet: Fleet) -> None:
    """A click rolls one back after its check was put in the slot: the slot job skips it (its
    version moved), checks the three others in one GetMetricData, and the rollback is the
    click's alone."""
    ids, before = in_one_slot(fleet)
    clicked = ids[2]
    assert Engine(fleet.rt).request_rollback(clicked, reason="no", actor="U1", by=Cause.ABORT)
    fleet.run_due()
    assert fleet.slot_results == ["3 checked, 1 stale"]
    assert len(fleet.called("GetMetricData")) == 1
    for i in ids:
        assert fleet.dep(i).checks == before[i] + (i != clicked)
    gone = fleet.dep(clicked)
    assert gone.ended_by == Cause.ABORT and gone.state != State.BAKING


def test_a_members_run_lock_held_elsewhere_makes_only_that_check_busy(fleet: Fleet) -> None:
    """The slot job takes its members' run locks at once: one held by another job of its
    deployment (a click's step) leaves that check to run again alone a second later, the three
    others are checked, and every lock the job took is given back (the other job's is kept)."""
    ids, before = in_one_slot(fleet)
    busy = ids[1]
    elsewhere = runner(fleet.rt).lock_of(busy)
    assert elsewhere.acquire()
    fleet.run_due()
    assert fleet.slot_results == ["3 checked, 0 stale, 1 busy"]
    assert [fleet.dep(i).checks for i in ids] == [before[i] + (i != busy) for i in ids]
    again = [j for j in fleet.scheduler.jobs if j.kind == "run" and j.dep_id == busy]
    assert len(again) == 1 and again[0].due == fleet.clock.now + 1
    assert again[0].version == fleet.dep(busy).version
    held = sorted(k.decode() for k in fleet.rt.redis.keys(f"{fleet.rt.store.prefix}:run:*"))
    assert held == [elsewhere.name]


def test_a_breached_members_lock_is_given_back_before_the_slot_job_ends(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The urgent rollback a breach queues waits for the deployment's run lock: the slot job
    gives that one back as soon as the failing check is done, not with its other members'."""
    ids = start_all(fleet)
    # A slot's members run in the order of their ids: the first one's check fails, three follow.
    bad = min(ids)
    fleet.sims[fleet.dep(bad).service].error_rates = {**ERROR_RATES, "v2": ERROR_RATES["v3"]}
    bad_lock = f"{fleet.rt.store.prefix}:run:{bad}"
    seen: list[tuple[str, str, bool]] = []
    original = Runner.run

    def spy(self: Runner, dep_id: str, version: int, **kwargs: Any) -> str:
        said = original(self, dep_id, version, **kwargs)
        state = fleet.dep(dep_id).state.value
        seen.append((dep_id, state, bool(fleet.rt.redis.exists(bad_lock))))
        return said

    monkeypatch.setattr(Runner, "run", spy)
    for _ in range(200):
        if fleet.dep(bad).rollback_requested_at is not None:
            break
        if not fleet.run_due():
            fleet.advance()
    else:
        raise AssertionError("the bad canary was never failed")
    failed = next(n for n, (i, state, _) in enumerate(seen) if i == bad and state == "rolling_back")
    rest = seen[failed + 1 :]
    # The rest of its slot job: up to the rollback's own run.
    after = rest[: next((n for n, (i, _, _) in enumerate(rest) if i == bad), len(rest))]
    assert after
    # While they ran, the bad deployment's lock was free for its rollback.
    assert not seen[failed][2] and not any(locked for _, _, locked in after)


def test_a_slot_job_killed_after_taking_its_checks_leaves_them_to_the_watchdog(
    fleet: Fleet,
) -> None:
    """The slot's job took its checks out of the set and died: nothing is lost. The four become
    overdue, the watchdog runs each again as its own job, and each is checked once."""
    ids, before = in_one_slot(fleet)
    slot_job = fleet.scheduler.pop_due("slot")
    assert slot_job is not None
    taken, left = fleet.scheduler.slots.pop(slot_job.due, defaults.SLOT_CHUNK)
    assert sorted(i for i, _ in taken) == sorted(ids) and left == 0  # then the process died
    assert fleet.run_due() == 0
    fleet.clock.advance(fleet.rt.watchdog_grace + 1)
    assert sorted(watchdog.sweep(fleet.rt)) == sorted(ids)
    assert fleet.run_due() == len(ids)  # four run jobs, each reading alone
    assert [fleet.dep(i).checks for i in ids] == [before[i] + 1 for i in ids]
    assert len(fleet.called("GetMetricData")) == len(ids)
    assert all(fleet.dep(i).state == State.BAKING for i in ids)
    # Their next checks are in a slot again: one job, one call.
    fleet.calls.clear()
    fleet.next_round()
    fleet.run_due()
    assert fleet.slot_results == ["4 checked, 0 stale"]
    assert len(fleet.called("GetMetricData")) == 1


def test_a_slot_with_more_checks_than_one_job_takes_is_shared(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLOT_CHUNK 3 and four checks due: the job takes three and enqueues another job for the
    same slot first (for another worker); that one takes the fourth."""
    monkeypatch.setattr(defaults, "SLOT_CHUNK", 3)
    ids, before = in_one_slot(fleet)
    assert fleet.run_due() == 2
    assert fleet.slot_results == ["3 checked, 0 stale", "1 checked, 0 stale"]
    assert len(fleet.called("GetMetricData")) == 2
    assert [fleet.dep(i).checks for i in ids] == [before[i] + 1 for i in ids]


def test_a_breach_found_in_a_slot_rolls_back_at_once(fleet: Fleet) -> None:
    """svc0 deploys an image serving 20 % errors: the slot job whose check fails it asks for the
    rollback then and there (an urgent job due that instant, on no slot), and the others in the
    same slot are checked as usual."""
    ids = start_all(fleet)
    bad = ids[0]
    # svc0's deployment is of the bad image (v3) from the start: its own simulator serves it.
    fleet.sims["svc0"].error_rates = {**ERROR_RATES, "v2": ERROR_RATES["v3"]}
    for _ in range(200):
        slot = fleet.scheduler.pop_due("slot")
        if slot is None:
            if not fleet.run_due():
                fleet.advance()
            continue
        others = {i: fleet.dep(i).checks for i in ids[1:]}
        run_slot(runner(fleet.rt), fleet.scheduler, slot.due)
        failed = fleet.dep(bad)
        if failed.state == State.ROLLING_BACK:
            break
    else:
        raise AssertionError("the bad canary was never failed")
    assert failed.ended_by == Cause.CANARY_CHECK
    assert failed.rollback_requested_at == fleet.clock.now
    rollback = [j for j in fleet.scheduler.runs if j.dep_id == bad]
    assert len(rollback) == 1 and rollback[0].urgent and rollback[0].due == fleet.clock.now
    assert rollback[0].version == failed.version
    checked = [i for i in ids[1:] if fleet.dep(i).checks == others[i] + 1]
    assert checked  # in the same slot job
    assert all(fleet.dep(i).state == State.BAKING for i in ids[1:])


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


def test_rq_schedules_one_job_per_slot_and_hands_out_each_check_once(
    real_redis: tuple[Any, str],
) -> None:
    """RqScheduler.run_in_slots: the first check of a slot schedules its job (one job id per
    slot, at the slot's end), the others only join the set; a pop takes the checks due by its
    slot, each once, and says how many due ones are left."""
    from workers.runtime.queues import RqScheduler, slot_name, slot_of

    client, prefix = real_redis
    scheduler = RqScheduler(client, prefix)
    soon = slot_of(time.time() + 30)
    later = soon + 5 * defaults.SLOT_SECONDS
    scheduler.run_in_slots([("aaaa0000", 7, soon), ("aaaa0001", 7, soon)])
    scheduler.run_in_slots([("aaaa0002", 7, soon), ("bbbb0001", 2, later)])
    registry = scheduler.default.scheduled_job_registry
    jobs = sorted(registry.get_job_ids())
    assert jobs == sorted(f"{prefix}-slot-{slot_name(s)}" for s in (soon, later))
    assert registry.get_expiration_time(scheduler.default.fetch_job(jobs[0])).timestamp() in (
        soon,
        later,
    )
    first, left = scheduler.slots.pop(soon, 2)
    second, none_left = scheduler.slots.pop(soon, 2)
    assert (len(first), left, len(second), none_left) == (2, 1, 1, 0)
    assert sorted(first + second) == [(f"aaaa000{n}", 7) for n in range(3)]
    assert scheduler.slots.pop(soon, 10) == ([], 0)  # later's check is not due by then
    assert scheduler.slots.pop(later, 10) == ([("bbbb0001", 2)], 0)


def test_a_check_lands_at_the_end_of_its_slot_never_before() -> None:
    from workers.runtime.queues import slot_of

    assert slot_of(100.0, 1.0) == 100.0
    assert slot_of(100.01, 1.0) == 101.0
    assert slot_of(100.99, 2.0) == 102.0


def test_a_check_that_starts_late_keeps_its_interval_on_slot_ends(fleet: Fleet) -> None:
    """A slot's job starts a little after its slot's end (the scheduler's pass, the shared read):
    the next checks are due one interval after that slot, on a slot's end, not in the slot
    after it (counted from the check's end, each check would wait a slot more than its
    interval); the bake's last check is due when published data first covers the bake."""
    ids, _ = in_one_slot(fleet)
    interval = fleet.dep(ids[0]).settings.analysis_interval
    rounds = checked = 0
    while rounds < 4:
        slot = fleet.scheduler.next_due("slot")
        assert slot is not None and slot == fleet.clock.now
        fleet.clock.advance(0.4)
        before = {i: fleet.dep(i) for i in ids}
        fleet.run_due()
        for i in ids:
            dep, was = fleet.dep(i), before[i]
            if dep.checks != was.checks + 1 or (dep.state, dep.step_index) != (
                State.BAKING,
                was.step_index,
            ):
                continue  # not checked, or on to the next step (its first check is its own job)
            checked += 1
            s = dep.settings
            assert dep.step_started_at is not None
            bake_end = covered_at(dep.step_started_at, s.bake, s.metric_period, s.lag)
            assert dep.next_due_at == min(slot + interval, max(slot_of(bake_end), slot))
        rounds += 1
        fleet.next_round()
    assert checked >= 3 * len(ids)


def test_a_check_that_ran_late_counts_its_interval_from_when_it_was_due() -> None:
    # On time or late within a slot: from its due time (its slot's end).
    assert cadence_start(100.0, 100.0) == 100.0
    assert cadence_start(100.0, 100.7) == 100.0
    # Later than a slot: from a slot before now, so the next check is not due at once.
    assert cadence_start(100.0, 103.5) == 102.5
    # Never from later than now (a check run before it was due, or with nothing due).
    assert cadence_start(105.0, 100.0) == 100.0
    assert cadence_start(None, 100.0) == 100.0


def test_the_bakes_last_check_is_due_when_data_covers_it_counted_from_the_slot() -> None:
    """check_delay counts from the time the next check's delay counts from (the check's slot):
    the check that ends the bake is then due the moment published data covers it, not up
    to the check's lateness earlier."""
    settings = SimpleNamespace(
        bake=300, post_promotion_bake=300, metric_period=60, lag=60, analysis_interval=60
    )
    dep = SimpleNamespace(settings=settings, weight=10, step_started_at=660.0)
    engine = SimpleNamespace(now=lambda: 1000.4)
    end = covered_at(660.0, 300, 60, 60)  # 1020
    delay = check_delay(engine, dep, since=1000.0)  # type: ignore[arg-type]
    assert 1000.0 + delay == end
    assert check_delay(engine, dep) == pytest.approx(end - 1000.4)  # type: ignore[arg-type]


def test_a_slot_whose_end_is_past_is_queued_at_once(real_redis: tuple[Any, str]) -> None:
    """A check put in a slot already ended (its check ran late) gets the slot's job on the queue
    at once, not through the scheduler's next pass."""
    from workers.runtime.queues import RqScheduler, slot_name, slot_of

    client, prefix = real_redis
    scheduler = RqScheduler(client, prefix)
    past = slot_of(time.time() - 5)
    scheduler.run_in_slots([("cccc0000", 3, past)])
    assert scheduler.default.job_ids == [f"{prefix}-slot-{slot_name(past)}"]
    assert scheduler.default.scheduled_job_registry.get_job_ids() == []


def test_the_scheduler_passes_just_after_each_whole_second() -> None:
    """RQ keeps scheduled times in whole seconds, slots end on them: one pass each second runs
    just after it, so a slot's job is moved at its slot's end, not up to a pass later."""
    assert pause(100.0, 0.2) == 0.2
    assert pause(100.9, 0.2) == pytest.approx(0.1 + PAST_SECOND)
    assert pause(100.999, 0.2) == pytest.approx(0.001 + PAST_SECOND)
    assert pause(100.5, 2.0) == pytest.approx(0.5 + PAST_SECOND)
