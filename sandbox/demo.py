"""The scripted demo: a healthy canary promoted through its gates, a bad one rolled back, history;
then the same healthy-then-bad pair for a service behind an ALB instead of App Mesh, and again for
a service on ECS's own LINEAR deployments (router ecs), whose pauses are the bot's gates.

Everything the script does goes through Slack as a person would: signed slash commands and
clicks on the buttons found in the thread; it reads back only what the channel shows, plus the
weights from (moto's) AWS: the App Mesh route's, or the ALB listener rule's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from sandbox.processes import ROOT
from sandbox.slack_emulator import Posted
from sandbox.slack_user import SlackUser
from sandbox.transcript import clock, render_answer, render_thread
from sandbox.world import CHANNEL, DANA, IMAGE, LEE, SAM, World
from workers.aws.alb.router import rule_label
from workers.slack.buttons import APPROVE

#: The App Mesh service of the demo, the one behind an ALB listener rule, and the one ECS deploys.
SERVICE, ALB_SERVICE, ECS_SERVICE = "payments", "checkout", "orders"
#: Who may do what, alike for both: dana deploys, sam and lee approve, in #deploys only.
_PEOPLE = {"channel": CHANNEL, "deployers": [DANA], "approvers": [SAM, LEE]}
#: Catalogue entries of the demo.
SERVICES = {
    SERVICE: dict(_PEOPLE),
    ALB_SERVICE: {"router": "alb", **_PEOPLE},
    ECS_SERVICE: {"router": "ecs", **_PEOPLE},
}
CHANNEL_NAME = "deploys"
_STARTED = re.compile(r"[Dd]eployment ([0-9a-z]{8})")


@dataclass
class Result:
    """One scenario: did it end as expected, and what the reader should know."""

    name: str
    ok: bool
    detail: str


def started_id(answer: str) -> str | None:
    """The deployment id in the bot's "Starting deployment …" answer."""
    found = _STARTED.search(answer) if answer.startswith("Starting") else None
    return found.group(1) if found else None


