"""End to end, the App Home tab: real `python -m bot` (HTTP, signed requests) and
`python -m workers`, real Redis, moto_server and the Slack emulator (sandbox.world).

People open the tab (a signed `app_home_opened` event), the worker refreshes it when the
deployment reaches its gate, and the Approve they click there (a signed block_actions payload
with the view and no channel) moves the route's weights exactly once, and not for the requester
under four-eyes.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator

import pytest

from sandbox.slack_emulator import HomeView
from sandbox.world import DANA, IMAGE, LEE, SAM, World
from tests.test_e2e_slack import STARTED, permalink, running_world, wait_weights
from workers.slack.buttons import APPROVE

#: No `channel`: its gates may be decided from the App Home; approvers empty and four-eyes on
#: (the default): anyone but the requester approves.
SERVICES: dict[str, dict[str, object]] = {"orders": {}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(tmp_path_factory, "e2e-home", SERVICES)


def home_of(world: World, user: str, timeout: float = 30.0, **shows: str) -> HomeView:
    """`user`'s Home tab once it shows every text of `shows` (waiting for a refresh)."""

    def ready() -> HomeView | None:
        home = world.slack.home(user)
        return home if home and all(t in home.shown() for t in shows.values()) else None

    try:
        return world.slack.wait_for(ready, timeout)
    except AssertionError:
        home = world.slack.home(user)
        raise AssertionError(
            f"{user}'s home never showed {shows}: {home.shown() if home else None}\n"
            f"{world.logs(3000)}"
        ) from None


def told_in_home(world: World, user: str, text: str, timeout: float = 10.0) -> str:
    """The first view published to `user` showing `text` (a notice on top of their tab, which
    the next refresh may already have replaced)."""

    def found() -> str | None:
        for call in world.slack.api_calls("views.publish"):
            if call.params.get("user_id") == user:
                shown = HomeView(user, "", call.params["view"]["blocks"]).shown()
                if text in shown:
                    return shown
        return None

    return str(world.slack.wait_for(found, timeout))


@pytest.fixture(scope="module")
def dep_id(world: World) -> str:
    """Sam, Lee and Dana open the Home tab; then Dana deploys orders."""
    for user in (SAM, LEE, DANA):
        assert world.person(user).open_home() == 200
        home_of(world, user, nothing="Nothing is deploying right now.")
    answer = world.person(DANA).ask(f"deploy orders {IMAGE.format(key='orders', tag='v2')}")
    found = STARTED.match(answer)
    assert found, answer
    return found.group(1)


def test_opening_the_tab_publishes_it_and_the_gate_refreshes_it(world: World, dep_id: str) -> None:
    card = world.wait_card(dep_id)
    world.wait_gate(card)
    # The worker refreshed the homes of those who opened them: the gate, with its buttons.
    home = home_of(world, SAM, gate="Waiting for approval", approve="[Approve 25 %]")
    assert home.button(APPROVE, f"{dep_id}:2") is not None
    assert f"*orders* #{dep_id}" in home.shown()
    assert f"<{permalink(card)}|thread>" in home.shown()
    # Refreshed on changes of state, not on every check: a handful of publishes, not dozens.
    assert home.publishes <= 8


def test_the_requester_is_refused_in_the_home_tab_under_four_eyes(
    world: World, dep_id: str
) -> None:
    dana = world.person(DANA)
    home_of(world, DANA, approve="[Approve 25 %]")
    before = world.weights("orders")
    assert before == {"orders-v1": 90, f"orders-{dep_id}": 10}

    assert dana.click_in_home(APPROVE, dep_id) == 200

    shown = told_in_home(world, DANA, "You can't approve your own deployment")
    assert "four-eyes is on for orders" in shown
    time.sleep(1.5)  # long enough for a wrongly accepted click to have moved the route
    assert world.weights("orders") == before
    assert world.dep(dep_id).approvals == []


def test_two_approvals_in_the_home_tab_at_once_move_the_traffic_exactly_once(
    world: World, dep_id: str
) -> None:
    # What both screens showed: the gate still open.
    screens = {u: copy.deepcopy(home_of(world, u, approve="[Approve 25 %]")) for u in (SAM, LEE)}
    go = threading.Barrier(2)
    status: dict[str, int] = {}

    def approve(user: str) -> None:
        go.wait()
        status[user] = world.person(user).click_in_home(APPROVE, dep_id, screens[user])

    clickers = [threading.Thread(target=approve, args=(u,)) for u in (SAM, LEE)]
    for t in clickers:
        t.start()
    for t in clickers:
        t.join()
    assert status == {SAM: 200, LEE: 200}

    wait_weights(world, "orders", {"orders-v1": 75, f"orders-{dep_id}": 25}, timeout=30)
    dep = world.dep(dep_id)
    [approval] = dep.approvals
    loser = LEE if approval.actor == SAM else SAM
    told_in_home(world, loser, f"Step 2 was already approved by <@{approval.actor}>.")
    time.sleep(1.5)  # a second shift, had there been one, would have come by now
    assert world.weights("orders") == {"orders-v1": 75, f"orders-{dep_id}": 25}
    assert world.dep(dep_id).step_number == 2

    # Aborted from the thread's command, the deployment leaves "Deploying now" for the history.
    assert world.person(DANA).ask("abort orders") == f"Rolling back deployment {dep_id}."
    card = world.wait_over(dep_id)
    home = home_of(world, SAM, none="Nothing is deploying right now.", over=f"❌ #{dep_id}")
    assert f"<{permalink(card)}|thread>" in home.shown()
