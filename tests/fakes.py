"""Fakes for unit tests: a clock you move by hand and a scheduler that records jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

import fakeredis

from workers.domain.catalogue import Catalogue, parse_catalogue
from workers.domain.events import EVENTS, Event
from workers.engine.store import Store
from workers.runtime.context import Runtime


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
    kind: str  # "run" or "notify"
    dep_id: str
    version: int | None
    due: float
    urgent: bool = False


@dataclass
class RecordingScheduler:
    """Records every job the engine asks for, with the time it is due."""

    clock: FakeClock
    jobs: list[Job] = field(default_factory=list)

    def run(self, dep_id: str, version: int, *, delay: float = 0, urgent: bool = False) -> None:
        self.jobs.append(Job("run", dep_id, version, self.clock() + delay, urgent))

    def notify(self, dep_id: str, *, delay: float = 0) -> None:
        self.jobs.append(Job("notify", dep_id, None, self.clock() + delay))

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


SERVICE = {
    "cluster": "prod",
    "mesh": "prod-mesh",
    "virtual_router": "payments-vr",
    "route": "payments-route",
}


def catalogue(**overrides: object) -> Catalogue:
    """A catalogue with one service, `payments`, seeded by sandbox.seed with its defaults."""
    defaults = {
        "bake": "5m",
        "analysis_interval": "1m",
        "metric_period": "60s",
        **overrides,
    }
    return parse_catalogue({"defaults": defaults, "services": {"payments": dict(SERVICE)}})


def fake_runtime(cat: Catalogue | None = None, clock: FakeClock | None = None) -> Runtime:
    """A Runtime on fakeredis with a recording scheduler and a hand-moved clock."""
    clock = clock or FakeClock()
    redis = fakeredis.FakeRedis()
    cat = cat or catalogue()
    return Runtime(
        redis=redis,
        store=Store(redis, "test"),
        scheduler=RecordingScheduler(clock),
        clock=clock,
        catalogue_loader=lambda: cat,
    )


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
