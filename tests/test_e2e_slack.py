"""End to end through Slack: `python -m bot` over HTTP and `python -m workers`, real processes.

Redis, moto_server and the Slack emulator stand in for the outside world (sandbox.world, the
same world `make demo` plays in). People type signed slash commands and click the buttons they
find in the thread; the tests read what the channel and the thread show, and the route weights
from App Mesh. All deployments start at once, one service per scenario, and run side by side.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from sandbox.slack_emulator import Posted
from sandbox.slack_user import SlackUser, command_body, signed_headers
from sandbox.world import CHANNEL, DANA, IMAGE, LEE, SAM, SECRET, World
from tests.conftest import REAL_REDIS_URL
from workers.slack.buttons import ABORT, APPROVE

SERVICES: dict[str, dict[str, object]] = {
    "payments": {"deployers": [DANA], "approvers": [SAM, LEE]},  # promoted, then history
    "search": {},  # 20 % 5xx: rolled back by itself
    "web": {},  # aborted at a gate
    "orders": {},  # self-approval, a busy second deploy, two approvals at once
}
STARTED = re.compile(r"^Starting deployment ([0-9a-z]{8}) of ")


def _redis_url() -> str | None:
    """A real Redis: the machine's (shared, with a prefix of our own), else one we start."""
    try:
        redis.Redis.from_url(REAL_REDIS_URL, socket_connect_timeout=1).ping()
        return REAL_REDIS_URL
    except redis.exceptions.ConnectionError:
        pass
    if shutil.which("redis-server"):
        return None  # the world starts one on a free port
    message = f"end-to-end tests need Redis at {REAL_REDIS_URL} or a redis-server to start"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def running_world(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    services: Mapping[str, Mapping[str, Any]],
    **options: Any,
) -> Iterator[World]:
    """A module's sandbox World on the real Redis (`_redis_url`), stopped after its tests."""
    w = World(Path(tmp_path_factory.mktemp(name)), services, redis_url=_redis_url(), **options)
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(tmp_path_factory, "e2e-slack", SERVICES)


@pytest.fixture(scope="module")
def dana(world: World) -> SlackUser:
    return world.person(DANA)


@pytest.fixture(scope="module")
def ids(world: World, dana: SlackUser) -> dict[str, str]:
    """Every scenario's deployment, started at once by @dana typing /canary deploy."""
    started: dict[str, str] = {}
    for key in SERVICES:
        tag = "v3" if key == "search" else "v2"
        answer = dana.ask(f"deploy {key} {IMAGE.format(key=key, tag=tag)}")
        found = STARTED.match(answer)
        assert found, answer
        started[key] = found.group(1)
    return started


# helpers ---------------------------------------------------------------------------------------
def texts(messages: list[Posted]) -> list[str]:
    return [m.text for m in messages]


_APPROVED = re.compile(r"^✋ Step \d+ \(\d+ %\) approved by .*\.$", re.M)
_SHIFTED = re.compile(r"Traffic \d+ % → canary \(.*\)\.")


def folded(shown: list[str]) -> list[str]:
    """The thread as it reads when each shift came within SETTLE of its approval: then the gate
    message tells both (workers/slack_notifier.py); a slower shift is a reply of its own, which
    this joins to the gate before it, so that a transcript does not depend on the machine."""
    out: list[str] = []
    for text in shown:
        if out and _SHIFTED.fullmatch(text) and _APPROVED.search(out[-1]):
            out[-1] = f"{out[-1]} {text}"
        else:
            out.append(text)
    return out


def assert_reads(messages: list[Posted], patterns: list[str]) -> None:
    """The messages read, in order and with nothing else between, as the patterns say (each
    approval and the shift after it read as one message: see `folded`)."""
    shown = folded(texts(messages))
    assert len(shown) == len(patterns), "\n".join(shown)
    for text, pattern in zip(shown, patterns, strict=True):
        assert re.match(pattern, text), f"{text!r} does not match {pattern!r}\n" + "\n".join(shown)


