"""The chart in the thread: asked for after the message of a failed check or a promotion,
uploaded once per occasion, and a refused upload retried or dropped by the outbox's rules
without touching the text messages (the emulator plays Slack; fakeredis the store)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.bot_harness import (
    DANA,
    IMAGE,
    PAYMENTS_CHANNEL,
    TOKEN,
    advance,
    event,
    make_runtime,
    to_gate,
    verdict,
)
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.state import State
from workers.engine.outbox import RetryLater, Undeliverable, deliver_pending
from workers.runtime.context import Runtime
from workers.slack.chart_upload import (
    chart_occasion,
    filename,
    gives_up,
    post_chart,
    retry_delay,
    status_occasion,
)
from workers.slack.client import make_client
from workers.slack.notifier import SlackNotifier


@pytest.fixture
def mock() -> Iterator[MockSlack]:
    with MockSlack() as server:
        yield server


def failed_deployment(rt: Runtime) -> str:
    """A deployment at its gate, then rolled back by a failed check of step 1 (samples kept)."""
    answer = api.start_deployment(
        "payments", IMAGE, requester=DANA, channel=PAYMENTS_CHANNEL, rt=rt
    )
    dep_id = answer.deployment.id
    to_gate(rt, dep_id)
    bad = verdict((1500, 60), (13000, 60), outcome="fail", reason="canary 4.0 % > 1.0 %")

    def saw(d: Deployment) -> None:
        d.saw(verdict((800, 2), (7000, 30), outcome="baking"), time.time() - 60)
        d.saw(bad, time.time())

    advance(
        rt,
        dep_id,
        State.ROLLING_BACK,
        [
            event("step_failed", step=1, weight=10, verdict=bad),
            event("rollback_started", by="canary check", reason="5xx", weight=10),
        ],
        mutate=saw,
    )
    return dep_id


def slack_notifier(mock: MockSlack, asked: list[tuple[str, str]]) -> SlackNotifier:
    client = make_client(TOKEN, mock.base_url, retry_interval=0.01)
    return SlackNotifier(client, charts=lambda dep_id, what: asked.append((dep_id, what)))


def card_ts(rt: Runtime, dep_id: str) -> str:
    return rt.store.notes(dep_id)["card_ts"]


def test_a_failed_check_asks_for_a_chart_after_its_message(mock: MockSlack) -> None:
    rt, asked = make_runtime(), []
    dep_id = failed_deployment(rt)
    deliver_pending(rt, slack_notifier(mock, asked), dep_id)
    failed = next(e for e in rt.store.events(dep_id) if e.kind == "step_failed")
    assert asked == [(dep_id, str(failed.seq))] == [(dep_id, chart_occasion(failed))]
    # Only the verdicts that changed something: not the passed step, not the gate.
    assert [e.kind for e in rt.store.events(dep_id) if chart_occasion(e)] == ["step_failed"]
    assert mock.shared_files() == []  # the chart is a job of its own


def test_the_chart_goes_into_the_thread_once(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = failed_deployment(rt)
    notifier = slack_notifier(mock, [])
    deliver_pending(rt, notifier, dep_id)

    first = post_chart(notifier.client, rt.store, dep_id, "7", now=time.time())
    again = post_chart(notifier.client, rt.store, dep_id, "7", now=time.time())

    assert (first.outcome, again.outcome) == ("posted", "done before (posted)")
    [shared] = mock.shared_files(PAYMENTS_CHANNEL)
    assert shared.thread_ts == card_ts(rt, dep_id)
    assert shared.data is not None and shared.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert shared.title == f"payments {dep_id}: canary vs stable, rolling back"
    texts = [m.text for m in mock.thread(PAYMENTS_CHANNEL, card_ts(rt, dep_id))]
    assert any(t.startswith("❌ Step 1 failed at 10 %") for t in texts)
    assert mock.thread(PAYMENTS_CHANNEL, card_ts(rt, dep_id), files=True)[-1].files


def test_an_attempt_that_died_after_sharing_is_not_repeated(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = failed_deployment(rt)
    notifier = slack_notifier(mock, [])
    deliver_pending(rt, notifier, dep_id)
    post_chart(notifier.client, rt.store, dep_id, "7", now=time.time())
    # The worker died after Slack shared the file, before the notes said so.
    rt.store.set_notes(dep_id, {"chart:7": ""})

    assert post_chart(notifier.client, rt.store, dep_id, "7", now=time.time()).outcome == "found"
    assert len(mock.shared_files()) == 1
    dep = rt.store.get(dep_id)
    assert dep is not None and filename(dep, "7") == mock.shared_files()[0].filename


@pytest.mark.parametrize(
    ("refuse", "expected"),
    [
        ("scope", Undeliverable),
        ("not_in_channel", Undeliverable),
        ("too_large", Undeliverable),
        ("429", RetryLater),
        ("upload_500", RetryLater),
    ],
)
def test_a_refused_upload_is_retried_or_dropped_and_the_text_stays(
    mock: MockSlack, refuse: str, expected: type[Exception]
) -> None:
    rt = make_runtime()
    dep_id = failed_deployment(rt)
    notifier = slack_notifier(mock, [])
    deliver_pending(rt, notifier, dep_id)
    before = [m.text for m in mock.thread(PAYMENTS_CHANNEL, card_ts(rt, dep_id))]
    if refuse == "scope":
        mock.revoke_scope("files:write")
    elif refuse == "not_in_channel":
        mock.fail(200, error="not_in_channel", methods=["files.completeUploadExternal"])
    elif refuse == "too_large":
        mock.fail(200, error="file_upload_size_restricted", methods=["files.getUploadURLExternal"])
    elif refuse == "429":
        mock.fail(429, retry_after=12, methods=["files.getUploadURLExternal"])
    else:
        mock.fail(500, methods=["upload"])

    with pytest.raises(expected) as raised:
        post_chart(notifier.client, rt.store, dep_id, "7", now=time.time())

    assert mock.shared_files() == []
    assert [m.text for m in mock.thread(PAYMENTS_CHANNEL, card_ts(rt, dep_id))] == before
    note = rt.store.notes(dep_id).get("chart:7", "")
    if expected is Undeliverable:
        assert note.startswith("refused ")  # dropped: never tried again
    else:
        assert note == ""
        if refuse == "429":
            assert isinstance(raised.value, RetryLater) and raised.value.seconds == 12
        mock.heal()
        again = post_chart(notifier.client, rt.store, dep_id, "7", now=time.time())
        assert again.outcome == "posted" and len(mock.shared_files()) == 1


def test_retries_follow_the_outbox_rules() -> None:
    assert retry_delay(0, 12.0) == 12.0  # Slack's Retry-After, exactly
    assert [retry_delay(n, None) for n in range(3)] == [2.0, 4.0, 8.0]
    assert retry_delay(20, None) == 120.0
    assert [gives_up(n) for n in (0, 8, 9)] == [False, False, True]


def test_status_asks_the_worker_for_a_chart_once_per_version(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = failed_deployment(rt)
    dep = rt.store.get(dep_id)
    assert dep is not None
    assert api.request_chart(dep, rt=rt) is False  # no card yet: no thread to post in
    deliver_pending(rt, slack_notifier(mock, []), dep_id)

    assert api.request_chart(dep, rt=rt) is True
    assert rt.scheduler.charts == [(dep_id, f"status-v{dep.version}", 0, 0)]  # type: ignore[attr-defined]
    assert status_occasion(dep) == f"status-v{dep.version}"
    rt.store.set_notes(dep_id, {"unreachable": "not_in_channel"})
    assert api.request_chart(dep, rt=rt) is False
