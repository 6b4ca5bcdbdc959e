"""The App Home tab: the view (pure), views.publish as strict as Slack, and the tab through the
real Bolt app: opened, clicked (the thread's checks), refreshed apart from the outbox."""

from __future__ import annotations

import json
import threading
import time

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack_emulator import MAX_VIEW_BLOCKS
from sandbox.slack_user import home_click_body, home_opened_body, signed_json_headers
from tests.bot_harness import (
    DANA,
    IMAGE,
    LEE,
    PAYMENTS_CHANNEL,
    SAM,
    SECRET,
    TOKEN,
    Slack,
    notifier,
    to_gate,
)
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.events import Refused
from workers.domain.state import State
from workers.engine.outbox import deliver_pending
from workers.runtime.context import Runtime
from workers.runtime.queues import queue_names, rq_queue
from workers.slack import home_publisher
from workers.slack.buttons import ABORT, APPROVE
from workers.slack.card import TEAR_DOWN_SETTLE
from workers.slack.client import make_client
from workers.slack.home import MAX_HOME_BLOCKS, HomeSnapshot, render_home
from workers.slack.home_publisher import Viewers, note_change, refresh_homes, snapshot


def deploy(slack: Slack, rt: Runtime, service: str, channel: str = "C0RANDOM") -> str:
    """Dana deploys `service` from `channel`; returns the deployment's id."""
    answer = slack.answer(f"deploy {service} {IMAGE}", channel=channel)
    assert answer.startswith("Starting deployment"), answer
    dep = api.active_deployment(service, rt=rt)
    assert dep is not None
    return dep.id


def at_gate(slack: Slack, rt: Runtime, mock: MockSlack, service: str) -> str:
    channel = PAYMENTS_CHANNEL if service == "payments" else "C0RANDOM"
    dep_id = deploy(slack, rt, service, channel)
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    return dep_id


def client(mock: MockSlack) -> WebClient:
    return make_client(TOKEN, mock.base_url, retry_interval=0.01)


def open_home(slack: Slack, user: str) -> None:
    body = home_opened_body(user)
    response = slack.dispatch(body, signed_json_headers(body, secret=SECRET))
    assert response.status == 200


def click_in_home(slack: Slack, mock: MockSlack, user: str, action_id: str, dep_id: str) -> None:
    home = mock.home(user)
    assert home is not None
    button = home.button(action_id, f"{dep_id}:")
    assert button is not None, home.shown()
    body = home_click_body(
        action_id,
        button["value"],
        user=user,
        view_id=home.id,
        blocks=home.blocks,
        block_id=home.block_of(button),
    )
    assert slack.dispatch(body).status == 200


