"""The Slack emulator shares files as strictly as Slack's files.getUploadURLExternal, the upload
URL and files.completeUploadExternal: slack-sdk's files_upload_v2 goes through, and every rule a
real upload could break is refused the way Slack refuses it."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.slack_mock import MockSlack

CHANNEL = "C0FILES"


@pytest.fixture
def slack() -> Iterator[MockSlack]:
    with MockSlack(channels=[CHANNEL]) as mock:
        yield mock


def client(mock: MockSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=mock.base_url)


def post_bytes(url: str, data: bytes) -> int:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as raised:
        call()  # type: ignore[operator]
    return str(raised.value.response["error"])


def test_files_upload_v2_shares_the_file_in_the_thread(slack: MockSlack) -> None:
    web = client(slack)
    card = web.chat_postMessage(channel=CHANNEL, text="card")["ts"]
    web.chat_postMessage(channel=CHANNEL, text="a reply", thread_ts=card)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10

    answer = web.files_upload_v2(
        channel=CHANNEL, thread_ts=card, file=png, filename="chart.png", title="The chart"
    )

    assert answer["file"]["title"] == "The chart"
    [shared] = slack.shared_files(CHANNEL)
    assert (shared.data, shared.filename, shared.thread_ts) == (png, "chart.png", card)
    # People see it in the thread; transcripts of text leave it out unless asked.
    assert [m.text for m in slack.thread(CHANNEL, card)] == ["a reply"]
    with_files = slack.thread(CHANNEL, card, files=True)
    assert with_files[-1].files[0]["name"] == "chart.png"
    assert with_files[-1].shown() == "[file: The chart]"
    # conversations.replies lists the file message with its files, as Slack does.
    replies = web.conversations_replies(channel=CHANNEL, ts=card)["messages"]
    assert replies[-1]["files"][0]["id"] == shared.file_id


def test_an_upload_url_needs_a_name_and_a_length(slack: MockSlack) -> None:
    web = client(slack)
    assert error_of(lambda: web.files_getUploadURLExternal(filename="a.png", length=0)) == (
        "missing_argument"
    )
    assert error_of(lambda: web.files_getUploadURLExternal(filename="", length=10)) == (
        "invalid_arguments"
    )
    assert slack.uploads == {}


def test_the_bytes_must_be_as_long_as_announced_and_are_taken_once(slack: MockSlack) -> None:
    web = client(slack)
    ticket = web.files_getUploadURLExternal(filename="a.png", length=4)
    url, file_id = ticket["upload_url"], ticket["file_id"]
    assert post_bytes(url, b"12345") == 400
    assert post_bytes(url, b"1234") == 200
    assert post_bytes(url, b"1234") == 404  # one upload per URL
    assert post_bytes(f"{slack.url}/upload/F-nothing", b"1234") == 404
    assert slack.uploads[file_id].data == b"1234"


def test_completing_needs_an_uploaded_file_and_happens_once(slack: MockSlack) -> None:
    web = client(slack)

    def complete(file_id: str, **where: str) -> str:
        return error_of(lambda: web.files_completeUploadExternal(files=[{"id": file_id}], **where))

    assert complete("F-unknown", channel_id=CHANNEL) == "file_not_found"
    ticket = web.files_getUploadURLExternal(filename="a.png", length=4)
    assert complete(ticket["file_id"], channel_id=CHANNEL) == "file_not_found"  # no bytes yet
    assert post_bytes(ticket["upload_url"], b"1234") == 200
    web.files_completeUploadExternal(files=[{"id": ticket["file_id"]}], channel_id=CHANNEL)
    assert complete(ticket["file_id"], channel_id=CHANNEL) == "file_not_found"  # only once
    assert len(slack.shared_files()) == 1


def test_completing_where_the_bot_may_not_post_is_refused(slack: MockSlack) -> None:
    web = client(slack)
    card = web.chat_postMessage(channel=CHANNEL, text="card")["ts"]
    reply = web.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=card)["ts"]

    def uploaded() -> str:
        ticket = web.files_getUploadURLExternal(filename="a.png", length=1)
        assert post_bytes(ticket["upload_url"], b"x") == 200
        return str(ticket["file_id"])

    def complete(**where: str) -> str:
        file_id = uploaded()
        return error_of(lambda: web.files_completeUploadExternal(files=[{"id": file_id}], **where))

    assert complete(channel_id="C0ELSEWHERE") == "not_in_channel"
    # "Never use a reply's ts value; use its parent instead."
    assert complete(channel_id=CHANNEL, thread_ts=reply) == "thread_not_found"
    slack.archive(CHANNEL)
    assert complete(channel_id=CHANNEL, thread_ts=card) == "is_archived"
    assert slack.shared_files() == []


def test_without_files_write_both_file_methods_answer_missing_scope(slack: MockSlack) -> None:
    web = client(slack)
    slack.revoke_scope("files:write")
    assert error_of(lambda: web.files_upload_v2(channel=CHANNEL, content="x")) == "missing_scope"
    assert [c.method for c in slack.calls] == ["files.getUploadURLExternal"]
    assert web.chat_postMessage(channel=CHANNEL, text="still fine")["ok"]


def test_a_fault_can_be_limited_to_some_methods(slack: MockSlack) -> None:
    web = client(slack)
    card = web.chat_postMessage(channel=CHANNEL, text="card")["ts"]
    slack.fail(429, retry_after=3, methods=["files.completeUploadExternal"], times=1)
    web.chat_postMessage(channel=CHANNEL, text="not limited", thread_ts=card)
    with pytest.raises(SlackApiError) as raised:
        web.files_upload_v2(channel=CHANNEL, thread_ts=card, content="x", filename="x.txt")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] in ("3", ["3"])
    assert slack.shared_files() == []

    slack.fail(500, methods=["upload"], times=1)
    with pytest.raises(urllib.error.HTTPError):
        web.files_upload_v2(channel=CHANNEL, thread_ts=card, content="x", filename="x.txt")
    web.files_upload_v2(channel=CHANNEL, thread_ts=card, content="x", filename="x.txt")
    assert len(slack.shared_files(CHANNEL)) == 1
    assert [u.filename for u in slack.shared_files()] == ["x.txt"]
