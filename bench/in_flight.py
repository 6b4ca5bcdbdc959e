"""Benchmark: hundreds or thousands of deployments in flight, and what each check costs.

N App Mesh services are seeded into moto_server (ECS clusters of 25, seeded by threads), then N
`/canary deploy` commands go to `python -m bot` over HTTP, signed, 25 at a time. One
`python -m workers` with CANARY_WORKERS rollout worker processes provisions them all, shifts each
to its first step and then checks each one every `analysis_interval` while it bakes (the bake is
long, so every deployment stays in flight).

The workers' AWS endpoint is the benchmark's AWS stand-in (bench/aws_standin.py): it answers the
read calls of a check itself (GetMetricData, DescribeServices, DescribeVirtualNode,
DescribeTargetGroups, DescribeAlarms) at `--aws-latency-ms`, costing next to no CPU, and
forwards the rest (provisioning, route weights) to moto. So the figures are the product's, not
moto's, which spends about 145 ms of CPU on one GetMetricData. `--moto` sends every call to moto
(still counted) as the benchmark did before. Both are the default path and right for hundreds.

`--memory` is for thousands: the stand-in also holds ECS, App Mesh and Cloud Map in memory
(bench/aws_memory/), the services are seeded there (a Cloud Map namespace per cluster of 25)
and the engine provisions, shifts and removes its canaries there; nothing reaches moto. moto
cannot provision thousands in time (a ramp of 5,000 through it did not finish in 15 min).
`--breaches K` (with `--memory`) adds K deployments whose canaries the stand-in fails one after
another once the window is measured, and times each until the stand-in receives the UpdateRoute
that puts the stable back at 100 %, while all the others keep being checked.

Once all are baking (or `--ramp-minutes` is up: the run goes on with those baking), the engine's
lateness samples (workers/runtime/lateness.py) are reset and a window of steady state is
measured:

- checks per second achieved against those due, lateness p50/p99/max;
- AWS calls per check, by API (every call the workers made in the window, counted by the
  stand-in, over the checks made in it);
- CPU seconds per 1,000 checks of the rollout worker processes (utime + stime in /proc over the
  window; the processes are the RQ workers registered on the rollout queue);
- Redis memory per deployment: MEMORY USAGE of every key of the run's prefix (RQ's jobs
  included) over the deployments in flight, and INFO's used_memory before and after the ramp
  (the Redis is shared with other work, so that one is noisy);
- then the resident memory of every worker process and of the web process.

    .venv/bin/python -m bench.in_flight [--deployments 500 [5000 ...]] [--workers 1 [4 ...]]
        [--interval 10] [--window 60] [--threads N] [--aws-latency-ms MS] [--moto]
        [--ramp-minutes M] [--memory [--breaches K]]

Several --deployments or --workers run each combination in turn and print one table.
A smoke run: `--deployments 50 --window 20`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from rq import Worker

from bench.aws_memory import MemoryAws
from bench.aws_standin import AwsStandIn, TrafficModel
from bench.common import (
    Figures,
    Row,
    children_of,
    command,
    figures,
    memory_kb,
    print_table,
    seed_memory,
    world,
)
from bench.common import seed as seed_moto
from sandbox.world import World, prefix_keys
from workers.aws.clients import AwsClients
from workers.defaults import WORKER_THREADS
from workers.domain.deployment import Deployment
from workers.domain.state import State
from workers.engine.store import Store
from workers.runtime import lateness
from workers.runtime.queues import queue_names, rq_queue

CLUSTER_SIZE = 25
_TICK = os.sysconf("SC_CLK_TCK")


def children_of_one(pid: int) -> list[int]:
    """The direct children of `pid`."""
    return sorted(set(children_of(pid)) - {g for c in children_of(pid) for g in children_of(c)})


#: The breached deployments' own settings, as bench/breach.py's: a period of a second, so
#: that the time to act is the check's, not the period's (a 60 s period adds up to 60 s).
BREACH_SETTINGS: dict[str, object] = {"metric_period": "1s", "metric_lag": "2s", "min_requests": 30}


def breach_goal(interval: int) -> float:
    """bench/breach.py's goal: the next check, the publication lag it waits, and 1 s."""
    return interval + 2 + 1


