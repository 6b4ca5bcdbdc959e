"""The tests' doubles, in one place: a clock moved by hand, a scheduler that records jobs, a
Runtime on fakeredis, and the in-process World of the engine scenarios (moto, simulated time
and traffic). The real-process world is sandbox.world.World (tests/stack.py starts it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import fakeredis

from workers.aws.alb.router import AlbRouter
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.clients import AwsClients
from workers.domain.catalogue import Catalogue, parse_catalogue
from workers.domain.deployment import Deployment
from workers.domain.events import EVENTS, Event
from workers.engine.outbox import LoggingNotifier, deliver_pending
from workers.engine.store import Store
from workers.runtime.context import Runtime
from workers.runtime.jobs import runner
from workers.runtime.queues import SlotSet, slot_name


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Job:
    kind: str  # "run", "notify" or "slot" (SlotRecorder)
    dep_id: str
    version: int | None
    due: float
    urgent: bool = False
    #: Seconds from the request to `due`.
    delay: float = 0.0


@dataclass
class RecordingScheduler:
    """workers.runtime.queues.Scheduler that records every job asked for, with its due time."""

    clock: Callable[[], float] = time.time
    jobs: list[Job] = field(default_factory=list)
    #: `/canary check` requests: (service, response_url, channel).
    checks: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: Chart jobs: (dep_id, occasion, delay, attempt).
    charts: list[tuple[str, str, float, int]] = field(default_factory=list)

    def run(self, dep_id: str, version: int, *, delay: float = 0, urgent: bool = False) -> None:
        self.jobs.append(Job("run", dep_id, version, self.clock() + delay, urgent, delay))

    def notify(self, dep_id: str, *, delay: float = 0) -> None:
        self.jobs.append(Job("notify", dep_id, None, self.clock() + delay, delay=delay))

    def check(self, service: str, *, response_url: str, channel: str | None) -> None:
        self.checks.append((service, response_url, channel))

    def chart(self, dep_id: str, what: str, *, delay: float = 0, attempt: int = 0) -> None:
        self.charts.append((dep_id, what, delay, attempt))

    @property
    def runs(self) -> list[Job]:
        """The run jobs asked for, in order (a copy)."""
        return [j for j in self.jobs if j.kind == "run"]

    @property
    def notifies(self) -> list[Job]:
        """The notify jobs asked for, in order (a copy)."""
        return [j for j in self.jobs if j.kind == "notify"]

    def pop_due(self, kind: str = "run") -> Job | None:
        """The earliest job of `kind` due now, removed from the list."""
        due = [j for j in self.jobs if j.kind == kind and j.due <= self.clock()]
        if not due:
            return None
        job = min(due, key=lambda j: (not j.urgent, j.due))
        self.jobs.remove(job)
        return job

    def next_due(self, kind: str = "run") -> float | None:
        times = [j.due for j in self.jobs if j.kind == kind]
        return min(times) if times else None


@dataclass
class SlotRecorder(RecordingScheduler):
    """A RecordingScheduler with slots (workers.runtime.queues.SlotScheduler): checks go into
    the SlotSet in its Redis, and the first of a slot records that slot's job (kind "slot",
    its slot as `due`); run a slot job with workers.engine.slots.run_slot."""

    slots: SlotSet = field(default_factory=lambda: SlotSet(fakeredis.FakeRedis(), "test"))

    def run_in_slots(self, checks: Sequence[tuple[str, int, float]]) -> None:
        for slot in self.slots.add(checks):
            self.jobs.append(Job("slot", slot_name(slot), None, slot, delay=slot - self.clock()))

    def slot_job(self, slot: float) -> None:
        self.jobs.append(Job("slot", slot_name(slot), None, self.clock()))


SERVICE = {
    "cluster": "prod",
    "mesh": "prod-mesh",
    "virtual_router": "payments-vr",
    "route": "payments-route",
}


def catalogue(service: dict[str, object] | None = None, **overrides: object) -> Catalogue:
    """A catalogue with one service, `payments`, seeded by sandbox.seed with its defaults
    (`overrides`) and keys of its own (`service`)."""
    defaults = {
        "bake": "5m",
        "analysis_interval": "1m",
        "metric_period": "60s",
        **overrides,
    }
    entry = {**SERVICE, **(service or {})}
    return parse_catalogue({"defaults": defaults, "services": {"payments": entry}})


def no_aws() -> Any:
    raise AssertionError("the bot and the notifier must never call AWS")


def fake_runtime(
    cat: Catalogue | None = None,
    clock: Callable[[], float] | None = None,
    *,
    aws: Callable[[], AwsClients] | None = None,
    slots: bool = False,
) -> Runtime:
    """A Runtime on fakeredis with a recording scheduler and a hand-moved clock (or `clock`);
    `aws` gives its AWS clients (default: the process's, built on first use); `slots`: its
    scheduler runs later checks in slot jobs (SlotRecorder), else each check is a run job."""
    clock = clock or FakeClock()
    redis = fakeredis.FakeRedis()
    cat = cat or catalogue()
    extra = {"aws": aws} if aws is not None else {}
    scheduler = SlotRecorder(clock, slots=SlotSet(redis, "test")) if slots else None
    return Runtime(
        redis=redis,
        store=Store(redis, "test"),
        scheduler=scheduler or RecordingScheduler(clock),
        clock=clock,
        catalogue_loader=lambda: cat,
        **extra,  # type: ignore[arg-type]
    )


#: Longest slice of simulated time between two traffic ticks (seconds).
TICK = 30.0
#: The traffic backends every engine scenario runs on.
BACKENDS = ("appmesh", "alb")
#: ...and in process only (router ecs: its deployment emulator answers a client in process).
IN_PROCESS_BACKENDS = (*BACKENDS, "ecs")
#: The AWS calls a weight shift makes, per backend.
SHIFT_CALLS = {"appmesh": ("DescribeRoute", "UpdateRoute"), "alb": ("DescribeRules", "ModifyRule")}


# the in-process world of the engine scenarios ---------------------------------------------------
class Simulator(Protocol):
    def tick(self, seconds: float, at: datetime | None = None) -> dict[str, tuple[int, int]]: ...


@dataclass
class World:
    rt: Runtime
    clients: AwsClients
    clock: FakeClock
    sim: Simulator
    #: True while an engine job runs (to tell its AWS calls from the simulated users').
    in_engine: bool = False
    backend: str = "appmesh"
    #: What the seed created (names and ARNs).
    seeded: dict[str, str] = field(default_factory=dict)
    #: Router ecs: the ECS service-deployment emulator (sandbox.ecs_deployments.EcsDeployments).
    ecs: Any = None

    @property
    def scheduler(self) -> RecordingScheduler:
        return self.rt.scheduler  # type: ignore[return-value]

    def weights(self) -> dict[str, int]:
        """The split as the backend holds it: virtual nodes, target groups or (router ecs) task
        definitions -> percent."""
        if self.backend == "ecs":
            shares = self.ecs.production_traffic(cluster="prod", service="payments")
            return {td.rsplit("/", 1)[-1]: int(round(w)) for td, w in shares.items()}
        if self.backend == "alb":
            return AlbRouter(
                self.clients.elbv2, listener_rule=self.seeded["listener_rule"]
            ).read_weights()
        return AppMeshRouter(
            self.clients.appmesh, "prod-mesh", "payments-vr", "payments-route"
        ).read_weights()

    def names(self, dep_id: str) -> tuple[str, str]:
        """What `weights` calls the stable and the canary of a deployment."""
        if self.backend == "ecs":
            dep = self.dep(dep_id)
            canary = dep.canary.task_definition_arn if dep.canary else "?"
            return self.seeded["task_definition_arn"].rsplit("/", 1)[-1], canary.rsplit("/", 1)[-1]
        return "payments-v1", f"payments-{dep_id}"

    def traffic_targets(self) -> set[str]:
        """The names of what traffic can be sent to: virtual nodes, or target groups."""
        if self.backend in ("alb", "ecs"):
            groups = self.clients.elbv2.describe_target_groups()["TargetGroups"]
            return {g["TargetGroupName"] for g in groups}
        nodes = self.clients.appmesh.list_virtual_nodes(meshName="prod-mesh")["virtualNodes"]
        return {n["virtualNodeName"] for n in nodes}

    def dep(self, dep_id: str) -> Deployment:
        found = self.rt.store.get(dep_id)
        assert found is not None
        return found

    def run_due(self) -> bool:
        """Run one due job (urgent first); False when none is due."""
        job = self.scheduler.pop_due("run")
        if job is None:
            return False
        assert job.version is not None
        self.in_engine = True
        try:
            runner(self.rt).run(job.dep_id, job.version)
        finally:
            self.in_engine = False
        return True

    def deliver(self, dep_id: str) -> None:
        self.scheduler.jobs[:] = [j for j in self.scheduler.jobs if j.kind != "notify"]
        deliver_pending(self.rt, LoggingNotifier(), dep_id)

    def drive(
        self, dep_id: str, until: Callable[[Deployment], bool], *, max_seconds: float = 6 * 3600
    ) -> Deployment:
        """Run jobs and move the clock (publishing traffic) until `until` holds."""
        deadline = self.clock.now + max_seconds
        while True:
            dep = self.dep(dep_id)
            if until(dep):
                return dep
            if self.run_due():
                continue
            nxt = self.scheduler.next_due("run")
            assert nxt is not None, f"nothing scheduled in state {dep.state}"
            assert self.clock.now < deadline, f"still {dep.state} after {max_seconds}s"
            step = min(max(nxt - self.clock.now, 0.0), TICK)
            self.clock.advance(step)
            if step > 0:
                self.sim.tick(step, at=datetime.fromtimestamp(self.clock.now - step / 2, UTC))


#: The fields each kind of event requires, with dull values: for tests that only need the kind.
_REQUIRED: dict[str, dict[str, object]] = {
    "requested": {"actor": "U1", "image": "x/payments:v2"},
    "provisioned": {"canary": {}},
    "ready": {"running": 1, "desired": 1},
    "shifted": {"weight": 10, "route": "route payments-route"},
    "approved": {"actor": "U1", "weight": 25},
    "refused": {"actor": "U1", "action": "approve", "reason": "not_at_gate"},
    "rolled_back": {
        "by": "abort",
        "reason": "aborted",
        "kept": False,
        "took": 1.0,
        "canary_existed": True,
    },
}


def sample_event(kind: str, at: float = 1.0) -> Event:
    """An event of `kind` whose fields do not matter to the test."""
    return EVENTS.validate_python({"kind": kind, "at": at, **_REQUIRED[kind]})
