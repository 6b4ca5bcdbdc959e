"""An in-process world for engine tests: moto, fakeredis, a hand-moved clock, simulated users."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from tests.fakes import FakeClock, RecordingScheduler
from workers.aws.alb.router import AlbRouter
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.clients import AwsClients
from workers.domain.deployment import Deployment
from workers.engine.outbox import LoggingNotifier, deliver_pending
from workers.runtime.context import Runtime
from workers.runtime.jobs import runner

#: Longest slice of simulated time between two traffic ticks (seconds).
TICK = 30.0
#: The traffic backends every engine scenario runs on.
BACKENDS = ("appmesh", "alb")
#: The AWS calls a weight shift makes, per backend.
SHIFT_CALLS = {"appmesh": ("DescribeRoute", "UpdateRoute"), "alb": ("DescribeRules", "ModifyRule")}


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

    @property
    def scheduler(self) -> RecordingScheduler:
        return self.rt.scheduler  # type: ignore[return-value]

    def weights(self) -> dict[str, int]:
        """The split as the backend holds it: virtual nodes or target groups -> percent."""
        if self.backend == "alb":
            return AlbRouter(
                self.clients.elbv2, listener_rule=self.seeded["listener_rule"]
            ).read_weights()
        return AppMeshRouter(
            self.clients.appmesh, "prod-mesh", "payments-vr", "payments-route"
        ).read_weights()

    def traffic_targets(self) -> set[str]:
        """The names of what traffic can be sent to: virtual nodes, or target groups."""
        if self.backend == "alb":
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
