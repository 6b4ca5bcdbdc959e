"""Benchmark: hundreds of deployments in flight on ONE worker process, and what it costs.

500 App Mesh services are seeded into moto_server (spread over ECS clusters of 25, seeded by
threads), then 500 `/canary deploy` commands go to `python -m bot` over HTTP, signed, 25 at a
time. One `python -m workers` (CANARY_WORKERS=1: one rollout worker, one notify worker, each with
RQ's scheduler) provisions them all, shifts each to its first step and then checks each one every
`analysis_interval` while it bakes (the bake is long, so every deployment stays in flight).

Once all are baking, the engine's lateness samples (workers/lateness.py: how late each job
started against when it was due) are reset and a window of steady state is measured: checks per
second achieved, lateness p50/p99/max, then the resident memory of every worker process and of
the web process.

    .venv/bin/python -m bench.in_flight [--deployments 500] [--interval 10] [--window 60]
        [--threads N] [--aws-latency-ms MS]

`--threads` sets CANARY_WORKER_THREADS of the one rollout worker process (the product's default
when omitted); `--aws-latency-ms` answers every AWS call of the workers that much later (a proxy
in front of moto), as AWS's endpoints do, where moto on loopback answers in about a millisecond.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    Figures,
    Row,
    World,
    children_of,
    figures,
    memory_kb,
    print_table,
)
from workers.defaults import WORKER_THREADS
from workers.domain.state import State
from workers.runtime import lateness

CLUSTER_SIZE = 25


def children_of_one(pid: int) -> list[int]:
    """The direct children of `pid`."""
    return sorted(set(children_of(pid)) - {g for c in children_of(pid) for g in children_of(c)})


def defaults(interval: int) -> dict[str, object]:
    return {
        "steps": [10, 25, 50, 100],
        "bake": "1h",  # every deployment stays in flight, checked every interval
        "analysis_interval": f"{interval}s",
        "metric_period": "60s",
        "ready_timeout": "10m",
        "gate_timeout": "24h",
    }


@dataclass
class Result:
    deployments: int
    interval: int
    threads: int
    aws_latency_ms: float
    seed_seconds: float
    ramp_seconds: float
    window_seconds: float
    checks: int
    lateness: Figures
    deploy_acks: Figures
    workers: list[tuple[int, str, int, int]] = field(default_factory=list)  # pid, name, rss, pss
    web: tuple[int, int] = (0, 0)

    @property
    def checks_per_second(self) -> float:
        return self.checks / self.window_seconds

    @property
    def workers_rss_mb(self) -> float:
        return sum(w[2] for w in self.workers) / 1024

    @property
    def workers_pss_mb(self) -> float:
        return sum(w[3] for w in self.workers) / 1024


def measure(
    deployments: int = 500,
    interval: int = 10,
    window: float = 60.0,
    *,
    threads: int | None = None,
    aws_latency_ms: float = 0.0,
) -> Result:
    keys = [f"svc{i:03d}" for i in range(deployments)]
    services = {k: f"c{i // CLUSTER_SIZE:02d}" for i, k in enumerate(keys)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        World(
            "inflight",
            services,
            defaults(interval),
            workdir=Path(tmp),
            worker_env={
                "CANARY_WORKERS": "1",
                "CANARY_READY_POLL": "2",
                **({"CANARY_WORKER_THREADS": str(threads)} if threads else {}),
            },
            aws_latency=aws_latency_ms / 1000,
        ) as world,
    ):
        print(f"seeded {deployments} services in {world.seed_seconds:.1f} s", flush=True)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
            acks = list(
                pool.map(
                    lambda key: world.command(
                        f"deploy {key} 123456789012.dkr.ecr.us-east-1.amazonaws.com/{key}:v2"
                    )[2],
                    keys,
                )
            )
        world.wait_all(
            keys, lambda d: d.state == State.BAKING and d.checks >= 1, timeout=420, poll=2.0
        )
        ramp = time.monotonic() - started
        print(f"all {deployments} baking {ramp:.0f} s after the first command", flush=True)

        def total_checks() -> int:
            deps = [world.rt.store.get(i) for i in world.rt.store.active_ids()]
            return sum(d.checks for d in deps if d is not None)

        world.redis.delete(lateness.key(world.prefix))
        before, t0 = total_checks(), time.monotonic()
        time.sleep(window)
        after, t1 = total_checks(), time.monotonic()
        samples = lateness.samples(world.redis, world.prefix)
        # One listing of all 500 through the web process before its memory is read.
        world.command("status")
        assert world.workers is not None and world.bot is not None
        workers = [(world.workers.pid, "supervisor + watchdog", *memory_kb(world.workers.pid))]
        roles = iter(["rollout worker", "notify worker"])
        for child in sorted(children_of_one(world.workers.pid)):
            workers.append((child, next(roles, "worker"), *memory_kb(child)))
            workers += [(g, "  its RQ scheduler", *memory_kb(g)) for g in children_of(child)]
        web = memory_kb(world.bot.pid)
        return Result(
            deployments=deployments,
            interval=interval,
            threads=threads or WORKER_THREADS,
            aws_latency_ms=aws_latency_ms,
            seed_seconds=world.seed_seconds,
            ramp_seconds=ramp,
            window_seconds=t1 - t0,
            checks=after - before,
            lateness=figures(samples),
            deploy_acks=figures(acks),
            workers=workers,
            web=web,
        )


def rows(r: Result) -> list[Row]:
    due = r.deployments / r.interval
    return [
        Row(
            f"deployments in flight on one worker process ({r.deployments}, a check every "
            f"{r.interval} s each; {r.threads} thread{'s' if r.threads > 1 else ''}"
            + (f"; AWS calls +{r.aws_latency_ms:.0f} ms" if r.aws_latency_ms else "")
            + ")",
            "one state machine per deployment",
            "500, each check late by p99 ≤ 2 s",
            f"{r.checks_per_second:.1f} checks/s of {due:.0f} due; lateness "
            + r.lateness.text("s", 1, 2),
            r.deployments >= 500 and r.lateness.p99 <= 2.0,
        ),
        Row(
            f"resident memory after {r.deployments} deployments",
            "-",
            "web ≤ 120 MB, worker ≤ 150 MB",
            f"web {r.web[0] / 1024:.0f} MB; workers {r.workers_rss_mb:.0f} MB RSS summed over "
            f"{len(r.workers)} processes ({r.workers_pss_mb:.0f} MB PSS)",
            r.web[0] / 1024 <= 120 and r.workers_pss_mb <= 150,
        ),
    ]


def report(r: Result) -> None:
    print(
        f"seeding {r.seed_seconds:.0f} s; ramp to all baking {r.ramp_seconds:.0f} s; window "
        f"{r.window_seconds:.0f} s, {r.checks} checks"
    )
    print(f"deploy command acks during the ramp: {r.deploy_acks.text()}")
    for pid, name, rss, pss in r.workers:
        print(
            f"  worker pid {pid:<7} {name:<24} VmRSS {rss / 1024:6.1f} MB  Pss {pss / 1024:6.1f} MB"
        )
    web_rss, web_pss = r.web[0] / 1024, r.web[1] / 1024
    print(f"  web    python -m bot  VmRSS {web_rss:6.1f} MB  Pss {web_pss:6.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=500)
    parser.add_argument("--interval", type=int, default=10, help="analysis_interval, seconds")
    parser.add_argument("--window", type=float, default=60.0, help="steady-state seconds")
    parser.add_argument("--threads", type=int, default=None, help="CANARY_WORKER_THREADS")
    parser.add_argument(
        "--aws-latency-ms", type=float, default=0.0, help="added to each AWS call of the workers"
    )
    args = parser.parse_args()
    result = measure(
        args.deployments,
        args.interval,
        args.window,
        threads=args.threads,
        aws_latency_ms=args.aws_latency_ms,
    )
    report(result)
    print_table(rows(result))


if __name__ == "__main__":
    main()