def permalink(card: Posted) -> str:
    return f"https://example.slack.com/archives/{card.channel}/p{card.ts.replace('.', '')}"


def wait_weights(world: World, key: str, expected: dict[str, int], timeout: float) -> float:
    """Seconds until the route reads `expected` (polling moto), or AssertionError."""
    began = time.monotonic()
    while True:
        weights = world.weights(key)
        if weights == expected:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{key} route still {weights} after {timeout}s, not {expected}")
        time.sleep(0.01)


# scenarios -------------------------------------------------------------------------------------
def test_each_deploy_posts_one_card_in_the_channel(world: World, ids: dict[str, str]) -> None:
    cards = [world.wait_card(dep_id) for dep_id in ids.values()]
    channel = world.slack.channel(CHANNEL)
    assert [m.ts for m in channel] == sorted(m.ts for m in cards)
    for key, card in zip(ids, cards, strict=True):
        tag = "v3" if key == "search" else "v2"
        assert card.text.startswith(f"Canary {key} #{ids[key]}: ")
        assert f"{key}:{tag} · " in card.text
        assert card.button("canary_open_thread") is not None
        # Once the stable version is found in AWS, the card names both versions.
        both = f"{key}:v1 → {key}:{tag}"
        world.slack.wait_for(lambda c=card, b=both: b in c.text, 10)


def test_healthy_canary_is_promoted_through_gates_approved_in_the_thread(
    world: World, ids: dict[str, str]
) -> None:
    dep_id, sam = ids["payments"], world.person(SAM)
    card = world.wait_card(dep_id)
    previous = None
    for weight in (25, 50, 100):
        gate = world.wait_gate(card, after=previous)
        # One message: the verdict of the step just passed, then the question.
        assert re.match(rf"✅ Step \d passed · .*\n✋ Approve {weight} %\?", gate.text)
        assert gate.button(APPROVE)["text"]["text"] == f"Approve {weight} %"  # type: ignore[index]
        assert sam.click_and_hear(gate, APPROVE, timeout=0.3) is None  # the thread shows it
        previous = gate.ts
    card = world.wait_over(dep_id)

    assert "Done ✅" in card.text
    node = f"payments-{dep_id}"
    route = r"\(route payments-route\)"
    passed = r"✅ Step {} passed · canary [\d,]+ req, [\d,]+ × 5xx"
    approved = r"✋ Step {} \({} %\) approved by <@U0SAM> at "
    shifted = r".*\. Traffic {} % → canary " + route + r"\.$"
    assert_reads(
        world.thread(card),
        [
            rf"Canary provisioned: task definition payments:\d+, virtual node {node}, "
            rf"ECS service {node} \(2 tasks\)\.",
            r"Canary ready: 2/2 tasks running\.",
            rf"Traffic 10 % → canary {route}\.",
            passed.format(1) + r".*\n" + approved.format(2, 25) + shifted.format(25),
            passed.format(2) + r".*\n" + approved.format(3, 50) + shifted.format(50),
            passed.format(3) + r".*\n" + approved.format(4, 100) + r".*\.$",
            rf"Traffic 100 % → canary {route}\. Old version kept running for 3s\. Promoted at ",
            r"Promoted ✅ payments:v2 is stable\. "
            r"Removed service payments, virtual node payments-v1\. "
            r"Took \d+s · approved by <@U0SAM> · \d+ checks passed\n"
            r"✅ Post-promotion bake passed · canary [\d,]+ req",
        ],
    )
    assert world.weights("payments") == {node: 100}
    assert "payments-v1" not in world.virtual_nodes()


