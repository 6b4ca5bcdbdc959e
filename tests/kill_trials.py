"""Worker killed with SIGKILL at random points of random rollouts, a new one started each time.

Each round deploys one canary per service (healthy or 20 % 5xx at random), kills the worker
process group at random moments, and then checks every deployment: it ended promoted or rolled
back, the route matches that end, a rolled-back canary left nothing behind, and its Slack
thread shows no message twice and tells each shift of traffic once. Every other service has
manual gates, which a person approves as soon as they open. `python -m tests.kill_trials
--trials 200` runs the long version; `--backend alb` or `--backend ecs` (ECS's own LINEAR
deployments, sandbox.ecs_moto) run it on another backend.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.slack_emulator import SlackEmulator
from tests.stack import IMAGE, World, start_stack
from workers import api
from workers.domain.state import State

CHANNEL = "CKILL"
KILLABLE_WAIT = (0.3, 4.0)  # seconds between two kills
APPROVER = "UAPPROVER"


@dataclass
class Report:
    trials: int = 0
    kills: int = 0
    killed_in: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.killed_in.items()))
        ends = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"{self.trials} rollouts, {self.kills} SIGKILLs (deployments caught in: {states}); "
            f"ended: {ends}; problems: {len(self.problems)}"
        )


def run_round(stack: World, slack: SlackEmulator, rng: random.Random, report: Report) -> None:
    """One deployment per service, kills while they run, then the checks."""
    ids: dict[str, tuple[str, str]] = {}
    for key in stack.services:
        tag = rng.choice(["v2", "v3"])
        answer = api.start_deployment(
            key, IMAGE.format(key=key, tag=tag), requester="UKILL", channel=CHANNEL, rt=stack.rt
        )
        if not answer.ok or answer.deployment is None:
            report.problems.append(f"{key}: could not start: {answer.refusal}")
            continue
        ids[key] = (answer.deployment.id, tag)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        active = [d for d in (stack.dep(i) for i, _ in ids.values()) if d.active]
        if not active:
            break
        time.sleep(rng.uniform(*KILLABLE_WAIT))
        for dep in (stack.dep(i) for i, _ in ids.values()):
            if dep.active:
                report.killed_in[dep.state.value] += 1
        for worker in stack.workers:
            worker.kill()
        report.kills += 1
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.0, 2.0))  # sometimes nobody works for a while
        stack.start_worker()
    for key, (dep_id, tag) in ids.items():
        report.trials += 1
        try:
            dep = stack.wait(dep_id, lambda d: not d.active, timeout=120)
        except AssertionError as exc:
            report.problems.append(f"{key} {dep_id}: never finished: {str(exc)[:200]}")
            continue
        report.outcomes[dep.state.value] += 1
        check(stack, slack, key, dep_id, tag, report)


def check(
    stack: World, slack: SlackEmulator, key: str, dep_id: str, tag: str, report: Report
) -> None:
    dep = stack.dep(dep_id)
    canary = f"{key}-{dep_id}"
    weights = stack.weights(key)
    if stack.is_ecs(key):
        check_ecs(stack, key, dep_id, tag, report)
    elif dep.state == State.PROMOTED:
        if tag == "v3":
            report.problems.append(f"{key} {dep_id}: a canary with 20 % 5xx was promoted")
        if weights != {canary: 100}:
            report.problems.append(f"{key} {dep_id}: promoted but route is {weights}")
    elif dep.state == State.ROLLED_BACK:
        if len(weights) != 1 or canary in weights:
            report.problems.append(f"{key} {dep_id}: rolled back but route is {weights}")
        if canary in stack.traffic_targets():
            report.problems.append(f"{key} {dep_id}: rolled back but {canary} is left behind")
    else:
        report.problems.append(f"{key} {dep_id}: ended {dep.state.value}: {dep.reason}")
    # Slack: the outbox drains, one card, no reply twice.
    deadline = time.monotonic() + 60
    while dep_id in stack.rt.store.undelivered_ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    notes = stack.rt.store.notes(dep_id)
    card = notes.get("card_ts")
    cards = [m for m in slack.channel(CHANNEL) if dep_id in m.shown()]
    if not card or len(cards) != 1:
        report.problems.append(f"{key} {dep_id}: {len(cards)} cards in the channel")
        return
    replies = [m.shown() for m in slack.thread(CHANNEL, card)]
    twice = [text for text, n in collections.Counter(replies).items() if n > 1]
    if twice:
        report.problems.append(f"{key} {dep_id}: posted twice: {twice[0][:120]}")
    # Each shift is told once: in its own reply, or in the gate message it followed.
    for weight in dep.settings.steps:
        told = sum(f"Traffic {weight} % → canary" in text for text in replies)
        if told > 1 or (dep.state == State.PROMOTED and told != 1):
            report.problems.append(f"{key} {dep_id}: the shift to {weight} % told {told} times")


def check_ecs(stack: World, key: str, dep_id: str, tag: str, report: Report) -> None:
    """Router ecs: ECS's rule sends all traffic to one target group, and moto's service runs the
    new image once promoted, the one it ran before once rolled back."""
    dep = stack.dep(dep_id)
    serving = {group: w for group, w in stack.weights(key).items() if w > 0}
    runs = stack.service_image(key)
    new = IMAGE.format(key=key, tag=tag)
    if len(serving) != 1:
        report.problems.append(f"{key} {dep_id}: ended {dep.state.value} but rule is {serving}")
    if dep.state == State.PROMOTED:
        if tag == "v3":
            report.problems.append(f"{key} {dep_id}: a canary with 20 % 5xx was promoted")
        if runs != new:
            report.problems.append(f"{key} {dep_id}: promoted but the service runs {runs}")
    elif dep.state == State.ROLLED_BACK:
        if runs != (dep.stable.image if dep.stable else None):
            report.problems.append(f"{key} {dep_id}: rolled back but the service runs {runs}")
    else:
        report.problems.append(f"{key} {dep_id}: ended {dep.state.value}: {dep.reason}")


def make_stack(workdir: Path, redis_url: str, services: int, backend: str = "appmesh") -> World:
    """The workers' notifier posts into the world's own Slack emulator (`stack.slack`)."""
    keys = {
        f"svc{i}": {
            "gates": "manual" if i % 2 else "auto",
            "bake": "2s",
            "post_promotion_bake": "2s",
        }
        for i in range(services)
    }
    stack = start_stack(workdir, redis_url, keys, backend=backend)
    stack.slack.invite(CHANNEL)  # the strict emulator posts only where the bot was invited
    return stack


def approve_gates(stack: World, stop: threading.Event) -> None:
    """A person who approves every gate as soon as it is open (the kills go on meanwhile)."""
    while not stop.wait(0.1):
        for dep_id in stack.rt.store.active_ids():
            dep = stack.rt.store.get(dep_id)
            if dep is not None and dep.state == State.AWAITING_APPROVAL:
                api.decide_gate(
                    dep_id, dep.step_number + 1, approve=True, actor=APPROVER, rt=stack.rt
                )


def run(
    trials: int,
    services: int,
    seed: int,
    redis_url: str,
    workdir: Path,
    backend: str = "appmesh",
) -> Report:
    """At least `trials` rollouts in rounds of `services` at once, on `backend`."""
    rng = random.Random(seed)
    report = Report()
    stack = make_stack(workdir, redis_url, services, backend)
    stop = threading.Event()
    approver = threading.Thread(target=approve_gates, args=(stack, stop), daemon=True)
    approver.start()
    try:
        while report.trials < trials:
            run_round(stack, stack.slack, rng, report)
    finally:
        stop.set()
        approver.join()
        stack.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--backend", choices=["appmesh", "alb", "ecs"], default="appmesh")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args.trials, args.services, args.seed, args.redis, Path(tmp), args.backend)
    print(report.line())
    for problem in report.problems:
        print("PROBLEM", problem)
    print(f"took {time.monotonic() - started:.0f}s")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
