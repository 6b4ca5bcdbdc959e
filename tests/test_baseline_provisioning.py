"""The stable's baseline read at provisioning (one GetMetricData through the backend's count
query, on moto), what a failed read leaves, and an old record without one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.fakes import IN_PROCESS_BACKENDS, World
from tests.test_engine import make_world, start
from workers.analysis.judge import Counts, Outcome, StepCounts
from workers.analysis.window import MetricWindow
from workers.domain.deployment import Baseline, Deployment
from workers.domain.state import State
from workers.engine import checks
from workers.engine.batch import Read
from workers.engine.machine import Engine
from workers.engine.steps import BASELINE_WINDOW


@pytest.fixture(params=IN_PROCESS_BACKENDS)
def quiet_world(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[World]:
    """A world whose stable's traffic is published only by the test."""
    with mock_aws():
        yield make_world(monkeypatch, str(request.param), published=False)


def publish(world: World, minutes_ago: float, minutes: int) -> tuple[int, int]:
    """The stable's traffic of `minutes` from `minutes_ago` on (10-second ticks, stamped in the
    middle of their period's first half): its (requests, 5xx)."""
    requests = errors = 0
    for i in range(minutes * 6):
        at = datetime.fromtimestamp(world.clock.now - minutes_ago * 60 + i * 10, UTC)
        for n, e in world.sim.tick(10, at=at).values():
            requests, errors = requests + n, errors + e
    return requests, errors


def aligned(world: World) -> None:
    """The clock on a minute's start plus 5 s, so each tick's period is plain to see."""
    world.clock.advance(65 - world.clock.now % 60)


def test_the_stables_hour_before_is_recorded_at_provisioning(quiet_world: World) -> None:
    world = quiet_world
    world.sim.error_rates = {**world.sim.error_rates, "v1": 0.01}  # the stable at 1 %
    aligned(world)
    publish(world, 120, 10)  # two hours ago: outside the window
    inside = [publish(world, 50, 10), publish(world, 10, 5)]  # the last minutes: the series exist
    dep_id = start(world)
    dep = world.drive(dep_id, lambda d: d.state != State.PROVISIONING)
    assert dep.state == State.WAITING_READY
    assert dep.baseline is not None
    expected = Counts(sum(r for r, _ in inside), sum(e for _, e in inside))
    assert expected.errors > 0
    assert dep.baseline.stable == expected
    # Whole published periods of the last hour, on period boundaries, ending before the lag.
    lag, period = dep.settings.lag, dep.settings.metric_period
    assert dep.baseline.start % period == dep.baseline.end % period == 0
    assert dep.baseline.end <= world.clock.now - lag
    assert dep.baseline.end - dep.baseline.start <= BASELINE_WINDOW.total_seconds()
    assert dep.baseline.start >= world.clock.now - BASELINE_WINDOW.total_seconds()


def test_a_failed_baseline_read_does_not_fail_the_deployment(quiet_world: World) -> None:
    world = quiet_world
    aligned(world)
    publish(world, 10, 5)

    def refuse(params: dict[str, Any], **_: Any) -> None:
        # Only the baseline's read (it starts about an hour back); the series check reads 10m.
        start = params["StartTime"]
        if world.in_engine and start.timestamp() < world.clock.now - 30 * 60:
            raise ClientError(
                {"Error": {"Code": "InternalServiceError", "Message": "injected"}}, "GetMetricData"
            )

    world.clients.cloudwatch.meta.events.register(
        "before-parameter-build.cloudwatch.GetMetricData", refuse
    )
    dep_id = start(world)
    dep = world.drive(dep_id, lambda d: d.state != State.PROVISIONING)
    assert dep.state == State.WAITING_READY
    assert dep.baseline is None


def test_an_old_record_without_a_baseline_judges_as_before(quiet_world: World) -> None:
    world = quiet_world
    aligned(world)
    publish(world, 10, 5)
    dep_id = start(world)
    dep = world.drive(dep_id, lambda d: d.state != State.PROVISIONING)
    data = dep.model_dump(mode="json")
    assert data["baseline"] is not None
    del data["baseline"]  # as a release before baselines wrote it
    old = Deployment.model_validate_json(json.dumps(data))
    assert old.baseline is None
    # The end of step 2 of a 5x canary showing few 5xx (tests/test_baseline.py): the
    # deployment's minutes alone pass it (p = 0.005 step by step, boundary 0.0027); with an
    # hour before of 180 × 5xx in 36,000 requests the engine hands judge, it fails.
    first = StepCounts(Counts(300, 6), Counts(2700, 14))
    at_step_2 = {"state": State.BAKING, "step_index": 1, "evidence": [first]}
    read = Read(MetricWindow(0, 600), Counts(750, 8), Counts(2250, 12))
    engine = Engine(world.rt)
    verdict = checks.judge(engine, old.model_copy(update=at_step_2), read)
    assert verdict.outcome is Outcome.PASS
    assert verdict.figures.baseline is None and "before the deployment" not in verdict.reason
    hour = Baseline(start=0, end=3600, stable=Counts(36_000, 180))
    now = checks.judge(engine, old.model_copy(update={**at_step_2, "baseline": hour}), read)
    assert now.outcome is Outcome.FAIL
    assert "with the stable's 0.50 % (180 × 5xx of 36,000 req) before the deployment" in now.reason