def test_bad_canary_is_rolled_back_by_itself(world: World, ids: dict[str, str]) -> None:
    dep_id = ids["search"]
    card = world.wait_over(dep_id)

    assert "Rolled back ❌" in card.text
    assert_reads(
        world.thread(card),
        [
            r"Canary provisioned: ",
            r"Canary ready: 2/2 tasks running\.",
            r"Traffic 10 % → canary \(route search-route\)\.",
            r"❌ Step 1 failed at 10 % · canary [\d,]+ req, [\d,]+ × 5xx \(\d+\.\d %\).*\n"
            # Whichever boundary the random traffic crosses first: above max_error_rate, or
            # worse than the stable (both are failures of the same check).
            r"(canary .* > 1\.0 %: |.*: worse than stable, ).*\n"
            r"↩️ Rolling back: restoring 100 % stable first\.$",
            r"Traffic 100 % → search-v1 in \d+\.\d s\.",
            r"Rolled back ❌ Canary scaled to 0 and removed\. Requested by <@U0DANA> · "
            r"stopped by the canary check at step 1 \(10 %\)",
        ],
    )
    assert world.weights("search") == {"search-v1": 100}
    assert f"search-{dep_id}" not in world.virtual_nodes()


def test_abort_at_a_gate_restores_stable(world: World, ids: dict[str, str]) -> None:
    # How fast is a benchmark (bench/clicks.py, docs/BENCHMARKS.md), not an assertion here: the
    # wait below only bounds a hang.
    dep_id, sam = ids["web"], world.person(SAM)
    card = world.wait_card(dep_id)
    gate = world.wait_gate(card)
    assert world.weights("web") == {"web-v1": 90, f"web-{dep_id}": 10}

    assert sam.click(gate, ABORT) == 200
    wait_weights(world, "web", {"web-v1": 100}, timeout=30)

    card = world.wait_over(dep_id)
    assert "Rolled back ❌" in card.text
    shown = texts(world.thread(card))
    passed, _, gate_now = shown[3].partition("\n")  # the gate shows the verdict before it
    assert passed.startswith("✅ Step 1 passed · ")
    assert re.match(
        r"✋ Step 2 \(25 %\) not approved: aborted by <@U0SAM> at .*\. "
        r"↩️ Rolling back: restoring 100 % stable first\.$",
        gate_now,
    )
    assert shown[4].startswith("Traffic 100 % → web-v1 in ")
    assert "aborted by <@U0SAM>" in shown[-1] and shown[-1].startswith("Rolled back ❌")
    assert world.weights("web") == {"web-v1": 100}


def test_the_requester_cannot_approve_their_own_gate(
    world: World, ids: dict[str, str], dana: SlackUser
) -> None:
    dep_id = ids["orders"]
    card = world.wait_card(dep_id)
    gate = world.wait_gate(card)
    before = world.weights("orders")
    replies = len(world.thread(card))

    told = dana.click_and_hear(gate, APPROVE)

    assert told is not None
    assert told.startswith("You can't approve your own deployment (four-eyes is on for orders).")
    time.sleep(1.5)  # long enough for a wrongly accepted click to have moved the route
    assert world.weights("orders") == before == {"orders-v1": 90, f"orders-{dep_id}": 10}
    thread = world.thread(card)
    assert len(thread) == replies
    assert next(m for m in thread if m.ts == gate.ts).button(APPROVE) is not None
    assert world.slack.ephemeral_texts(SAM) == []  # nobody else saw it


def test_a_second_deploy_of_a_busy_service_names_the_running_one(
    world: World, ids: dict[str, str], dana: SlackUser
) -> None:
    dep_id = ids["orders"]
    card = world.wait_card(dep_id)
    cards = len(world.slack.channel(CHANNEL))

    answer = dana.ask(f"deploy orders {IMAGE.format(key='orders', tag='v9')}")

    assert answer.startswith(f"orders is busy: deployment #{dep_id} by <@U0DANA> is at 10 % ")
    assert f"(thread: <{permalink(card)}|thread>)" in answer
    assert "/canary abort orders" in answer
    time.sleep(0.5)
    assert len(world.slack.channel(CHANNEL)) == cards


