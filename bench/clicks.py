"""Benchmark: a click on Approve or Abort, until the route's weights have changed in AWS.

Deployments run on `python -m workers` against moto_server, with simulated traffic so their
steps pass. A person clicks Approve at each gate (or Abort at the first one): a signed
block_actions request to `python -m bot` over HTTP. The time runs from sending the click until
moto's DescribeRoute shows the new weights (polled every 20 ms), i.e. what Envoy would be told.
For an approval it also runs until the gate's message in the Slack emulator has lost its buttons
(what the approvers see: the notifier closes the gate together with the shift that followed).

    .venv/bin/python -m bench.clicks [--approve 8] [--abort 12] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bench.common import (
    OPS,
    Figures,
    Row,
    click,
    deploy,
    figures,
    print_table,
    weights_changed,
)
from bench.common import world as bench_world
from sandbox.world import World
from workers.domain.state import State
from workers.domain.versions import AppMeshStable
from workers.slack.buttons import ABORT, APPROVE

#: Time compressed: seconds where production has minutes.
DEFAULTS = {
    "steps": [10, 25, 50, 100],
    "bake": "2s",
    "analysis_interval": "1s",
    "metric_period": "1s",
    "metric_lag": "2s",
    "min_requests": 30,
    "post_promotion_bake": "2s",
    "ready_timeout": "30s",
    "gate_timeout": "10m",
}
POLL = 0.02
#: Longest wait for one click's effect before the sample counts as lost.
CLICK_TIMEOUT = 15.0


def at_gate(dep: object) -> bool:
    return getattr(dep, "state", None) == State.AWAITING_APPROVAL


def click_until(
    world: World,
    key: str,
    action_id: str,
    want: dict[str, int] | None,
    closed: list[float] | None = None,
) -> float:
    """Click `action_id` on the service's open gate; seconds until its route changed.

    With `closed`, then waits until the gate's message has no buttons, and appends those seconds.
    """
    dep = world.deployment_of(key)
    assert dep is not None and at_gate(dep), f"{key} is not at a gate"

    def read_weights() -> dict[str, int]:
        return world.weights(key)

    before = read_weights()
    value = f"{dep.id}:{dep.step_number + 1}"
    started = time.perf_counter()
    status, _, _ = click(world, action_id, value, user=OPS)
    if status != 200:
        raise RuntimeError(f"click {action_id} on {key}: HTTP {status}")
    deadline = started + CLICK_TIMEOUT
    while time.perf_counter() < deadline:
        if want is None and weights_changed(read_weights, before):
            took = time.perf_counter() - started
            if closed is not None:
                closed.append(gate_closed(world, dep.id, dep.step_number + 1, started))
            return took
        if want is not None and not weights_changed(read_weights, want):
            return time.perf_counter() - started
        time.sleep(POLL)
    raise TimeoutError(f"{key}: route unchanged {CLICK_TIMEOUT}s after {action_id}\n")


def gate_closed(world: World, dep_id: str, step: int, started: float) -> float:
    """Seconds from `started` until the gate message of `step` shows no buttons (CLICK_TIMEOUT
    when it still shows them then)."""
    deadline = started + CLICK_TIMEOUT
    while time.perf_counter() < deadline:
        notes = world.rt.store.notes(dep_id)
        channel, ts = notes.get("card_channel"), notes.get(f"gate:{step}")
        message = world.slack.message(channel, ts) if channel and ts else None
        if message is not None and not message.buttons():
            return time.perf_counter() - started
        time.sleep(POLL)
    # Not an abort of the run: the notifier may still be waiting out Slack's per-channel post
    # limit (every deployment here shares one channel); the row counts these apart.
    print(f"  {dep_id}: gate {step} still open {CLICK_TIMEOUT:.0f} s after the click")
    return CLICK_TIMEOUT


class Clicks(NamedTuple):
    approve: Figures
    abort: Figures
    #: Approve click → the gate's message without buttons.
    gate_closed: Figures
    seconds: float
    #: Gates still showing buttons CLICK_TIMEOUT after the click (counted as CLICK_TIMEOUT).
    gate_closed_timeouts: int = 0


def measure(approvers: int = 8, aborters: int = 12, threads: int | None = None) -> Clicks:
    """The figures of each kind of click, and the seconds the run took."""
    started = time.perf_counter()
    approve_keys = [f"ap{i:02d}" for i in range(approvers)]
    abort_keys = [f"ab{i:02d}" for i in range(aborters)]
    keys = approve_keys + abort_keys
    with (
        tempfile.TemporaryDirectory() as tmp,
        bench_world(
            "clicks",
            {k: "prod" for k in keys},
            DEFAULTS,
            workdir=Path(tmp),
            traffic=keys,
            worker_env={
                "CANARY_WATCHDOG_GRACE": "5",
                "CANARY_WATCHDOG_INTERVAL": "1",
                **({"CANARY_WORKER_THREADS": str(threads)} if threads else {}),
            },
        ) as world,
    ):
        for key in keys:
            deploy(world, key)
        approvals: list[float] = []
        aborts: list[float] = []
        closed: list[float] = []
        # Approve every gate of the approve services, as the gates open; abort the others at
        # their first gate. One click at a time, while the other deployments keep running.
        pending_gates = {k: 3 for k in approve_keys}
        pending_aborts = set(abort_keys)
        deadline = time.monotonic() + 240
        while (pending_gates or pending_aborts) and time.monotonic() < deadline:
            acted = False
            for key in list(pending_gates):
                dep = world.deployment_of(key)
                if dep is not None and at_gate(dep):
                    approvals.append(click_until(world, key, APPROVE, None, closed))
                    pending_gates[key] -= 1
                    if not pending_gates[key]:
                        del pending_gates[key]
                    acted = True
            for key in list(pending_aborts):
                dep = world.deployment_of(key)
                if dep is not None and at_gate(dep) and isinstance(dep.stable, AppMeshStable):
                    stable = {dep.stable.virtual_node: 100}
                    aborts.append(click_until(world, key, ABORT, stable))
                    pending_aborts.discard(key)
                    acted = True
            if not acted:
                time.sleep(0.1)
        if pending_gates or pending_aborts:
            print(f"warning: gates never reached: {sorted(pending_gates) + sorted(pending_aborts)}")
    took = time.perf_counter() - started
    timeouts = sum(1 for c in closed if c >= CLICK_TIMEOUT)
    return Clicks(figures(approvals), figures(aborts), figures(closed), took, timeouts)


def still_open(timeouts: int) -> str:
    return f"; {timeouts} still open at {CLICK_TIMEOUT:.0f} s, counted as such" if timeouts else ""


def rows(clicks: Clicks) -> list[Row]:
    approve, abort = clicks.approve, clicks.abort
    return [
        Row(
            "Approve click → route weights changed",
            "a gate polled every 60 s",
            "p99 ≤ 1 s",
            approve.text(),
            approve.p99 <= 1.0,
        ),
        Row(
            "Abort click → 100 % stable",
            "a gate polled every 60 s",
            "p50 ≤ 500 ms",
            abort.text(),
            abort.p50 <= 0.5,
        ),
        Row(
            "Approve click → gate message closed (buttons gone, approval and shift shown)",
            "-",
            "-",
            clicks.gate_closed.text() + still_open(clicks.gate_closed_timeouts),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approve", type=int, default=8, help="services approved at 3 gates")
    parser.add_argument("--abort", type=int, default=12, help="services aborted at the first gate")
    parser.add_argument("--threads", type=int, default=None, help="CANARY_WORKER_THREADS")
    args = parser.parse_args()
    clicks = measure(args.approve, args.abort, args.threads)
    print_table(rows(clicks))
    print(f"({clicks.seconds:.0f} s)")


if __name__ == "__main__":
    main()
