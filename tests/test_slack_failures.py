"""Slack's failures sorted: retried when Slack may take the call later, never blocking otherwise.

Against the strict emulator (tests.slack_mock): a 429's Retry-After is waited out exactly, a
chat.postMessage is never repeated inside one call, a deleted card or gate is posted anew, an
unreachable thread makes the bot tell the requester once, and refused content becomes text.
"""

from __future__ import annotations

import logging
import time

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from tests.bot_harness import (
    DANA,
    IMAGE,
    PAYMENTS_CHANNEL,
    SAM,
    advance,
    event,
    make_runtime,
    notifier,
    to_gate,
)
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.state import State
from workers.engine.outbox import deliver_pending
from workers.runtime.context import Runtime
from workers.slack import posting
from workers.slack.errors import Kind, classify
from workers.slack.format import Message

POSTED_AGAIN = "Posted again: the original message was deleted."
ELSEWHERE = "C0NOTBOT"  # a channel the bot was never invited to


@pytest.fixture
def mock() -> MockSlack:
    with MockSlack() as server:
        yield server


def started(rt: Runtime, channel: str = PAYMENTS_CHANNEL, service: str = "payments") -> str:
    answer = api.start_deployment(service, IMAGE, requester=DANA, channel=channel, rt=rt)
    assert answer.ok and answer.deployment is not None, answer
    return answer.deployment.id


def card_of(mock: MockSlack, rt: Runtime, dep_id: str) -> str:
    return rt.store.notes(dep_id)["card_ts"]


def replies(mock: MockSlack, rt: Runtime, dep_id: str) -> list[str]:
    return [m.text for m in mock.thread(PAYMENTS_CHANNEL, card_of(mock, rt, dep_id))]


# sorting ---------------------------------------------------------------------------------------
def _api_error(status: int, error: str, headers: dict[str, str] | None = None) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("refused", response)


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (200, "not_in_channel", Kind.UNREACHABLE),
        (200, "channel_not_found", Kind.UNREACHABLE),
        (200, "is_archived", Kind.UNREACHABLE),
        (200, "message_not_found", Kind.GONE),
        (200, "invalid_auth", Kind.NO_ACCESS),
        (200, "token_revoked", Kind.NO_ACCESS),
        (200, "account_inactive", Kind.NO_ACCESS),
        (200, "missing_scope", Kind.NO_ACCESS),
        (200, "invalid_blocks", Kind.CONTENT),
        (200, "msg_too_long", Kind.CONTENT),
        (200, "internal_error", Kind.RETRY),  # documented as transient
        (500, "something_new", Kind.RETRY),  # any 5xx is Slack's trouble
        (503, "service_unavailable", Kind.RETRY),
        (200, "something_new", Kind.UNKNOWN),
    ],
)
def test_errors_are_sorted(status: int, error: str, kind: Kind) -> None:
    found = classify(_api_error(status, error))
    assert found is not None and found.code == error
    assert found.kind is kind
    assert found.permanent == (kind not in (Kind.RETRY, Kind.UNKNOWN))
    assert found.method == "chat.postMessage"


def test_a_429_carries_its_retry_after_however_long() -> None:
    found = classify(_api_error(429, "ratelimited", {"retry-after": "37"}))
    assert found is not None and found.kind is Kind.RETRY and found.retry_after == 37.0
    assert classify(ConnectionResetError()).kind is Kind.RETRY  # type: ignore[union-attr]
    assert classify(TimeoutError()).kind is Kind.RETRY  # type: ignore[union-attr]
    assert classify(ValueError("a bug")) is None