def defaults(interval: int) -> dict[str, object]:
    return {
        "steps": [10, 25, 50, 100],
        "bake": "10h",  # every deployment stays in flight, checked every interval
        "analysis_interval": f"{interval}s",
        # Whole periods of the interval, published at once: every check reads its counts.
        "metric_period": f"{min(interval, 60)}s",
        "metric_lag": "1s",
        "ready_timeout": "30m",
        "gate_timeout": "24h",
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, in seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of proc(5)


def rollout_pids(redis: Redis, prefix: str) -> set[int]:
    """The processes of the RQ workers registered on the rollout (default) queue."""
    _, default, _ = queue_names(prefix)
    workers = Worker.all(queue=rq_queue(default, redis))
    return {w.pid for w in workers if w.pid}


def redis_bytes(redis: Redis, prefix: str) -> dict[str, tuple[int, int]]:
    """MEMORY USAGE summed over every key of the prefix, RQ's jobs included: (keys, bytes) of
    the engine's own keys ("state"), RQ's job hashes ("rq:job") and result streams
    ("rq:results")."""
    keys = list(prefix_keys(redis, prefix))
    groups: dict[str, list[int]] = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.memory_usage(key)
            sizes = pipe.execute()
        for key, size in zip(chunk, sizes, strict=True):
            if size is None:  # expired since listed (a registry keeps ids of expired jobs)
                continue
            name = key.decode()
            group = next((g for g in ("rq:job", "rq:results") if name.startswith(g)), "state")
            counts = groups.setdefault(group, [0, 0])
            counts[0] += 1
            counts[1] += int(size or 0)
    return {g: (n, b) for g, (n, b) in groups.items()}


def used_memory(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


@dataclass
class Result:
    deployments: int
    interval: int
    workers: int
    threads: int
    aws_latency_ms: float
    standin: bool
    seed_seconds: float
    ramp_seconds: float
    #: Deployments baking when the window began (fewer than `deployments` if the ramp was cut).
    baking: int
    window_seconds: float
    checks: int
    lateness: Figures
    deploy_acks: Figures
    calls: Counter[str] = field(default_factory=Counter)
    #: Calls of the window that reached moto (the stand-in answered the others).
    forwarded: Counter[str] = field(default_factory=Counter)
    rollout_cpu: float = 0.0
    rollout_pids: int = 0
    moto_cpu: float = 0.0
    #: (keys, bytes) by group: "state", "rq:job", "rq:results" (see redis_bytes).
    redis: dict[str, tuple[int, int]] = field(default_factory=dict)
    used_memory_delta: int = 0
    processes: list[tuple[int, str, int, int]] = field(default_factory=list)  # pid, name, rss, pss
    web: tuple[int, int] = (0, 0)
    #: Breach (canary failing) -> route at 100 % stable, as the stand-in saw it; -> step_failed.
    restored: list[float] = field(default_factory=list)
    detected: list[float] = field(default_factory=list)

    @property
    def redis_bytes(self) -> int:
        return sum(b for _, b in self.redis.values())

    @property
    def checks_per_second(self) -> float:
        return self.checks / self.window_seconds

    @property
    def calls_per_check(self) -> float:
        return sum(self.calls.values()) / max(1, self.checks)

    @property
    def cpu_per_1000(self) -> float:
        return self.rollout_cpu / max(1, self.checks) * 1000

    @property
    def workers_rss_mb(self) -> float:
        return sum(w[2] for w in self.processes) / 1024

    @property
    def workers_pss_mb(self) -> float:
        return sum(w[3] for w in self.processes) / 1024


def measure(
    deployments: int = 500,
    interval: int = 10,
    window: float = 60.0,
    *,
    workers: int = 1,
    threads: int | None = None,
    aws_latency_ms: float = 0.0,
    standin: bool = True,
    ramp_minutes: float = 7.0,
    memory: bool = False,
    breaches: int = 0,
    seed: int = 18,
) -> Result:
    """`memory`: the stand-in holds ECS, App Mesh and Cloud Map itself (bench/aws_memory/) and
    the services are seeded there, not into moto: what thousands of deployments need.
    `breaches` (with `memory`): so many more deployments, whose canaries fail one after another
    once the window is measured (see `_breaches`)."""
    if breaches and not memory:
        raise ValueError("--breaches needs --memory (the stand-in sees the route's writes)")
    keys = [f"svc{i:04d}" for i in range(deployments)]
    services = {k: f"c{i // CLUSTER_SIZE:03d}" for i, k in enumerate(keys)}
    broken = [f"brk{i:02d}" for i in range(breaches)]
    services.update({k: "cbrk" for k in broken})
    fronts: list[AwsStandIn] = []
    held = MemoryAws() if memory else None
    model = TrafficModel()

    def front(moto: str) -> str:
        if not fronts:
            proxy = AwsStandIn(moto, aws_latency_ms / 1000, model, answer=standin, memory=held)
            fronts.append(proxy.__enter__())
        return fronts[0].url

    def seeder(clients: AwsClients, mesh: Mapping[str, str]) -> float:
        if held is None:
            return seed_moto(clients, mesh)
        front(str(clients.ecs.meta.endpoint_url))
        return seed_memory(held, mesh)

    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            world(
                "inflight",
                services,
                defaults(interval),
                workdir=Path(tmp),
                worker_env={
                    "CANARY_WORKERS": str(workers),
                    "CANARY_READY_POLL": "2",
                    **({"CANARY_WORKER_THREADS": str(threads)} if threads else {}),
                },
                aws_front=front,
                seeder=seeder,
                entries={k: BREACH_SETTINGS for k in broken},
            ) as w,
        ):
            result = _run(
                w, [*keys, *broken], interval, window, workers, threads, ramp_minutes, fronts[0]
            )
            if held is not None and broken:
                result.restored, result.detected = _breaches(
                    w, held, model, broken, interval, random.Random(seed)
                )
            return result
    finally:
        for proxy in fronts:
            proxy.__exit__()


def _run(
    w: World,
    keys: list[str],
    interval: int,
    window: float,
    workers: int,
    threads: int | None,
    ramp_minutes: float,
    proxy: AwsStandIn,
) -> Result:
    redis, store = w.rt.redis, w.rt.store
    print(f"seeded {len(keys)} services in {w.seed_seconds:.1f} s", flush=True)
    memory_before = used_memory(redis)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        acks = list(
            pool.map(
                lambda key: command(
                    w, f"deploy {key} 123456789012.dkr.ecr.us-east-1.amazonaws.com/{key}:v2"
                )[2],
                keys,
            )
        )
    deadline = started + ramp_minutes * 60
    while True:
        baking = _baking(store)
        if baking >= len(keys) or time.monotonic() > deadline:
            break
        print(f"  {baking} baking after {time.monotonic() - started:.0f} s", flush=True)
        # Reading every record costs this process CPU the workers share: 5,000 every 20 s.
        time.sleep(max(5.0, len(keys) / 250))
    ramp = time.monotonic() - started
    print(f"{baking} of {len(keys)} baking {ramp:.0f} s after the first command", flush=True)
    memory_after = used_memory(redis)

    # The first whole metric period of every step has ended: each check reads its counts.
    time.sleep(min(interval, 60) * 2)
    redis.delete(lateness.key(w.prefix))
    pids = rollout_pids(redis, w.prefix)
    moto = w.process("moto").pid
    cpu0 = {p: cpu_seconds(p) for p in [*pids, moto]}
    calls0, forwarded0 = proxy.counts(), proxy.forwarded_counts()
    before, t0 = _total_checks(store), time.monotonic()
    time.sleep(window)
    after, t1 = _total_checks(store), time.monotonic()
    calls, forwarded = proxy.counts() - calls0, proxy.forwarded_counts() - forwarded0
    cpu1 = {p: cpu_seconds(p) for p in [*pids, moto]}
    samples = lateness.samples(redis, w.prefix)
    held = redis_bytes(redis, w.prefix)
    # One listing of all through the web process before its memory is read.
    command(w, "status")
    supervisor = w.workers[0].pid
    processes = [(supervisor, "supervisor + watchdog", *memory_kb(supervisor))]
    for child in children_of_one(supervisor):
        name = "rollout worker" if child in pids else "notify worker or scheduler"
        processes.append((child, name, *memory_kb(child)))
    return Result(
        deployments=len(keys),
        interval=interval,
        workers=workers,
        threads=threads or WORKER_THREADS,
        aws_latency_ms=proxy.delay * 1000,
        standin=proxy.answer,
        seed_seconds=w.seed_seconds,
        ramp_seconds=ramp,
        baking=baking,
        window_seconds=t1 - t0,
        checks=after - before,
        lateness=figures(samples or [0.0]),
        deploy_acks=figures(acks),
        calls=calls,
        forwarded=forwarded,
        rollout_cpu=sum(cpu1[p] - cpu0[p] for p in pids),
        rollout_pids=len(pids),
        moto_cpu=cpu1[moto] - cpu0[moto],
        redis=held,
        used_memory_delta=memory_after - memory_before,
        processes=processes,
        web=memory_kb(w.process("bot").pid),
    )


def _breaches(
    w: World,
    memory: MemoryAws,
    model: TrafficModel,
    keys: list[str],
    interval: int,
    rng: random.Random,
) -> tuple[list[float], list[float]]:
    """Fail each of `keys`' canaries in turn, at a random phase against the checks' rhythm (the
    stand-in tells 50 % of its requests as 5xx from that second on), and time it until the
    stand-in receives the UpdateRoute that puts the stable back at 100 %, while every other
    deployment keeps being checked; also until the engine's step_failed event."""
    writes: dict[str, list[tuple[float, dict[str, int]]]] = {}
    memory.on_route = lambda mesh, router, route, weights: writes.setdefault(router, []).append(
        (time.time(), weights)
    )
    restored: list[float] = []
    detected: list[float] = []
    for key in keys:
        dep = w.deployment_of(key)
        if dep is None or dep.canary is None:
            print(f"  breach {key}: not deployed, skipped", flush=True)
            continue
        time.sleep(rng.uniform(0, interval))
        t0 = time.time()
        model.failing[dep.canary.ecs_service_name] = t0
        stable = {f"{key}-v1": 100}
        deadline = t0 + 3 * interval + 60
        back = None
        while back is None and time.time() < deadline:
            seen = writes.get(f"{key}-vr", [])
            back = next((t for t, ws in seen if t >= t0 and ws == stable), None)
            time.sleep(0.02)
        if back is None:
            print(f"  breach {key}: not back on the stable after {deadline - t0:.0f} s", flush=True)
            continue
        restored.append(back - t0)
        failed = [e for e in w.rt.store.events(dep.id) if e.kind == "step_failed"]
        if failed:
            detected.append(failed[0].at - t0)
        print(f"  breach {key}: 100 % stable {back - t0:.2f} s after the canary failed", flush=True)
    return restored, detected


def _deployments(store: Store) -> list[Deployment]:
    return [d for d in (store.get(i) for i in store.active_ids()) if d is not None]


def _baking(store: Store) -> int:
    return sum(1 for d in _deployments(store) if d.state == State.BAKING and d.checks >= 1)


def _total_checks(store: Store) -> int:
    return sum(d.checks for d in _deployments(store))


def rows(r: Result) -> list[Row]:
    due = r.baking / r.interval
    setup = (
        f"{r.deployments} deployments"
        + (f" ({r.baking} baking)" if r.baking < r.deployments else "")
        + f", a check every {r.interval} s, {r.workers} worker process"
        + ("es" if r.workers > 1 else "")
        + f" × {r.threads} threads"
        + (", AWS stand-in" if r.standin else ", moto")
        + (f" +{r.aws_latency_ms:.0f} ms" if r.aws_latency_ms else "")
    )
    by_api = ", ".join(
        f"{api.split('.', 1)[1]} {n / max(1, r.checks):.2f}" for api, n in r.calls.most_common()
    )
    return [
        Row(
            f"in flight: {setup}",
            "one state machine per deployment",
            "each check late by p99 ≤ 2 s",
            f"{r.checks_per_second:.1f} checks/s of {due:.0f} due; lateness "
            + r.lateness.text("s", 1, 2),
            r.baking == r.deployments and r.lateness.p99 <= 2.0,
        ),
        Row(
            f"AWS calls per check ({setup})",
            "3 (GetMetricData, DescribeServices, DescribeVirtualNode)",
            "≤ 0.2",
            f"{r.calls_per_check:.2f} ({sum(r.calls.values())} calls / {r.checks} checks: "
            f"{by_api or 'none'})",
            r.calls_per_check <= 0.2,
        ),
        Row(
            f"rollout-worker CPU per 1,000 checks ({setup})",
            "-",
            "≤ 2 s",
            f"{r.cpu_per_1000:.1f} s ({r.rollout_cpu:.1f} s over {r.rollout_pids} process"
            f"{'es' if r.rollout_pids > 1 else ''}, {r.checks} checks); moto "
            f"{r.moto_cpu:.1f} s",
            r.cpu_per_1000 <= 2.0,
        ),
        Row(
            f"Redis memory per deployment ({setup})",
            "-",
            "-",
            f"{r.redis_bytes / max(1, r.baking) / 1024:.1f} KiB by MEMORY USAGE ("
            + ", ".join(
                f"{g} {n} keys {b / max(1, r.baking) / 1024:.1f} KiB"
                for g, (n, b) in sorted(r.redis.items())
            )
            + f"); used_memory "
            f"{r.used_memory_delta / max(1, r.baking) / 1024:+.1f} KiB (shared Redis, noisy)",
        ),
        Row(
            f"resident memory after {r.deployments} deployments",
            "-",
            "web ≤ 120 MB, worker ≤ 150 MB",
            f"web {r.web[0] / 1024:.0f} MB; workers {r.workers_rss_mb:.0f} MB RSS summed over "
            f"{len(r.processes)} processes ({r.workers_pss_mb:.0f} MB PSS)",
            r.web[0] / 1024 <= 120 and r.workers_pss_mb <= 150 * r.workers,
        ),
    ]


def breach_rows(r: Result) -> list[Row]:
    if not r.restored:
        return []
    goal = breach_goal(r.interval)
    restored = figures(r.restored)
    return [
        Row(
            f"breach → 100 % stable while {r.baking - len(r.restored)} others run (a check every "
            f"{r.interval} s, {r.workers} worker process{'es' if r.workers > 1 else ''})",
            "bench.breach: 12 services",
            f"≤ interval + metric_lag + 1 s = {goal:.0f} s",
            restored.text("s", 1, 2),
            restored.max <= goal,
        )
    ]


def report(r: Result) -> None:
    print(
        f"seeding {r.seed_seconds:.0f} s; ramp to {r.baking} baking {r.ramp_seconds:.0f} s; "
        f"window {r.window_seconds:.0f} s, {r.checks} checks"
    )
    print(f"deploy command acks during the ramp: {r.deploy_acks.text()}")
    print(f"AWS calls in the window by API (forwarded to moto): {dict(r.calls.most_common())}")
    print(f"  forwarded: {dict(r.forwarded.most_common())}")
    for pid, name, rss, pss in r.processes:
        print(
            f"  worker pid {pid:<7} {name:<28} VmRSS {rss / 1024:6.1f} MB  Pss {pss / 1024:6.1f} MB"
        )
    if r.restored:
        print(f"breach → route 100 % stable: {figures(r.restored).text('s', 1, 2)}")
    if r.detected:
        print(f"breach → the engine's step_failed event: {figures(r.detected).text('s', 1, 2)}")
    web_rss, web_pss = r.web[0] / 1024, r.web[1] / 1024
    print(f"  web    python -m bot  VmRSS {web_rss:6.1f} MB  Pss {web_pss:6.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, nargs="+", default=[500])
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="CANARY_WORKERS")
    parser.add_argument("--interval", type=int, default=10, help="analysis_interval, seconds")
    parser.add_argument("--window", type=float, default=60.0, help="steady-state seconds")
    parser.add_argument("--threads", type=int, default=None, help="CANARY_WORKER_THREADS")
    parser.add_argument(
        "--aws-latency-ms", type=float, default=0.0, help="added to each AWS call of the workers"
    )
    parser.add_argument("--moto", action="store_true", help="every AWS call to moto (counted)")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="ECS, App Mesh and Cloud Map in the stand-in's memory, not moto (for thousands)",
    )
    parser.add_argument(
        "--breaches",
        type=int,
        default=0,
        help="with --memory: so many more deployments whose canaries fail after the window",
    )
    parser.add_argument(
        "--ramp-minutes", type=float, default=7.0, help="then measure those baking so far"
    )
    args = parser.parse_args()
    table: list[Row] = []
    for deployments in args.deployments:
        for workers in args.workers:
            print(f"== {deployments} deployments, {workers} worker process(es)", flush=True)
            result = measure(
                deployments,
                args.interval,
                args.window,
                workers=workers,
                threads=args.threads,
                aws_latency_ms=args.aws_latency_ms,
                standin=not args.moto,
                ramp_minutes=args.ramp_minutes,
                memory=args.memory,
                breaches=args.breaches,
            )
            report(result)
            table += rows(result) + breach_rows(result)
            print_table(rows(result) + breach_rows(result))
    print()
    print_table(table)


if __name__ == "__main__":
    main()