# the view (pure) ------------------------------------------------------------------------------
def test_the_view_offers_the_gate_where_the_catalogue_lets_a_click_come_from_nowhere(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    search = at_gate(slack, rt, mock, "search")  # no channel: steered from anywhere
    payments = at_gate(slack, rt, mock, "payments")  # channel C0PAYMENTS: only from there

    view = render_home(snapshot(rt), time.time()).to_dict()
    shown = "\n".join(str(b) for b in view["blocks"])

    buttons = [e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (APPROVE, f"{search}:2"),
        (ABORT, f"{search}:2"),
    ]
    assert buttons[0]["text"]["text"] == "Approve 25 %"
    assert f"*payments* #{payments}" in shown and f"*search* #{search}" in shown
    assert f"payments is steered only from <#{PAYMENTS_CHANNEL}>: decide it in <" in shown
    permalink = rt.store.notes(payments)["thread_url"]
    assert f"<{permalink}|its thread> there." in shown


def test_a_view_of_more_deployments_than_fit_says_so_and_slack_takes_it(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = at_gate(slack, rt, mock, "search")
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep is not None
    many = [
        dep.model_copy(update={"id": f"{i:08d}", "service": "s" * 200 + str(i)}) for i in range(120)
    ]
    recent = {
        f"svc{i}": [d.model_copy(update={"state": State.PROMOTED}) for d in many[:3]]
        for i in range(40)
    }
    snap = HomeSnapshot(running=many, recent=recent, channels={d.service: None for d in many})

    view = render_home(snap, time.time())
    blocks = view.to_dict()["blocks"]

    assert len(blocks) <= MAX_HOME_BLOCKS
    shown = "\n".join(str(b) for b in blocks)
    assert "more deployments running not shown here" in shown
    assert "more services with past deployments not shown here" in shown
    client(mock).views_publish(user_id=SAM, view=view)  # the strict emulator takes it
    assert mock.home(SAM) is not None


def test_a_view_of_long_texts_stays_within_slacks_size(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = at_gate(slack, rt, mock, "search")
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep is not None
    long = [
        dep.model_copy(
            update={"id": f"{i:08d}", "service": f"{i}" + "s" * 2800, "state": State.BAKING}
        )
        for i in range(90)
    ]
    snap = HomeSnapshot(running=long, recent={}, channels={d.service: None for d in long})

    view = render_home(snap, time.time())

    assert len(json.dumps(view.to_dict())) < 250_000
    assert "more deployments running not shown here (the Home tab is full)" in str(view.to_dict())
    client(mock).views_publish(user_id=SAM, view=view)
    assert mock.home(SAM) is not None


# views.publish as strict as Slack --------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"view": {"type": "home", "blocks": [{"type": "divider"}]}}, "invalid_arguments"),
        ({"user_id": SAM}, "invalid_arguments"),
        ({"user_id": SAM, "view": {"type": "home", "blocks": []}}, "invalid_arguments"),
        (
            {"user_id": SAM, "view": {"type": "home", "blocks": [{"type": "divider"}] * 101}},
            "invalid_arguments",
        ),
        (
            {"user_id": SAM, "view": {"type": "home", "blocks": [{"type": "bogus"}]}},
            "invalid_arguments",
        ),
        (
            {
                "user_id": SAM,
                "view": {
                    "type": "home",
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
                },
            },
            "invalid_arguments",
        ),
        (
            {
                "user_id": SAM,
                "view": {
                    "type": "home",
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}]
                    * 90,
                },
            },
            "view_too_large",
        ),
    ],
)
def test_views_publish_refuses_what_slack_refuses(
    mock: MockSlack, arguments: dict[str, object], error: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        client(mock).api_call("views.publish", json=arguments)
    assert refused.value.response["error"] == error
    assert mock.homes == {}
    assert MAX_VIEW_BLOCKS == 100


def test_views_publish_is_refused_when_the_home_tab_is_off(mock: MockSlack) -> None:
    mock.home_tab_enabled = False
    with pytest.raises(SlackApiError) as refused:
        client(mock).views_publish(
            user_id=SAM, view={"type": "home", "blocks": [{"type": "divider"}]}
        )
    assert refused.value.response["error"] == "not_enabled"


# the tab through the Bolt app ------------------------------------------------------------------
def test_opening_the_home_tab_publishes_what_is_deploying(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = at_gate(slack, rt, mock, "search")
    open_home(slack, SAM)
    home = mock.wait_for(lambda: mock.home(SAM))
    assert f"*search* #{dep_id}" in home.shown()
    assert home.button(APPROVE, f"{dep_id}:2") is not None
    assert Viewers(rt.redis, rt.store.prefix).recent(time.time()) == [SAM]

    # The Messages tab and other workspaces' people get nothing.
    body = home_opened_body(LEE, tab="messages")
    assert slack.dispatch(body, signed_json_headers(body, secret=SECRET)).status == 200
    body = home_opened_body(LEE, team="T0OTHER")
    assert slack.dispatch(body, signed_json_headers(body, secret=SECRET)).status == 200
    time.sleep(0.3)
    assert mock.home(LEE) is None


def test_an_approve_in_the_home_tab_is_refused_for_the_requester_under_four_eyes(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = at_gate(slack, rt, mock, "search")
    open_home(slack, DANA)
    mock.wait_for(lambda: mock.home(DANA))

    click_in_home(slack, mock, DANA, APPROVE, dep_id)

    home = mock.wait_for(lambda: (h := mock.home(DANA)) and h.publishes == 2 and h)
    assert "⚠️ You can't approve your own deployment (four-eyes is on for search)." in home.shown()
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep is not None and dep.state == State.AWAITING_APPROVAL and dep.approvals == []
    refused = api.get_events(dep_id, rt=rt)[-1]
    assert isinstance(refused, Refused) and (refused.actor, refused.action) == (DANA, "approve")


def test_two_approvals_in_home_tabs_at_once_move_exactly_one_step(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = at_gate(slack, rt, mock, "search")
    for user in (SAM, LEE):
        open_home(slack, user)
        mock.wait_for(lambda u=user: mock.home(u))
    go = threading.Barrier(2)

    def approve(user: str) -> None:
        go.wait()
        click_in_home(slack, mock, user, APPROVE, dep_id)

    clickers = [threading.Thread(target=approve, args=(u,)) for u in (SAM, LEE)]
    for t in clickers:
        t.start()
    for t in clickers:
        t.join()

    def told() -> list[str]:
        return [u for u in (SAM, LEE) if (h := mock.home(u)) and "already approved" in h.shown()]

    [loser] = mock.wait_for(told)
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep is not None and dep.state == State.SHIFTING and dep.step_number == 2
    assert [a.actor for a in dep.approvals] == [({SAM, LEE} - {loser}).pop()]
    assert [e.kind for e in api.get_events(dep_id, rt=rt)].count("approved") == 1
    # The winner's tab shows the click carried out at once: the gate's buttons are gone.
    winner = ({SAM, LEE} - {loser}).pop()
    home = mock.wait_for(lambda: (h := mock.home(winner)) and h.publishes == 2 and h)
    assert home.button(APPROVE, f"{dep_id}:") is None
    assert "Shifting to 25 %" in home.shown()


def test_a_home_click_on_a_service_steered_from_its_channel_is_refused(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = at_gate(slack, rt, mock, "payments")
    open_home(slack, SAM)
    home = mock.wait_for(lambda: mock.home(SAM))
    assert home.button(APPROVE, f"{dep_id}:") is None  # none is offered...
    # ... and one made up (a view from before the catalogue named a channel) is refused.
    forged = {
        "type": "actions",
        "block_id": "x",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE,
                "text": {"type": "plain_text", "text": "A"},
                "value": f"{dep_id}:2",
            }
        ],
    }
    body = home_click_body(
        APPROVE, f"{dep_id}:2", user=SAM, view_id=home.id, blocks=[forged], block_id="x"
    )
    assert slack.dispatch(body).status == 200
    home = mock.wait_for(lambda: (h := mock.home(SAM)) and h.publishes == 2 and h)
    assert f"payments can only be approved from <#{PAYMENTS_CHANNEL}>" in home.shown()
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep is not None and dep.state == State.AWAITING_APPROVAL


# refreshing, apart from the outbox -------------------------------------------------------------
def test_a_state_change_asks_for_one_refresh_and_a_check_none(
    rt: Runtime, mock: MockSlack, slack: Slack
) -> None:
    dep_id = at_gate(slack, rt, mock, "search")
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep is not None
    now = time.time()
    assert note_change(rt.store, dep, now) is False  # nobody looked: nothing to refresh
    Viewers(rt.redis, rt.store.prefix).seen(SAM, now)
    rt.store.set_notes(dep_id, {"home_state": ""})
    assert note_change(rt.store, dep, now) is True
    assert note_change(rt.store, dep, now) is False  # same state (a check): no refresh
    rt.store.set_notes(dep_id, {"home_state": ""})
    assert note_change(rt.store, dep, now) is False  # one refresh already queued

    assert refresh_homes(rt, client(mock)) == 1
    home = mock.home(SAM)
    assert home is not None and home.button(APPROVE, f"{dep_id}:2") is not None


def test_a_tear_down_asks_for_a_refresh_only_once_it_lasts(
    rt: Runtime, mock: MockSlack, slack: Slack
) -> None:
    """As the card: a promotion's tear-down waiting for AWS to drain is skipped unless it lasts
    TEAR_DOWN_SETTLE seconds (most go straight to "Done")."""
    dep_id = at_gate(slack, rt, mock, "search")
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep is not None
    tearing_down = dep.model_copy(update={"state": State.TEARING_DOWN, "state_since": time.time()})
    Viewers(rt.redis, rt.store.prefix).seen(SAM, time.time())
    assert note_change(rt.store, tearing_down, tearing_down.state_since + 1) is False
    later = tearing_down.state_since + TEAR_DOWN_SETTLE
    assert note_change(rt.store, tearing_down, later) is True


def test_a_home_slack_refuses_never_stops_the_outbox(
    rt: Runtime, mock: MockSlack, slack: Slack
) -> None:
    mock.home_tab_enabled = False  # every views.publish fails for good
    Viewers(rt.redis, rt.store.prefix).seen(SAM, time.time())
    dep_id = at_gate(slack, rt, mock, "search")
    assert rt.store.delivered_upto(dep_id) == len(rt.store.events(dep_id)) - 1
    assert refresh_homes(rt, client(mock)) == 0
    assert home_publisher.opened(rt, client(mock), SAM) is False
    assert mock.homes == {}


def test_a_rate_limited_refresh_waits_out_retry_after_in_a_job_of_its_own(
    rt: Runtime, mock: MockSlack, slack: Slack
) -> None:
    mock.fail(429, retry_after=7, methods=("views.publish",))
    Viewers(rt.redis, rt.store.prefix).seen(SAM, time.time())
    dep_id = at_gate(slack, rt, mock, "search")
    # The deployment's messages all went out: the home is no part of its delivery.
    assert rt.store.delivered_upto(dep_id) == len(rt.store.events(dep_id)) - 1
    assert not rt.store.notes(dep_id).get("hold_until")

    assert refresh_homes(rt, client(mock)) == 0

    queue = rq_queue(queue_names(rt.store.prefix)[2], rt.redis)
    [planned] = queue.scheduled_job_registry.get_job_ids()
    job = queue.fetch_job(planned)
    assert job is not None and job.func_name == "workers.runtime.jobs.publish_homes"
    assert job.args == [1]  # the next attempt
    mock.heal()
    assert refresh_homes(rt, client(mock), attempt=1) == 1


def test_viewers_are_bounded_in_number_and_age(rt: Runtime) -> None:
    viewers = Viewers(rt.redis, rt.store.prefix)
    now = time.time()
    for i in range(home_publisher.MAX_VIEWERS + 5):
        assert viewers.seen(f"U{i:04d}", now + i)
    assert not viewers.seen("not-a-user", now)
    recent = viewers.recent(now + 100)
    assert len(recent) == home_publisher.MAX_VIEWERS
    assert recent[0] == f"U{home_publisher.MAX_VIEWERS + 4:04d}"
    assert viewers.recent(now + home_publisher.VIEWER_AGE + 1000) == []