# retryable -------------------------------------------------------------------------------------
def test_a_429_with_retry_after_7_is_waited_out_exactly(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    mock.fail(429, times=1, retry_after=7)
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    assert deliver_pending(rt, notifier(mock), dep_id) == 0
    assert [n.delay for n in rt.scheduler.notifies] == [7]  # type: ignore[attr-defined]
    assert mock.channel(PAYMENTS_CHANNEL) == []
    rt.store.append_event(dep_id, event("ready", running=2, desired=2))  # enqueues a notify...
    assert deliver_pending(rt, notifier(mock), dep_id) == 0  # ...which leaves Slack alone
    assert len([c for c in mock.calls if c.method == "chat.postMessage"]) == 1
    later = time.time() + 7
    rt.clock = lambda: later  # the scheduler runs the retry 7 s later
    assert deliver_pending(rt, notifier(mock), dep_id) == 2
    assert len(mock.channel(PAYMENTS_CHANNEL)) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_chat_post_message_is_never_repeated_inside_one_call(mock: MockSlack, status: int) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    mock.fail(status, times=1)
    assert deliver_pending(rt, notifier(mock), dep_id) == 0
    attempts = [c for c in mock.calls if c.method == "chat.postMessage"]
    assert [c.status for c in attempts] == [status]  # one attempt: the outbox tries again later
    deliver_pending(rt, notifier(mock), dep_id)
    assert len(mock.channel(PAYMENTS_CHANNEL)) == 1


def test_the_emulator_rate_limits_and_the_outbox_waits_as_told() -> None:
    with MockSlack(post_rate=1.0, post_burst=1) as mock:
        rt = make_runtime()
        dep_id = started(rt)
        deliver_pending(rt, notifier(mock), dep_id)  # the card: the channel's one token
        rt.store.append_event(dep_id, event("ready", running=2, desired=2))
        rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
        deliver_pending(rt, notifier(mock), dep_id)
        limited = [c for c in mock.calls if c.status == 429]
        assert limited and limited[0].method == "chat.postMessage"
        assert rt.scheduler.notifies[-1].delay == 1  # type: ignore[attr-defined]


# permanent: never blocking ---------------------------------------------------------------------
def test_a_channel_the_bot_is_not_in_dms_the_requester_once_and_blocks_nothing(
    mock: MockSlack, caplog: pytest.LogCaptureFixture
) -> None:
    rt = make_runtime()
    dep_id = started(rt, ELSEWHERE, service="search")
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    assert rt.store.undelivered_ids() == []  # nothing waits behind the refused card
    assert mock.channel(ELSEWHERE) == []
    [dm] = mock.dms(DANA)
    assert f"I can't post in <#{ELSEWHERE}> (not_in_channel)" in dm.text
    assert f"deployment #{dep_id} of search" in dm.text
    assert "waiting for approval, at 10 %" in dm.text  # where it stands
    assert "/canary status search" in dm.text
    assert any(r.levelno == logging.ERROR and "not_in_channel" in r.message for r in caplog.records)
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=rt).ok
    advance(rt, dep_id, State.BAKING, [event("shifted", weight=25, route="route r")])
    deliver_pending(rt, notifier(mock), dep_id)
    assert len(mock.dms(DANA)) == 1  # once
    assert rt.store.undelivered_ids() == []


