"""The sandbox's simulated users publish their traffic a whole second at a time, whatever the
timing of the thread that does it (a busy machine wakes it late)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandbox.world import World


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Wakes(threading.Event):
    """The traffic thread's waits: each one lasts the next of `gaps` (seconds of `clock`), then
    the world stops."""

    def __init__(self, clock: Clock, gaps: Sequence[float]) -> None:
        super().__init__()
        self.clock, self.gaps = clock, list(gaps)

    def wait(self, timeout: float | None = None) -> bool:
        if not self.gaps:
            return True
        self.clock.now += self.gaps.pop(0)
        return False


class Users:
    """A simulator that records the seconds it is asked to publish."""

    def __init__(self) -> None:
        self.calls: list[list[float]] = []

    def tick_seconds(self, starts: Sequence[datetime]) -> None:
        self.calls.append([s.timestamp() for s in starts])


def test_a_late_wake_publishes_every_second_it_missed_each_whole_and_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(1_000.25)
    monkeypatch.setattr("sandbox.world.time", SimpleNamespace(time=clock))
    world = World(tmp_path, {})
    # on time, on time, stalled 2.75 s (a machine at load 30), on time, on time
    world._stop = Wakes(clock, [0.5, 0.5, 2.75, 0.5, 0.5])
    users = Users()

    world._traffic({"search": users})  # type: ignore[dict-item]

    # Each second once it is over, stamped at its start: the stall's three in one go, each whole.
    assert users.calls == [[], [1000.0], [1001.0, 1002.0, 1003.0], [], [1004.0]]
