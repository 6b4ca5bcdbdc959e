"""Benchmark: AWS and Slack calls per weight step of one whole deployment.

The engine runs in this process (its jobs run in order by a small in-memory scheduler, at the
time RQ would run them) so a botocore `before-call` hook on its clients sees every AWS call of
every job; Slack calls are counted by the Slack emulator around each delivery of the outbox.
AWS is moto_server with simulated traffic (written by clients of its own, not counted); Redis is
the real one under a prefix of its own. Gates are approved through the engine's API, once the
gate's message has been delivered (as a person clicks only what they see). It runs three
times: with manual gates between steps; with none; and with none and too little traffic for the
first step to be judged at the end of its bake (a hold). Bake and check interval keep the
defaults' ratio (5 checks per 5-minute bake), so whatever a check costs shows up per step.

    .venv/bin/python -m bench.calls_per_step
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from redis import Redis

from bench.common import (
    CHANNEL,
    DEV,
    IMAGE,
    MESH,
    OPS,
    REDIS_URL,
    TOKEN,
    Row,
    aws_clients,
    clean_redis,
    new_prefix,
    print_table,
    seed,
)
from sandbox.processes import start_moto
from sandbox.simulator import TrafficSimulator
from sandbox.slack_emulator import SlackEmulator
from sandbox.world import PUBLICATION_LAG
from workers import api
from workers.aws.clients import AwsClients
from workers.domain.state import State
from workers.engine.outbox import deliver_pending
from workers.engine.store import Store
from workers.runtime.catalogue_file import CatalogueFile
from workers.runtime.context import Runtime
from workers.runtime.jobs import runner
from workers.slack.client import make_client
from workers.slack.notifier import SlackNotifier

KEY = "payments"
DEFAULTS = {
    "steps": [10, 25, 50, 100],
    # 5 m / 1 m in the defaults: a bake is judged 5 times.
    "bake": "5s",
    "analysis_interval": "1s",
    "metric_period": "1s",
    "metric_lag": "2s",
    "min_requests": 30,
    "post_promotion_bake": "3s",
    "ready_timeout": "30s",
    "gates": "manual",
}


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    kind: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)


class InlineScheduler:
    """A workers.runtime.queues.Scheduler keeping jobs in a heap; one run job per (id, version),
    like RQ."""

    def __init__(self) -> None:
        self.jobs: list[_Job] = []
        self._seq = itertools.count()
        self._runs: set[tuple[str, int]] = set()

    def run(self, dep_id: str, version: int, *, delay: float = 0, urgent: bool = False) -> None:
        if (dep_id, version) in self._runs:
            return
        self._runs.add((dep_id, version))
        heapq.heappush(
            self.jobs, _Job(time.time() + delay, next(self._seq), "run", (dep_id, version))
        )

    def notify(self, dep_id: str, *, delay: float = 0) -> None:
        heapq.heappush(self.jobs, _Job(time.time() + delay, next(self._seq), "notify", (dep_id,)))

    def pop_due(self, limit: float) -> _Job | None:
        """The next job once it is due (sleeping until then), None when none is due by `limit`."""
        if not self.jobs:
            return None
        wait = self.jobs[0].due - time.time()
        if time.time() + max(wait, 0) > limit:
            return None
        if wait > 0:
            time.sleep(wait)
        return heapq.heappop(self.jobs)


class CallCounter:
    """Counts the AWS operations made through some clients (botocore `before-call` hook)."""

    def __init__(self, clients: AwsClients) -> None:
        self.calls: list[str] = []
        for client in (clients.ecs, clients.appmesh, clients.servicediscovery, clients.cloudwatch):
            client.meta.events.register("before-call.*.*", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def take(self) -> list[str]:
        taken, self.calls = self.calls, []
        return taken


@dataclass
class Counts:
    """What one deployment cost, by engine state and by event kind."""

    aws_by_state: dict[str, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    slack_by_kind: Counter[str] = field(default_factory=Counter)
    slack_methods: Counter[str] = field(default_factory=Counter)
    slack_total: int = 0
    #: Calls of the deliveries that belong to the steps: no start (card, provisioned, ready)
    #: and no end (promoted) in them.
    slack_steps: int = 0
    steps: int = 0
    final: str = ""


_START_OR_END = frozenset({"requested", "provisioned", "ready", "promoted", "rolled_back"})


#: Requests per second through the route: ample (10 % of it is 20/s), or thin (3/s at 10 %: the
#: first step has 15 of the 30 requests it needs when its bake ends).
AMPLE, THIN = 200, 30


def run_deployment(workdir: Path, gates: str = "manual", traffic_rps: int = AMPLE) -> Counts:
    """One deployment of KEY from request to promotion; count its calls."""
    redis = Redis.from_url(REDIS_URL)
    prefix = new_prefix("calls")
    moto, endpoint = start_moto(workdir)
    slack = SlackEmulator(channels=[CHANNEL], post_rate=None).start()
    try:
        seeding = aws_clients(endpoint)
        seed(seeding, {KEY: "prod"})
        traffic = TrafficSimulator(
            seeding,
            cluster="prod",
            mesh=MESH,
            virtual_router=f"{KEY}-vr",
            route=f"{KEY}-route",
            requests_per_second=traffic_rps,
            publication_lag=PUBLICATION_LAG,
        )
        # The stable has served before anyone deploys, as running services do: provisioning
        # first checks that CloudWatch has its series (workers.engine.steps.provision). Ten
        # seconds of traffic stamped long enough ago to be published already.
        now = time.time()
        for back in range(20, 10, -1):
            traffic.tick(1.0, at=datetime.fromtimestamp(now - back, UTC))
        path = workdir / "canary.yaml"
        service = {
            "cluster": "prod",
            "mesh": MESH,
            "virtual_router": f"{KEY}-vr",
            "route": f"{KEY}-route",
        }
        defaults = {**DEFAULTS, "gates": gates}
        path.write_text(yaml.safe_dump({"defaults": defaults, "services": {KEY: service}}))
        clients = aws_clients(endpoint)
        counter = CallCounter(clients)
        scheduler = InlineScheduler()
        rt = Runtime(
            redis=redis,
            store=Store(redis, prefix),
            scheduler=scheduler,
            aws=lambda: clients,
            catalogue_loader=CatalogueFile(path),
            ready_poll=0.5,
        )
        notifier = SlackNotifier(make_client(TOKEN, slack.base_url))
        answer = api.start_deployment(
            KEY, IMAGE.format(key=KEY, tag="v2"), requester=DEV, channel=CHANNEL, rt=rt
        )
        assert answer.ok and answer.deployment is not None, answer.refusal
        dep_id = answer.deployment.id
        counts = Counts()
        last_tick = time.time()
        deadline = time.time() + 180
        while True:
            dep = rt.store.get(dep_id)
            assert dep is not None
            shown = rt.store.delivered_upto(dep_id) + 1 >= len(rt.store.events(dep_id))
            if dep.state == State.AWAITING_APPROVAL and shown:
                decided = api.decide_gate(
                    dep_id, dep.step_number + 1, approve=True, actor=OPS, rt=rt
                )
                assert decided.ok, decided.refusal
                counter.take()  # the click's own reads are the bot's, not a step's
            job = scheduler.pop_due(deadline)
            if job is None:
                break
            now = time.time()
            with contextlib.suppress(Exception):
                traffic.tick(now - last_tick)
            last_tick = now
            if job.kind == "run":
                before = rt.store.get(dep_id)
                assert before is not None
                runner(rt).run(*job.args)
                counts.aws_by_state[before.state.value].append(counter.take())
                if before.state == State.SHIFTING:
                    counts.steps += 1
            else:
                seen = len(slack.calls)
                first = rt.store.delivered_upto(dep_id) + 1
                deliver_pending(rt, notifier, *job.args)
                kinds = [e.kind for e in rt.store.events(dep_id, first)]
                new_calls = slack.calls[seen:]
                counts.slack_total += len(new_calls)
                counts.slack_methods.update(c.method for c in new_calls)
                label = "+".join(dict.fromkeys(kinds)) or "(card refresh)"
                counts.slack_by_kind[label] += len(new_calls)
                if not _START_OR_END.intersection(kinds):
                    counts.slack_steps += len(new_calls)
        final = rt.store.get(dep_id)
        counts.final = final.state.value if final else "gone"
        return counts
    finally:
        slack.stop()
        moto.stop()
        clean_redis(redis, prefix)


def rows(counts: Counts, others: dict[str, Counts] | None = None) -> list[Row]:
    shifts = [len(c) for c in counts.aws_by_state.get("shifting", [])]
    # A job whose deployment moved on meanwhile (a gate's check after the click) makes no call.
    checks = [
        len(c)
        for state in ("baking", "awaiting_approval", "post_promotion", "holding")
        for c in counts.aws_by_state.get(state, [])
        if c
    ]
    return [
        Row(
            "AWS calls per weight step (botocore hook)",
            "3 in AWS's own sample pipeline",
            "≤ 3",
            f"shift: p50 {statistics.median(shifts):.0f}, max {max(shifts)} (N={len(shifts)}); "
            f"each check: p50 {statistics.median(checks):.0f}, max {max(checks)} "
            f"(N={len(checks)})",
            max(shifts) <= 3,
        ),
        slack_row("manual gates", counts),
    ] + [slack_row(which, c) for which, c in (others or {}).items()]


def slack_row(which: str, counts: Counts) -> Row:
    steps = max(counts.steps, 1)
    per_step = counts.slack_steps / steps
    holding = sum(n for kinds, n in counts.slack_by_kind.items() if "holding" in kinds)
    result = (
        f"{per_step:.1f} ({counts.slack_steps} calls over {counts.steps} steps; whole deployment "
        f"{counts.slack_total} calls, card, start and end included)"
    )
    if holding:
        # A hold is a stage of its own that people are told about: shown, not judged.
        result += f"; the hold's own calls: {holding}"
    return Row(
        f"Slack calls per step, {which}",
        "-",
        "-" if holding else "≤ 2",
        result,
        None if holding else per_step <= 2,
    )


def report(counts: Counts) -> None:
    print(f"deployment ended {counts.final}; {counts.steps} weight steps")
    print("AWS calls by engine state (calls per job):")
    for state, jobs in counts.aws_by_state.items():
        ops = Counter(op for job in jobs for op in job)
        per = ", ".join(f"{op} {n}" for op, n in ops.most_common())
        print(f"  {state:<18} {len(jobs):>3} jobs, {[len(j) for j in jobs]}  ({per})")
    print("Slack calls by delivered events:")
    for kinds, n in counts.slack_by_kind.items():
        print(f"  {n:>3}  {kinds}")
    print(
        "Slack calls by method: " + ", ".join(f"{m} {n}" for m, n in counts.slack_methods.items())
    )


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print_table(measure())


def measure() -> list[Row]:
    """The three runs, reported; the table's rows."""
    runs = {
        "manual gates": {"gates": "manual"},
        "no gates": {"gates": "auto"},
        "no gates, thin traffic (a hold)": {"gates": "auto", "traffic_rps": THIN},
    }
    counted: dict[str, Counts] = {}
    for which, how in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            counted[which] = run_deployment(Path(tmp), **how)  # type: ignore[arg-type]
    for which, counts in counted.items():
        print(f"{which}:")
        report(counts)
    gated = counted.pop("manual gates")
    return rows(gated, counted)


if __name__ == "__main__":
    main()