def test_two_approvals_at_once_move_exactly_one_step(
    world: World, ids: dict[str, str], dana: SlackUser
) -> None:
    dep_id = ids["orders"]
    card = world.wait_card(dep_id)
    gate = copy.deepcopy(world.wait_gate(card))  # as both screens showed it
    told: dict[str, str | None] = {}
    go = threading.Barrier(2)

    def approve(user: str) -> None:
        go.wait()
        told[user] = world.person(user).click_and_hear(gate, APPROVE, timeout=2.0)

    clickers = [threading.Thread(target=approve, args=(u,)) for u in (SAM, LEE)]
    for t in clickers:
        t.start()
    for t in clickers:
        t.join()

    winner = next(u for u in (SAM, LEE) if told[u] is None)
    loser = LEE if winner == SAM else SAM
    assert told[loser] == f"Step 2 was already approved by <@{winner}>."
    wait_weights(world, "orders", {"orders-v1": 75, f"orders-{dep_id}": 25}, timeout=5)
    world.wait_reply(card, lambda m: "Traffic 25 %" in m.text)  # its own reply, or the gate
    time.sleep(1.0)
    shown = texts(world.thread(card))
    assert sum(t.count("Traffic 25 %") for t in shown) == 1
    assert not any("Traffic 50 %" in t for t in shown)
    assert (
        sum(re.search(r"^✋ Step 2 \(25 %\) approved by ", t, re.M) is not None for t in shown) == 1
    )
    assert world.weights("orders") == {"orders-v1": 75, f"orders-{dep_id}": 25}

    assert dana.ask("abort orders") == f"Rolling back deployment {dep_id}."
    assert "Rolled back ❌" in world.wait_over(dep_id).text
    assert world.weights("orders") == {"orders-v1": 100}


def test_history_lists_finished_deployments_with_links_to_their_threads(
    world: World, ids: dict[str, str], dana: SlackUser
) -> None:
    promoted = ids["payments"]
    world.wait_over(promoted)
    answer = dana.ask(f"deploy payments {IMAGE.format(key='payments', tag='v3')}")
    found = STARTED.match(answer)
    assert found, answer
    failed = found.group(1)
    assert "Rolled back ❌" in world.wait_over(failed).text

    lines = dana.ask("history payments").splitlines()

    assert lines[0] == "*payments*: last 2 deployments"
    newest, oldest = lines[1:]
    assert newest.startswith(f"❌ #{failed}  v2 → v3  <@U0DANA> · ")
    assert newest.endswith(f"<{permalink(world.wait_card(failed))}|thread>")
    assert oldest.startswith(f"✅ #{promoted}  v1 → v2  <@U0DANA> · approved <@U0SAM> · ")
    assert oldest.endswith(f"<{permalink(world.wait_card(promoted))}|thread>")


def test_forged_and_stale_requests_get_401(world: World) -> None:
    sam = world.person(SAM)
    body = command_body("status", user=SAM, channel=CHANNEL, response_url="http://127.0.0.1/x")
    forged = SlackUser(SAM, world.bot_url, "not-the-secret", world.slack)
    assert forged.post(body) == 401
    stale = signed_headers(body, secret=SECRET, timestamp=int(time.time()) - 600)
    assert sam.post(body, headers=stale) == 401
    assert sam.post(body) == 200


def test_a_deploy_from_a_channel_the_bot_is_not_in_is_refused_before_anything_exists(
    world: World, ids: dict[str, str]
) -> None:
    def recorded() -> dict[str, str]:
        return {i: key for key in SERVICES for i in world.rt.store.history_ids(key, 50)}

    before = recorded()
    outside = world.person(LEE, channel="C0NOTBOT")  # the bot was never invited there
    answer = outside.ask(f"deploy web {IMAGE.format(key='web', tag='v9')}")
    assert answer == (
        "I can't post in #chan-c0notbot: invite me with `/invite @canary`, then deploy again."
    )
    assert world.slack.channel("C0NOTBOT") == []
    assert recorded() == before  # no deployment was recorded
    # ... and nothing of one exists in AWS: every ECS service is a catalogue's stable or the
    # canary of a recorded deployment.
    known = set(SERVICES) | {f"{key}-{dep_id}" for dep_id, key in before.items()}
    arns = world.clients.ecs.list_services(cluster="prod")["serviceArns"]
    assert {arn.rsplit("/", 1)[-1] for arn in arns} <= known