class Demo:
    """Plays the scenarios on a started World and writes what people see to `out`."""

    def __init__(self, world: World, out: TextIO) -> None:
        self.world, self.out = world, out
        self.people = {**world.people, CHANNEL: CHANNEL_NAME}
        self.dana = world.person(DANA)
        self.sam = world.person(SAM)
        #: The deployment promoted by the first scenario, which history must list.
        self.promoted_id: str | None = None

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def type_command(self, who: SlackUser, text: str) -> str:
        """`who` types `/canary text` in #deploys; show it and the private answer."""
        who_name = self.people[who.user]
        self.say(f"{clock(time.time())}  @{who_name} in #{CHANNEL_NAME}: /canary {text}")
        answer = who.ask(text)
        self.say(render_answer(answer, self.people))
        return answer

    # scenarios -------------------------------------------------------------------------------
    def run(self) -> list[Result]:
        self.say(
            f"\n{SERVICE} runs on App Mesh (weights in its route); {ALB_SERVICE} runs behind an "
            "ALB (weights in its listener rule's target groups)."
        )
        results = [
            self.promote(SERVICE, 1),
            self.roll_back_bad_image(SERVICE, 2),
            self.history(SERVICE, 3),
            # The same pair again on the other backend: the bot and the thread do not change.
            self.promote(ALB_SERVICE, 4),
            self.roll_back_bad_image(ALB_SERVICE, 5),
            # ECS shifts the traffic itself; the bot judges and gates each of its pauses.
            self.promote(ECS_SERVICE, 6),
            self.roll_back_bad_image(ECS_SERVICE, 7),
        ]
        return results

    def promote(self, key: str, number: int) -> Result:
        backend = self.backend(key)
        name = f"{key}:v2 ({backend}) promoted through three gates"
        self.heading(f"{number}. {backend}, a healthy image: {key}:v2, each gate approved by @sam")
        before = self.world.weights(key)
        dep_id = started_id(self.type_command(self.dana, f"deploy {key} {image('v2', key)}"))
        if dep_id is None:
            return Result(name, False, "the deploy command was refused")
        card = self.follow(dep_id, approve=True)
        after = self.world.weights(key)
        self.show_weights(key, before, after)
        if self.world.is_ecs(key):
            return self._ecs_promoted(name, key, dep_id, card.text, before, after)
        ok = "Done ✅" in card.text and after == {f"{key}-{dep_id}": 100}
        # The old version's traffic target and ECS service are gone once the card says done.
        old = f"{key}-v1"
        gone = old not in self.targets(key) and key not in self.world.ecs_services()
        if ok and key == SERVICE:
            self.promoted_id = dep_id
        detail = f"#{dep_id}: {self.where(key)} {fmt_weights(after)}"
        if ok and not gone:
            detail += f"; but the old version ({old}, service {key}) is still there"
        return Result(name, ok and gone, detail)

    def roll_back_bad_image(self, key: str, number: int) -> Result:
        backend = self.backend(key)
        name = f"{key}:v3 ({backend}, 20 % errors) rolled back by itself"
        self.heading(
            f"{number}. {backend}, a bad image: {key}:v3 answers 20 % of requests with 5xx; "
            "nobody clicks"
        )
        before = self.world.weights(key)
        dep_id = started_id(self.type_command(self.dana, f"deploy {key} {image('v3', key)}"))
        if dep_id is None:
            return Result(name, False, "the deploy command was refused")
        card = self.follow(dep_id, approve=False)
        after = self.world.weights(key)
        self.show_weights(key, before, after)
        if self.world.is_ecs(key):
            # ECS put all traffic back on the group it came from; the service runs the old image.
            ok = "Rolled back ❌" in card.text and _serving(after) == _serving(before)
            ok = ok and self.world.service_image(key) == image("v2", key)
            detail = f"#{dep_id}: rule {fmt_weights(_serving(after))}, ECS service still on v2"
            return Result(name, ok, detail)
        ok = "Rolled back ❌" in card.text and after == before and len(after) == 1
        detail = f"#{dep_id}: {self.where(key)} {fmt_weights(after)}"
        canary = f"{key}-{dep_id}"
        if ok and canary in self.targets(key):
            ok, detail = False, f"{detail}; but the canary {canary} is still there"
        return Result(name, ok, detail)

    def _ecs_promoted(
        self,
        name: str,
        key: str,
        dep_id: str,
        card: str,
        before: dict[str, int],
        after: dict[str, int],
    ) -> Result:
        """Router ecs: ECS moved all traffic to the alternate target group, and moto's service
        runs the new image (what the next deployment discovers as the stable)."""
        serving = _serving(after)
        swapped = len(serving) == 1 and serving.keys() != _serving(before).keys()
        runs = self.world.service_image(key)
        ok = "Done ✅" in card and swapped and runs == image("v2", key)
        detail = (
            f"#{dep_id}: rule {fmt_weights(serving)}, ECS service runs {runs.rsplit('/', 1)[-1]}"
        )
        return Result(name, ok, detail)

    def history(self, key: str, number: int) -> Result:
        name = f"/canary history {key} lists both"
        self.heading(f"{number}. {name.split(' lists')[0]}")
        answer = self.type_command(self.dana, f"history {key}")
        promoted = self.promoted_id
        ok = promoted is not None and f"#{promoted}" in answer and answer.count("|thread>") >= 2
        listed = len(answer.splitlines()) - 1
        return Result(name, ok, f"{listed} deployments listed, each with its thread")

    # following a deployment ------------------------------------------------------------------
    def follow(self, dep_id: str, *, approve: bool, timeout: float = 90.0) -> Posted:
        """Wait for the deployment's end; @sam approves each gate when `approve`."""
        world = self.world
        card = world.wait_card(dep_id)
        deadline = time.monotonic() + timeout
        clicked: set[str] = set()
        while time.monotonic() < deadline:
            card = world.card(dep_id) or card
            if is_over(card):
                break
            gate = next(
                (m for m in world.thread(card) if m.button(APPROVE) and m.ts not in clicked), None
            )
            if gate is not None and approve:
                label = gate.button(APPROVE)["text"]["text"]  # type: ignore[index]
                self.say(f"{clock(time.time())}  @sam clicks [ {label} ] in the thread")
                told = self.sam.click_and_hear(gate, APPROVE, timeout=0.3)
                if told:
                    self.say(render_answer(told, self.people))
                clicked.add(gate.ts)
            time.sleep(0.1)
        # The card is refreshed after the last reply is posted; give the outbox a moment.
        try:
            card = world.slack.wait_for(lambda: _settled(world, dep_id), 10.0)
        except AssertionError:
            self.say(f"\n  #{dep_id} did not end within {timeout:.0f} s; the thread so far:")
        self.say("")
        self.say(render_thread(card, world.thread(card), self.people, CHANNEL_NAME))
        self.show_charts(card)
        return card

    def show_charts(self, card: Posted) -> None:
        """Where to open the charts the bot posted in the thread (drawn by the notify worker
        just after the verdict's message, so wait for them a little)."""
        try:
            charts = self.world.slack.wait_for(lambda: self.world.charts(card), 15.0)
        except AssertionError:
            self.say("  (no chart was posted in this thread)")
            return
        for chart in charts:
            path = chart.path
            shown = path.relative_to(ROOT) if path and path.is_relative_to(ROOT) else path
            self.say(f"  📈 chart in the thread: {chart.title}  →  open {shown or chart.filename}")

    def heading(self, text: str) -> None:
        self.say("")
        self.say(f"━━ {text} " + "━" * max(0, 96 - len(text)))

    def show_weights(self, key: str, before: dict[str, int], after: dict[str, int]) -> None:
        change = f"{fmt_weights(before)}  →  {fmt_weights(after)}"
        self.say(f"\n  {weights_label(self.world, key)}: {change}")

    # the two backends ------------------------------------------------------------------------
    def backend(self, key: str) -> str:
        if self.world.is_ecs(key):
            return "ECS LINEAR"
        return "ALB" if self.world.is_alb(key) else "App Mesh"

    def where(self, key: str) -> str:
        """What holds the weights, in a word: App Mesh's route or the ALB's rule."""
        return "route" if key not in self.world.rules else "rule"

    def targets(self, key: str) -> set[str]:
        """What traffic can be sent to on the service's backend: target groups, or nodes."""
        return self.world.target_groups() if self.world.is_alb(key) else self.world.virtual_nodes()


