"""`make demo ARGS=--interactive`: type /canary commands as @dana and decide each gate yourself."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TextIO

from sandbox.demo import (
    ALB_SERVICE,
    CHANNEL_NAME,
    ECS_SERVICE,
    SERVICE,
    image,
    is_over,
    started_id,
    weights_label,
)
from sandbox.slack_emulator import Posted
from sandbox.transcript import clock, message_lines, render_answer, render_thread
from sandbox.world import CHANNEL, DANA, SAM, World
from workers.slack.buttons import ABORT, APPROVE

INTRO = f"""
You are @dana in #{CHANNEL_NAME}; @sam approves gates when you say so.
Three services: {SERVICE} on App Mesh, {ALB_SERVICE} behind an ALB listener rule, {ECS_SERVICE} on
ECS's own LINEAR deployments (router ecs: steps 25, 50, 75, 100).
Type a /canary command (the "/canary" is optional), e.g.
    /canary deploy {SERVICE} {image("v2")}
    deploy {SERVICE} v3          (a bare tag means {image("<tag>")}; v3 answers 20 % 5xx)
    deploy {ALB_SERVICE} v2         (the same on the ALB: {image("v2", ALB_SERVICE)})
    deploy {ECS_SERVICE} v2           (ECS shifts the traffic; the bot gates its pauses)
    /canary status · /canary history {SERVICE} · /canary help
"quit" or Ctrl-D leaves (everything is stopped and cleaned up).
"""
GATE_PROMPT = "  [a] approve as @sam · [s] approve it yourself · [x] abort > "


class Session:
    """One person at the terminal, reading commands and gate decisions from `inp`."""

    def __init__(self, world: World, inp: TextIO, out: TextIO) -> None:
        self.world, self.inp, self.out = world, inp, out
        self.people = {**world.people, CHANNEL: CHANNEL_NAME}
        self.dana, self.sam = world.person(DANA), world.person(SAM)

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def read(self, prompt: str) -> str | None:
        """One line from the person, None at end of input."""
        self.out.write(prompt)
        self.out.flush()
        line = self.inp.readline()
        return None if line == "" else line.strip()

    def run(self) -> int:
        self.say(INTRO)
        while True:
            line = self.read("dana> ")
            if line is None or line.lower() in ("quit", "exit", "q"):
                self.say("")
                return 0
            if not line:
                continue
            text = expand(line.removeprefix("/canary").strip(), self.world.services)
            answer = self.dana.ask(text)
            self.say(render_answer(answer, self.people))
            dep_id = started_id(answer)
            if dep_id is not None:
                self.follow(dep_id)

    def follow(self, dep_id: str) -> None:
        """Show the thread as it grows; at each gate ask what to do."""
        world = self.world
        card = world.wait_card(dep_id)
        shown: set[str] = set()
        while True:
            card = world.card(dep_id) or card
            for reply in world.thread(card):
                if reply.ts in shown:
                    continue
                shown.add(reply.ts)
                lines = message_lines(reply, self.people)
                self.say(f"    {clock(reply.posted_at)}  " + "\n              ".join(lines))
                if reply.button(APPROVE) is not None and not self.decide(reply):
                    return
            if is_over(card):
                break
            time.sleep(0.2)
        self.say("")
        self.say(render_thread(card, world.thread(card), self.people, CHANNEL_NAME))
        dep = world.deployment(dep_id)
        if dep is not None and dep.service in world.services:
            key = dep.service
            self.say(f"\n  {weights_label(world, key)} now: {world.weights(key)}\n")

    def decide(self, gate: Posted) -> bool:
        """Ask about one gate; False when the person stops following (end of input)."""
        while True:
            choice = self.read(GATE_PROMPT)
            if choice is None:
                return False
            clicks: dict[str, Callable[[], str | None]] = {
                "a": lambda: self.sam.click_and_hear(gate, APPROVE, timeout=0.5),
                "s": lambda: self.dana.click_and_hear(gate, APPROVE, timeout=1.5),
                "x": lambda: self.dana.click_and_hear(gate, ABORT, timeout=0.5),
            }
            action = clicks.get(choice.lower()[:1])
            if action is None:
                continue  # meanwhile monitoring goes on: a breach still rolls back by itself
            told = action()
            if told:
                self.say(render_answer(told, self.people))
            if choice.lower().startswith("s"):
                continue  # refused (four-eyes): ask again
            return True


def expand(text: str, services: Iterable[str] = (SERVICE, ALB_SERVICE, ECS_SERVICE)) -> str:
    """`deploy payments v2` -> the sample registry's image with that tag, for any of `services`."""
    words = text.split()
    if len(words) >= 3 and words[0] == "deploy" and "/" not in words[2] and ":" not in words[2]:
        words[2] = image(words[2], words[1]) if words[1] in services else words[2]
    return " ".join(words)
