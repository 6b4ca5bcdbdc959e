"""How long the chart of a deployment takes to draw (workers/slack/chart.py): goal under 300 ms.

A deployment's whole story, as the notifier draws it at a rollback: four steps of a 5-minute
bake checked every minute, a gate after each step waited for a few minutes (checked meanwhile),
and a failure at the third step; once with the 5xx panel alone, once with latency as well.
Timed: building the chart's data and rendering the PNG, in this process after one warm-up
render (matplotlib's import and font cache are paid once per worker process, not per chart).
Both the wall-clock time and this process's CPU time of each render are measured: on a shared
2-CPU machine the wall clock mostly measures the other processes' load, the CPU time what one
chart costs. The goal is judged on the median CPU time, and the wall clock is reported beside it.

    .venv/bin/python -m bench.chart_render [--renders N]
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from bench.common import Figures, Row, figures, print_table
from workers.analysis.judge import Outcome
from workers.domain.catalogue import parse_catalogue
from workers.domain.deployment import Deployment
from workers.domain.events import (
    Approved,
    Event,
    GateOpened,
    RollbackStarted,
    RouteRestored,
    Shifted,
    StepFailed,
    StepPassed,
)
from workers.domain.samples import CheckSample
from workers.domain.state import State
from workers.slack.chart import chart_data, render_png

GOAL_MS = 300.0
T0 = 1_700_000_000.0


def story(*, latency: bool, seed: int = 7) -> tuple[Deployment, list[CheckSample], list[Event]]:
    """A deployment rolled back at its third step, with its samples and events."""
    rng = random.Random(seed)
    settings = parse_catalogue(
        {
            "services": {
                "payments": {
                    "cluster": "prod",
                    "mesh": "prod-mesh",
                    "virtual_router": "payments-vr",
                    "route": "payments-route",
                }
            }
        }
    ).service("payments")
    dep = Deployment(
        id="4f2a9c1e",
        service="payments",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v42",
        requester="U0DEV",
        settings=settings,
        created_at=T0,
        updated_at=T0,
        state_since=T0,
        state=State.ROLLED_BACK,
    )
    samples: list[CheckSample] = []
    events: list[Event] = []
    at = T0 + 120
    rate = 100.0  # requests a second to the whole service
    for step, weight in enumerate((10, 25, 50), start=1):
        events.append(Shifted(at=at, step=step, weight=weight, route="route payments-route"))
        canary = [0, 0]
        stable = [0, 0]
        bad = step == 3
        for minute in range(1, 9 if step < 3 else 4):
            n = int(rate * 60 * weight / 100)
            canary[0] += n
            canary[1] += sum(rng.random() < (0.03 if bad else 0.004) for _ in range(n))
            m = int(rate * 60 * (100 - weight) / 100)
            stable[0] += m
            stable[1] += int(m * 0.005)
            at_check = at + 60 * minute
            outcome = "fail" if bad and minute == 3 else ("pass" if minute == 5 else "baking")
            samples.append(
                CheckSample(
                    at=at_check,
                    step=step,
                    weight=weight,
                    canary_requests=canary[0],
                    canary_errors=canary[1],
                    stable_requests=stable[0],
                    stable_errors=stable[1],
                    outcome=outcome,
                    canary_latency_ms=(180 if bad else 120) + rng.random() * 30
                    if latency
                    else None,
                    stable_latency_ms=120 + rng.random() * 20 if latency else None,
                )
            )
        if step < 3:
            passed = at + 300
            events.append(
                StepPassed(at=passed, step=step, weight=weight, verdict=_verdict(Outcome.PASS))
            )
            events.append(
                GateOpened(
                    at=passed,
                    step=step,
                    next_step=step + 1,
                    next_weight=(25, 50)[step - 1],
                    timeout_at=passed + 86400,
                )
            )
            at = passed + 180
            events.append(Approved(at=at, step=step + 1, actor="U0OPS", weight=(25, 50)[step - 1]))
        else:
            failed = at + 180
            events.append(StepFailed(at=failed, step=3, weight=50, verdict=_verdict(Outcome.FAIL)))
            events.append(RollbackStarted(at=failed, by="canary check", reason="5xx", weight=50))
            events.append(RouteRestored(at=failed + 1, seconds=0.4, stable="payments"))
    for i, e in enumerate(events):
        e.seq = i
    return dep, samples, events


def _verdict(outcome: Outcome):  # type: ignore[no-untyped-def]
    from workers.analysis.judge import Counts, judge

    fail = outcome == Outcome.FAIL
    return judge(
        Counts(3000, 150 if fail else 10),
        Counts(27000, 135),
        max_error_rate_pct=1.0,
        min_requests=100,
        bake_complete=True,
    )


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU figures (seconds) of the renders, and the PNG's size in bytes."""

    wall: Figures
    cpu: Figures
    png_bytes: int


def measure(renders: int = 30, *, latency: bool) -> Timing:
    """`renders` draws of the story."""
    dep, samples, events = story(latency=latency)
    png = render_png(chart_data(dep, samples, events, now=T0 + 3600))  # warm-up
    wall, cpu = [], []
    for _ in range(renders):
        t0, c0 = time.perf_counter(), time.process_time()
        png = render_png(chart_data(dep, samples, events, now=T0 + 3600))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Timing(figures(wall), figures(cpu), len(png))


def rows(errors_only: Timing, with_latency: Timing) -> list[Row]:
    def row(name: str, t: Timing) -> Row:
        return Row(
            f"chart render, {name}",
            "(new)",
            f"median CPU < {GOAL_MS:.0f} ms",
            f"CPU {t.cpu.text()}; wall {t.wall.text()}; PNG {t.png_bytes:,} bytes",
            t.cpu.p50 * 1000 < GOAL_MS,
        )

    return [row("5xx panel", errors_only), row("5xx + latency panels", with_latency)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=30)
    args = parser.parse_args()
    plain = measure(args.renders, latency=False)
    both = measure(args.renders, latency=True)
    print_table(rows(plain, both))


if __name__ == "__main__":
    main()
