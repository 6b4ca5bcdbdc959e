"""Benchmark: a breach written to CloudWatch, until the route sends 100 % to the stable again.

Deployments bake at their first step (10 %) with simulated traffic, checked every
`analysis_interval` by `python -m workers` against moto_server. At a random moment a burst of
5xx for the canary is written to CloudWatch (PutMetricData, as the CloudWatch agent would); the
time runs from that write until moto's DescribeRoute shows the stable alone (polled every
20 ms). Nobody clicks: the check finds the breach and rolls back by itself.

    .venv/bin/python -m bench.breach [--services 12] [--interval 2]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Figures, Row, deploy, figures, print_table, weights_changed
from bench.common import world as bench_world
from sandbox.metrics_feed import DelayedPublisher, put_envoy_counts
from workers.analysis.templates import Version
from workers.aws.appmesh.backend import revision_of
from workers.aws.backends import backend_for
from workers.domain.state import State
from workers.domain.versions import AppMeshCanary, AppMeshStable
from workers.runtime import lateness

POLL = 0.02
RESTORE_TIMEOUT = 30.0
#: Seconds a check waits before reading a period (CloudWatch's publication lag): a breach
#: written now is read at the first check at least this long after its period ends.
METRIC_LAG = 2


def defaults(interval: int) -> dict[str, object]:
    return {
        "steps": [10, 25, 50, 100],
        "bake": "10m",  # stays at its first step, checked every interval
        "analysis_interval": f"{interval}s",
        "metric_period": "1s",
        "metric_lag": f"{METRIC_LAG}s",
        "min_requests": 30,
        "ready_timeout": "30s",
        "gate_timeout": "10m",
    }


@dataclass(frozen=True)
class Breach:
    restored: Figures  # breach written -> route at 100 % stable
    detected: Figures  # breach written -> the check that failed the step
    bare_query: Figures  # one GetMetricData of a check, alone, at the end of the run
    lateness: Figures  # every engine job of the run: how late it started


def measure(services: int = 12, interval: int = 2, seed: int = 6) -> tuple[Breach, float]:
    """(the figures, seconds the run took)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    keys = [f"br{i:02d}" for i in range(services)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        bench_world(
            "breach",
            {k: "prod" for k in keys},
            defaults(interval),
            workdir=Path(tmp),
            traffic=keys,
        ) as world,
    ):
        for key in keys:
            deploy(world, key)
        baking = world.wait_all(
            keys, lambda d: d.state == State.BAKING and d.checks >= 1, timeout=120
        )
        samples: list[float] = []
        detected: list[float] = []
        for key in keys:
            # A random phase against the checks' own rhythm.
            time.sleep(rng.uniform(0, interval))
            dep = baking[key]
            assert isinstance(dep.stable, AppMeshStable) and isinstance(dep.canary, AppMeshCanary)
            stable = {dep.stable.virtual_node: 100}
            target = Version(
                world.cluster_of(key),
                dep.stable.family,
                revision_of(dep.canary.task_definition_arn),
                dep.canary.ecs_service_name,
                dep.canary.virtual_node,
            )
            t0, wall = time.perf_counter(), time.time()
            feed = DelayedPublisher(world.clients.cloudwatch)
            put_envoy_counts(feed, target, requests=2000, errors=1000)
            deadline = t0 + RESTORE_TIMEOUT
            while time.perf_counter() < deadline:
                if not weights_changed(lambda k=key: world.weights(k), stable):
                    samples.append(time.perf_counter() - t0)
                    break
                time.sleep(POLL)
            else:
                raise TimeoutError(f"{key}: not back on the stable after {RESTORE_TIMEOUT}s")
            failed = [e for e in world.rt.store.events(dep.id) if e.kind == "step_failed"]
            if failed:
                detected.append(failed[0].at - wall)
        # moto's own speed for the check's query, now that CloudWatch holds the run's traffic.
        backend = backend_for(dep.settings, world.clients)
        start = datetime.fromtimestamp(dep.step_started_at or dep.state_since, UTC)
        bare = []
        for _ in range(10):
            t = time.perf_counter()
            backend.counts(
                dep.recorded_stable(), dep.recorded_canary(), start=start, end=datetime.now(UTC)
            )
            bare.append(time.perf_counter() - t)
        late = lateness.samples(world.rt.redis, world.prefix)
    return Breach(figures(samples), figures(detected), figures(bare), figures(late)), (
        time.perf_counter() - started
    )


def report(b: Breach) -> None:
    print(f"  breach written → the check that failed the step: {b.detected.text('s', 1, 2)}")
    print(f"  one check's GetMetricData on moto, alone, at the end: {b.bare_query.text()}")
    print(f"  lateness of the run's engine jobs: {b.lateness.text()}")


def goal(interval: int) -> int:
    """The goal in seconds: the next check (one interval), the publication lag it waits, 1 s."""
    return interval + METRIC_LAG + 1


def rows(b: Breach, interval: int) -> list[Row]:
    result = b.restored
    return [
        Row(
            f"breach in CloudWatch → 100 % stable (analysis_interval {interval} s)",
            "60 s analysis loops",
            # the check reads a period only metric_lag after it ends, so the lag adds to the wait
            f"≤ interval + metric_lag + 1 s = {goal(interval)} s",
            result.text("s", 1, 2),
            result.max <= goal(interval),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=12)
    parser.add_argument("--interval", type=int, default=2, help="analysis_interval in seconds")
    args = parser.parse_args()
    result, took = measure(args.services, args.interval)
    report(result)
    print_table(rows(result, args.interval))
    print(f"({took:.0f} s)")


if __name__ == "__main__":
    main()