def test_an_archived_channel_mid_rollout_tells_the_requester_once(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    deliver_pending(rt, notifier(mock), dep_id)
    mock.archive(PAYMENTS_CHANNEL)
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    [dm] = mock.dms(DANA)
    assert "(is_archived)" in dm.text
    assert rt.store.undelivered_ids() == []


def test_a_deleted_card_is_posted_anew_and_the_thread_says_so_once(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    first = card_of(mock, rt, dep_id)
    mock.delete_as_user(PAYMENTS_CHANNEL, first)
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=rt).ok
    advance(rt, dep_id, State.BAKING, [event("shifted", weight=25, route="route r")])
    deliver_pending(rt, notifier(mock), dep_id)
    [card] = mock.channel(PAYMENTS_CHANNEL)
    assert card.ts != first and card.ts == card_of(mock, rt, dep_id)
    assert "Baking 25 %" in card.shown()
    advance(
        rt,
        dep_id,
        State.ROLLING_BACK,
        [event("rollback_started", reason="enough", by="abort", weight=25)],
    )
    deliver_pending(rt, notifier(mock), dep_id)
    shown = replies(mock, rt, dep_id)
    assert shown[0].startswith("↻ This deployment's card was deleted")
    assert shown[1].startswith("↩️ Rolling back: enough.")
    assert sum("card was deleted" in t for t in shown) == 1
    assert rt.store.notes(dep_id)["thread_url"].endswith(card.ts.replace(".", ""))
    assert rt.store.undelivered_ids() == []


def test_a_rate_limited_notice_of_the_new_card_still_comes_first_in_its_thread(
    mock: MockSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack answers 429 to the notice under the re-posted card: the next delivery tells it
    before any later reply (seen under load in tests/test_e2e_slack_failures.py)."""
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    slack = notifier(mock)
    deliver_pending(rt, slack, dep_id)
    mock.delete_as_user(PAYMENTS_CHANNEL, card_of(mock, rt, dep_id))
    real = posting.post_once
    refused: list[str] = []

    def once_429(client, store, dep, what, *args, **kwargs):  # type: ignore[no-untyped-def]
        if what.endswith(":told") and not refused:
            refused.append(what)
            raise _api_error(429, "ratelimited", {"Retry-After": "1"})
        return real(client, store, dep, what, *args, **kwargs)

    monkeypatch.setattr(posting, "post_once", once_429)
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=rt).ok
    advance(rt, dep_id, State.BAKING, [event("shifted", weight=25, route="route r")])
    deliver_pending(rt, slack, dep_id)  # the card is posted again; its notice meets the 429
    assert refused
    rt.store.set_notes(dep_id, {"hold_until": "0"})  # the Retry-After has passed
    deliver_pending(rt, slack, dep_id)
    advance(
        rt,
        dep_id,
        State.ROLLING_BACK,
        [event("rollback_started", reason="enough", by="abort", weight=25)],
    )
    deliver_pending(rt, slack, dep_id)
    shown = replies(mock, rt, dep_id)
    assert shown[0].startswith("↻ This deployment's card was deleted"), shown
    assert sum("card was deleted" in t for t in shown) == 1


def test_a_deleted_gate_message_is_posted_anew_when_it_closes(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    gate_ts = rt.store.notes(dep_id)["gate:2"]
    mock.delete_as_user(PAYMENTS_CHANNEL, gate_ts)
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=rt).ok
    advance(rt, dep_id, State.BAKING, [event("shifted", weight=25, route="route r")])
    deliver_pending(rt, notifier(mock), dep_id)
    closed = mock.message(PAYMENTS_CHANNEL, rt.store.notes(dep_id)["gate:2"])
    assert closed is not None and closed.ts != gate_ts
    assert f"approved by <@{SAM}>" in closed.shown() and POSTED_AGAIN in closed.shown()
    assert closed.button("canary_approve") is None
    assert rt.store.undelivered_ids() == []


def test_a_revoked_token_skips_the_event_with_an_error_and_goes_on(
    mock: MockSlack, caplog: pytest.LogCaptureFixture
) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    deliver_pending(rt, notifier(mock), dep_id)
    rt.store.append_event(dep_id, event("ready", running=2, desired=2))
    rt.store.append_event(dep_id, event("ready", running=3, desired=3))
    mock.fail(200, times=1, error="token_revoked")
    assert deliver_pending(rt, notifier(mock), dep_id) == 2
    assert replies(mock, rt, dep_id) == ["Canary ready: 3/3 tasks running."]
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert any("token_revoked" in m and "skipped" in m for m in errors), errors


def test_refused_blocks_are_posted_as_their_text(
    mock: MockSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    deliver_pending(rt, notifier(mock), dep_id)
    bad = Message("Canary ready.", [{"type": "no_such_block"}])
    monkeypatch.setattr("workers.slack.notifier.render_event", lambda *a: bad)
    rt.store.append_event(dep_id, event("ready", running=2, desired=2))
    assert deliver_pending(rt, notifier(mock), dep_id) == 1
    refused = [c for c in mock.calls if c.method == "chat.postMessage" and "blocks" in c.params]
    assert replies(mock, rt, dep_id) == ["Canary ready."]
    assert refused  # the first try, with the blocks, was refused by the strict emulator


# the strict emulator ---------------------------------------------------------------------------
def test_the_emulator_is_as_strict_as_slack(mock: MockSlack) -> None:
    from slack_sdk import WebClient

    client = WebClient(token="xoxb-test", base_url=mock.base_url)

    def error(**kwargs: object) -> str:
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(**kwargs)  # type: ignore[arg-type]
        return str(caught.value.response["error"])

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    assert error(channel=ELSEWHERE, text="hi") == "not_in_channel"
    assert error(channel=PAYMENTS_CHANNEL, text="x" * 40_001) == "msg_too_long"
    assert error(channel=PAYMENTS_CHANNEL, text="hi", blocks=[section] * 51) == "invalid_blocks"
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert error(channel=PAYMENTS_CHANNEL, text="hi", blocks=[long_section]) == "invalid_blocks"
    button = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}
    actions = {"type": "actions", "elements": [button]}
    assert error(channel=PAYMENTS_CHANNEL, text="hi", blocks=[actions]) == "invalid_blocks"
    ts = client.chat_postMessage(channel=PAYMENTS_CHANNEL, text="hi", blocks=[section])["ts"]
    client.chat_delete(channel=PAYMENTS_CHANNEL, ts=ts)
    with pytest.raises(SlackApiError) as gone:
        client.chat_update(channel=PAYMENTS_CHANNEL, ts=ts, text="edited")
    assert gone.value.response["error"] == "message_not_found"
    opened = client.conversations_open(users=DANA)
    assert opened["channel"]["id"].startswith("D")
    mock.invite(ELSEWHERE)
    assert client.chat_postMessage(channel=ELSEWHERE, text="hi")["ok"]


def test_the_emulator_refuses_a_response_url_answer_over_the_limit(mock: MockSlack) -> None:
    from slack_sdk.webhook import WebhookClient

    url = mock.response_url()
    refused = WebhookClient(url).send(text="x" * 40_001)
    assert refused.status_code == 400 and "msg_too_long" in refused.body
    assert mock.answers_to(url) == []
    assert WebhookClient(url).send(text="fine").status_code == 200


def test_sorted_failures_leave_bugs_alone(mock: MockSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime()
    dep_id = started(rt)

    def broken(*args: object) -> None:
        raise ZeroDivisionError("a bug")

    note = notifier(mock)
    monkeypatch.setattr(note, "_post_card", broken)
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    assert deliver_pending(rt, note, dep_id) == 0  # retried with the back-off, not skipped
    assert rt.store.notes(dep_id)["delivery_failures"] == "1"


def test_a_long_list_of_problems_ends_with_n_more_within_slacks_limits(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    deliver_pending(rt, notifier(mock), dep_id)
    problems = [
        f"delete the Cloud Map service srv-{i:04d} by hand ({'x' * 80})" for i in range(200)
    ]
    rt.store.append_event(dep_id, event("failed", reason="AWS kept refusing.", problems=problems))
    assert deliver_pending(rt, notifier(mock), dep_id) == 1  # the strict emulator took it
    [failed] = mock.thread(PAYMENTS_CHANNEL, card_of(mock, rt, dep_id))
    listed = failed.blocks[1]["text"]["text"]
    assert len(listed) <= 3000 and listed.endswith(" more")
    assert listed.split("\n")[-1].startswith("… ")


def test_an_edit_is_retried_once_inside_the_call_it_cannot_post_twice(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    deliver_pending(rt, notifier(mock), dep_id)
    advance(rt, dep_id, State.WAITING_READY)
    before = len(mock.calls)
    mock.fail(500, times=1)
    deliver_pending(rt, notifier(mock), dep_id)
    edits = [c.status for c in mock.calls[before:] if c.method == "chat.update"]
    assert edits == [500, 200]  # chat.update is idempotent: the SDK's one quick retry stays
    [card] = mock.channel(PAYMENTS_CHANNEL)
    assert "Waiting for tasks" in card.text
