"""/canary through the real Bolt app: parsing, help, deploy, refusals, retries, forged requests."""

from __future__ import annotations

import json
import time

from bot.commands import COMMANDS, UsageError, help_text, parse
from tests.bot_harness import (
    DANA,
    GRACE,
    IMAGE,
    OTHER_CHANNEL,
    PAYMENTS_CHANNEL,
    SAM,
    STRANGER,
    Slack,
    advance,
    notifier,
    signed_headers,
    verdict,
)
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.state import State
from workers.engine.outbox import deliver_pending
from workers.runtime.context import Runtime


# the command table -----------------------------------------------------------------------------
def test_help_is_generated_from_the_command_table(slack: Slack) -> None:
    shown = slack.answer("help")
    assert shown == help_text()
    for sub in COMMANDS:
        assert f"/canary {sub.usage}" in shown
        assert sub.summary in shown
    usage = "deploy <service> <image> [steps=10,25,50,100] [bake=5m] [gates=manual|auto|final]"
    assert f"/canary {usage}" in shown
    assert slack.answer("") == help_text()


def test_parse_reads_options_and_refuses_what_it_cannot_read() -> None:
    cmd = parse("deploy payments repo/payments:v2 steps=10,50,100 bake=1m")
    assert cmd.args == ("payments", "repo/payments:v2")
    assert cmd.options == {"steps": "10,50,100", "bake": "1m"}
    assert parse("history payments 3").args == ("payments", "3")
    for bad in ("deploy payments", "deploy a b c", "abort", "history payments x", "status a b"):
        try:
            parse(bad)
        except UsageError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_unknown_subcommand_suggests_the_closest(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer("deplyo payments x:v1")
    assert 'No subcommand "deplyo"' in shown and "Did you mean `deploy`?" in shown
    assert api.active_deployments(rt=rt) == []


# deploy ----------------------------------------------------------------------------------------
def test_deploy_acks_at_once_and_the_worker_posts_the_card(
    slack: Slack, mock: MockSlack, rt: Runtime
) -> None:
    started = time.monotonic()
    response = slack.command(f"deploy payments {IMAGE}")
    assert response.status == 200 and response.body == ""  # the ack carries nothing
    assert time.monotonic() - started < 2.5  # Slack allows 3 s
    answer = mock.wait_for(lambda: mock.responses)[0]
    dep = api.active_deployment("payments", rt=rt)
    assert dep is not None and dep.requester == DANA and dep.channel == PAYMENTS_CHANNEL
    assert answer["text"].startswith(f"Starting deployment {dep.id} of payments: {IMAGE}")
    assert answer["response_type"] == "ephemeral"
    assert mock.channel(PAYMENTS_CHANNEL) == []  # the bot posts no card: the worker does

    deliver_pending(rt, notifier(mock), dep.id)
    [card] = mock.channel(PAYMENTS_CHANNEL)
    assert f"Canary · payments · #{dep.id}" in card.shown()
    assert "Provisioning" in card.shown() and f"<@{DANA}>" in card.shown()
    assert card.button("canary_open_thread")["url"].startswith("https://example.slack.com/")


def test_deploy_with_overrides_uses_them(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer(
        f"deploy web {IMAGE} steps=5,10,25,50,100 bake=10m gates=final", user=STRANGER
    )
    dep = api.active_deployment("web", rt=rt)
    assert dep is not None
    assert dep.settings.steps == [5, 10, 25, 50, 100] and dep.settings.bake == 600
    assert dep.settings.gates == "final"
    # the first answer shows the plan in force
    assert "Plan: steps 5, 10, 25, 50, 100 · bake 10m · gates final." in shown


def test_overrides_that_loosen_the_catalogue_are_refused(slack: Slack, rt: Runtime) -> None:
    assert slack.answer(f"deploy payments {IMAGE} steps=100") == (
        "steps=100 would skip the gates payments requires (manual after 10, 25, 50). "
        "Allowed: more steps, a longer bake, stricter gates."
    )
    shown = slack.answer(f"deploy payments {IMAGE} gates=auto bake=1s")
    assert shown.startswith("gates=auto would skip the gates payments requires")
    assert "bake=1s would shorten the bake payments requires (5m)" in shown
    assert slack.answer(f"deploy payments {IMAGE} bake=3000000d") == (
        '"bake=3000000d": 3000000d is too long: at most 30d'
    )
    assert api.active_deployments(rt=rt) == []


def test_history_size_is_refused_not_crashed_on(slack: Slack) -> None:
    assert slack.answer("history payments ²") == '"²": n must be a number from 1 to 50.'


def test_unknown_service_is_refused_with_a_suggestion(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer(f"deploy paymnts {IMAGE}")
    assert shown == (
        'No service called "paymnts". Did you mean payments? Known: payments, search, web.'
    )
    assert api.active_deployments(rt=rt) == []


def test_bad_image_is_refused(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer("deploy payments Not_An_Image!!")
    assert "is not an image reference" in shown
    assert "has no tag or digest" in slack.answer("deploy payments repo/payments")
    assert api.active_deployments(rt=rt) == []


def test_bad_steps_are_refused(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer(f"deploy payments {IMAGE} steps=10,5,100")
    assert shown.startswith('"steps=10,5,100": steps must increase and end at 100')
    assert "steps=10,25,50,100" in shown
    assert '"colour=blue": unknown option' in slack.answer(f"deploy payments {IMAGE} colour=blue")
    assert api.active_deployments(rt=rt) == []


def test_stranger_may_not_deploy(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer(f"deploy payments {IMAGE}", user=STRANGER)
    assert shown.startswith("You are not a deployer of payments. Ask one of:")
    assert f"<@{DANA}>" in shown
    assert api.active_deployments(rt=rt) == []


def test_group_member_may_deploy(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    assert slack.answer(f"deploy payments {IMAGE}", user=GRACE).startswith("Starting deployment")
    assert [c.params["usergroup"] for c in mock.api_calls("usergroups.users.list")] == ["S0DEPLOY"]


def test_wrong_channel_names_the_right_one(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer(f"deploy payments {IMAGE}", channel=OTHER_CHANNEL)
    assert shown == f"payments can only be deployed from <#{PAYMENTS_CHANNEL}>."
    assert api.active_deployments(rt=rt) == []


def test_deploy_where_the_bot_is_not_a_member_is_refused_before_anything_exists(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    outside = "C0NOTBOT"  # the emulator knows the bot was never invited here
    shown = slack.answer(f"deploy web {IMAGE}", channel=outside)
    assert shown == (
        "I can't post in #chan-c0notbot: invite me with `/invite @canary`, then deploy again."
    )
    assert api.active_deployments(rt=rt) == [] and rt.scheduler.jobs == []
    assert [c.params["channel"] for c in mock.api_calls("conversations.info")] == [outside]
    mock.invite(outside)
    assert slack.answer(f"deploy web {IMAGE}", channel=outside).startswith("Starting deployment")


def test_check_asks_a_worker_for_the_table(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer("check payments")
    assert shown == "Checking payments (read-only): the table comes here in a moment."
    [(service, response_url, channel)] = rt.scheduler.checks  # type: ignore[attr-defined]
    assert (service, channel) == ("payments", PAYMENTS_CHANNEL)
    assert "/respond/" in response_url  # the command's own response_url: only the asker sees it
    assert slack.answer("check paymnts").startswith('No service called "paymnts".')
    assert len(rt.scheduler.checks) == 1  # type: ignore[attr-defined]


def test_second_deploy_names_the_running_one_and_its_thread(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    slack.answer(f"deploy payments {IMAGE}")
    first = api.active_deployment("payments", rt=rt)
    deliver_pending(rt, notifier(mock), first.id)
    shown = slack.answer(f"deploy payments {IMAGE}")
    assert shown.startswith(f"payments is busy: deployment #{first.id} by <@{DANA}>")
    assert "example.slack.com/archives" in shown and "Abort it first" in shown
    assert [d.id for d in api.active_deployments(rt=rt)] == [first.id]
    assert api.get_events(first.id, rt=rt)[-1].kind == "refused"


# Slack's retries and forged requests ----------------------------------------------------------
def test_a_retried_slash_command_starts_nothing(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    response = slack.command(
        f"deploy payments {IMAGE}",
        extra_headers={"x-slack-retry-num": ["1"], "x-slack-retry-reason": ["http_timeout"]},
    )
    assert response.status == 200
    time.sleep(0.2)  # give a (wrongly) started listener the time to act
    assert api.active_deployments(rt=rt) == []
    assert mock.responses == []


def test_forged_signature_gets_401(slack: Slack, rt: Runtime) -> None:
    body = slack.command_body(f"deploy payments {IMAGE}", DANA, PAYMENTS_CHANNEL)
    response = slack.dispatch(body, signed_headers(body, secret="not-the-secret"))
    assert response.status == 401
    assert api.active_deployments(rt=rt) == []


def test_stale_timestamp_gets_401(slack: Slack, rt: Runtime) -> None:
    response = slack.command(f"deploy payments {IMAGE}", timestamp=int(time.time()) - 600)
    assert response.status == 401
    assert api.active_deployments(rt=rt) == []


# status, abort, history, services --------------------------------------------------------------
def test_status_lists_running_deployments(slack: Slack, rt: Runtime) -> None:
    assert slack.answer("status") == "Nothing is deploying right now."
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    shown = slack.answer("status")
    assert f"*payments* #{dep.id}" in shown and "Provisioning" in shown
    assert f"#{dep.id}" in slack.answer("status payments")
    assert "none has run" in slack.answer("status search")


def test_status_of_a_service_shows_its_last_check(slack: Slack, rt: Runtime) -> None:
    """The card leaves out a check's numbers (they change every check); status has them."""
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    assert "Last check" not in slack.answer("status payments")
    reason = "baking, no breach so far: canary 0.25 % (3 × 5xx of 1,204 req): within 1 %"

    def checked(d: Deployment) -> None:
        d.last_verdict = verdict((1204, 3), (10877, 31), "baking", reason)

    advance(rt, dep.id, State.BAKING, mutate=checked)
    assert slack.answer("status payments").endswith(f"\nLast check: {reason}")


def test_abort_by_command(slack: Slack, rt: Runtime) -> None:
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    refused = slack.answer("abort payments", user=STRANGER)
    assert refused.startswith("Only deployers and approvers of payments may abort it.")
    assert api.get_deployment(dep.id, rt=rt).state.value == "provisioning"
    assert slack.answer("abort payments", user=SAM) == f"Rolling back deployment {dep.id}."
    assert api.get_deployment(dep.id, rt=rt).state.value == "rolling_back"
    assert "Nothing to abort" in slack.answer("abort search")


def test_history_links_threads(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    assert slack.answer("history payments") == "payments has no deployments yet."
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    deliver_pending(rt, notifier(mock), dep.id)
    slack.answer("abort payments")
    shown = slack.answer("history payments 5")
    assert shown.startswith("*payments*: last 1 deployment")
    assert f"#{dep.id}" in shown and "|thread>" in shown
    assert "No service" in slack.answer("history nope")


def test_services_say_what_redis_knows(slack: Slack, rt: Runtime) -> None:
    shown = slack.answer("services")
    assert shown.count("stable image unknown") == 3
    slack.answer(f"deploy payments {IMAGE}")
    shown = slack.answer("services")
    dep = api.active_deployment("payments", rt=rt)
    assert f"*payments*: canary #{dep.id} `payments:v42` at 0 %" in shown


def test_ack_body_is_json_for_usage_errors(slack: Slack) -> None:
    response = slack.command("history")
    body = json.loads(response.body)
    assert body["response_type"] == "ephemeral" and "Usage: `/canary history" in body["text"]


def _finish_with_problems(rt: Runtime, n: int, problem: str) -> None:
    """`n` deployments of search that failed, each leaving long problems to clean up."""
    for _ in range(n):
        answer = api.start_deployment("search", IMAGE, requester=DANA, channel=OTHER_CHANNEL, rt=rt)
        assert answer.ok and answer.deployment is not None

        def failed(d: Deployment) -> None:
            d.problems = [problem] * 3
            d.finished_at = time.time()

        advance(rt, answer.deployment.id, State.FAILED, mutate=failed)


def test_history_of_50_fits_in_one_slack_answer(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    _finish_with_problems(rt, 50, "delete the target group search-tg-" + "x" * 900)
    shown = slack.answer("history search 50", channel=OTHER_CHANNEL)  # the emulator refuses
    assert len(shown) <= 40_000  # more than Slack's 40,000 characters (msg_too_long)
    lines = shown.split("\n")
    assert lines[0] == "*search*: last 50 deployments"
    assert len(lines) == 51  # one line each: a long outcome is cut, not the list
    assert all(len(line) <= 1000 for line in lines)


def test_an_answer_slack_refuses_is_logged(
    slack: Slack, rt: Runtime, mock: MockSlack, caplog, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("workers.slack.answers.history", lambda *a: "x" * 40_001)
    before = len(mock.calls)
    slack.command("history search", channel=OTHER_CHANNEL)
    mock.wait_for(lambda: [c for c in mock.calls[before:] if c.status == 400])
    mock.wait_for(lambda: "Slack refused the answer to /canary history" in caplog.text)