def _settled(world: World, dep_id: str) -> Posted | None:
    card = world.card(dep_id)
    return card if card is not None and is_over(card) else None


def is_over(card: Posted) -> bool:
    return any(s in card.text for s in ("Done ✅", "Rolled back ❌", "Failed ⚠"))


def image(tag: str, key: str = SERVICE) -> str:
    return IMAGE.format(key=key, tag=tag)


def _serving(weights: dict[str, int]) -> dict[str, int]:
    """The targets that get traffic (ECS leaves the idle target group in the rule at 0)."""
    return {target: w for target, w in weights.items() if w > 0}


def weights_label(world: World, key: str) -> str:
    """Where the service's weights live, as a person would name it."""
    if key in world.rules:
        return f"ALB {rule_label(listener_rule=world.rules[key], listener=None)} ({key})"
    return f"App Mesh route {key}-route"


def fmt_weights(weights: dict[str, int]) -> str:
    return ", ".join(f"{node} {w} %" for node, w in sorted(weights.items())) or "(no targets)"


def summary(results: list[Result], say: Callable[[str], None]) -> bool:
    """Print one line per scenario; True when all ended as expected."""
    say("")
    say("━━ Summary " + "━" * 89)
    for r in results:
        say(f"  {'✔' if r.ok else '✘'} {r.name}: {r.detail}")
    return all(r.ok for r in results)
