"""The deployment's chart: the data it is drawn from (steps, gates, failure, threshold) and a
valid PNG of the expected size. Pixels are not compared: the data is what the tests pin."""

from __future__ import annotations

import struct

from tests.fakes import catalogue
from workers.analysis.judge import Counts, Verdict, judge
from workers.domain.deployment import Deployment
from workers.domain.events import (
    Approved,
    Event,
    GateOpened,
    Promoted,
    RollbackStarted,
    Shifted,
    StepFailed,
    StepPassed,
)
from workers.domain.samples import CheckSample
from workers.domain.state import State
from workers.slack.chart import DPI, HEIGHT, LATENCY_HEIGHT, WIDTH, chart_data, render_png

T0 = 1_700_000_000.0


def deployment(state: State = State.ROLLED_BACK) -> Deployment:
    return Deployment(
        id="4f2a9c1e",
        service="payments",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v42",
        requester="U1",
        settings=catalogue(max_error_rate=2.5).service("payments"),
        created_at=T0,
        updated_at=T0,
        state_since=T0,
        state=state,
    )


def verdict() -> Verdict:
    return judge(
        Counts(1000, 1), Counts(9000, 9), max_error_rate_pct=1, min_requests=1, bake_complete=True
    )


def sample(minute: float, step: int, ce: int, cr: int = 1000, **latency: float) -> CheckSample:
    weight = {1: 10, 2: 25}[step]
    return CheckSample(
        at=T0 + minute * 60,
        step=step,
        weight=weight,
        canary_requests=cr,
        canary_errors=ce,
        stable_requests=9000,
        stable_errors=45,
        outcome="baking",
        **latency,
    )


def rolled_back_story() -> tuple[list[CheckSample], list[Event]]:
    """Step 1 at minute 1, passed at 6, gate until the approval at 10; step 2 fails at 12."""
    samples = [sample(2, 1, 2), sample(4, 1, 4), sample(6, 1, 5), sample(8, 1, 5)]
    samples += [sample(11, 2, 30), sample(12, 2, 60)]
    events: list[Event] = [
        Shifted(at=T0 + 60, step=1, weight=10, route="r"),
        StepPassed(at=T0 + 360, step=1, weight=10, verdict=verdict()),
        GateOpened(at=T0 + 360, step=1, next_step=2, next_weight=25, timeout_at=T0 + 9e4),
        Approved(at=T0 + 600, step=2, actor="U2", weight=25),
        Shifted(at=T0 + 610, step=2, weight=25, route="r"),
        StepFailed(at=T0 + 720, step=2, weight=25, verdict=verdict()),
        RollbackStarted(at=T0 + 720, step=2, by="canary check", reason="5xx", weight=25),
    ]
    return samples, events


def test_the_data_has_each_step_apart_with_the_rates_each_check_judged() -> None:
    samples, events = rolled_back_story()
    data = chart_data(deployment(), samples, events, now=T0 + 3600)
    assert [[p.step for p in g] for g in data.steps] == [[1, 1, 1, 1], [2, 2]]
    assert [p.minute for p in data.steps[1]] == [11.0, 12.0]
    assert [p.canary_pct for p in data.steps[0]] == [0.2, 0.4, 0.5, 0.5]
    assert data.steps[1][-1].canary_pct == 6.0  # the figure the failing verdict quoted
    assert {p.stable_pct for p in data.points} == {0.5}
    assert data.threshold_pct == 2.5  # the service's max_error_rate
    assert data.has_latency is False


def test_steps_gates_and_the_failure_are_marked() -> None:
    samples, events = rolled_back_story()
    data = chart_data(deployment(), samples, events, now=T0 + 3600)
    assert [(m.minute, m.weight) for m in data.step_marks] == [(1.0, 10), (610 / 60, 25)]
    assert [(g.start, g.end, g.label) for g in data.gates] == [(6.0, 10.0, "gate before 25 %")]
    # The rollback the failed check started is said by the failure's own mark.
    assert [(m.minute, m.kind, m.label) for m in data.marks] == [
        (12.0, "fail", "step 2 failed: rolled back")
    ]
    # A finished deployment's chart ends at its last event, not at the time it is drawn.
    assert data.end_minute == 12.0
    assert "payments" in data.title and "4f2a9c1e" in data.title


def test_a_gate_still_open_is_shaded_up_to_now_and_an_abort_is_its_own_mark() -> None:
    samples, events = rolled_back_story()
    waiting = chart_data(deployment(State.AWAITING_APPROVAL), samples[:4], events[:3], now=T0 + 900)
    assert [(g.start, g.end) for g in waiting.gates] == [(6.0, 15.0)]
    assert waiting.end_minute == 15.0

    abort = RollbackStarted(at=T0 + 540, by="abort", reason="aborted", actor="U2", weight=10)
    aborted = chart_data(deployment(), samples[:4], [*events[:3], abort], now=T0 + 900)
    assert [(g.start, g.end) for g in aborted.gates] == [(6.0, 9.0)]
    assert [(m.kind, m.label) for m in aborted.marks] == [("rollback", "rollback (abort)")]


def test_a_promotion_is_marked() -> None:
    samples, events = rolled_back_story()
    promoted = Promoted(at=T0 + 1200, took=1200, checks=6, old=None)
    data = chart_data(deployment(State.PROMOTED), samples[:4], [*events[:4], promoted], now=0)
    assert [(m.minute, m.kind) for m in data.marks] == [(20.0, "promoted")]
    assert [(g.start, g.end) for g in data.gates] == [(6.0, 10.0)]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert png[-8:-4] == b"IEND"
    return width, height


def test_the_chart_is_a_png_of_the_stated_size() -> None:
    samples, events = rolled_back_story()
    png = render_png(chart_data(deployment(), samples, events, now=T0 + 3600))
    assert png_size(png) == (round(WIDTH * DPI), round(HEIGHT * DPI))


def test_latency_gets_a_second_panel_when_the_samples_carry_it() -> None:
    samples, events = rolled_back_story()
    timed = [
        s.model_copy(update={"canary_latency_ms": 120.0 + i, "stable_latency_ms": 118.0})
        for i, s in enumerate(samples)
    ]
    data = chart_data(deployment(), timed, events, now=T0 + 3600)
    assert data.has_latency is True
    assert [p.canary_ms for p in data.steps[1]] == [124.0, 125.0]
    png = render_png(data)
    assert png_size(png) == (round(WIDTH * DPI), round((HEIGHT + LATENCY_HEIGHT) * DPI))


def test_a_deployment_without_checks_still_draws() -> None:
    data = chart_data(deployment(State.BAKING), [], [], now=T0 + 120)
    assert data.steps == [] and data.notes == ["no check has been made yet"]
    assert png_size(render_png(data))[0] == round(WIDTH * DPI)
