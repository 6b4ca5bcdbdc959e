"""Refusals rate-limited per user: the pure policy, the Redis counter shared by web processes,
and the Bolt app telling a flooding user "slow down" once and then ignoring them for a while."""

from __future__ import annotations

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.ratelimit import RefusalLimiter, RefusalPolicy, Verdict
from tests.bot_harness import DANA, IMAGE, PAYMENTS_CHANNEL, SAM, STRANGER, Slack, notifier, to_gate
from tests.conftest import REAL_REDIS_URL
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.state import State
from workers.engine.outbox import deliver_pending
from workers.runtime.context import Runtime, runtime_from_env
from workers.runtime.settings import Settings


def test_policy_answers_up_to_the_limit_then_one_slow_down_then_silence() -> None:
    policy = RefusalPolicy(limit=3, window=60)
    verdicts = [policy.verdict(n) for n in range(1, 7)]
    assert verdicts == [Verdict.ANSWER] * 3 + [Verdict.SLOW_DOWN] + [Verdict.QUIET] * 2
    assert [policy.quiet(n) for n in (0, 3, 4, 9)] == [False, False, True, True]


def test_the_count_is_shared_by_web_processes_and_ends_with_its_window(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    policy = RefusalPolicy(limit=2, window=1)
    # Two web processes: two clients, one Redis.
    web1 = RefusalLimiter(client, prefix, policy)
    web2 = RefusalLimiter(redis.Redis.from_url(REAL_REDIS_URL), prefix, policy)
    assert web1.refused("U1") is Verdict.ANSWER
    assert web2.refused("U1") is Verdict.ANSWER
    assert not web1.quiet("U1")
    assert web2.refused("U1") is Verdict.SLOW_DOWN
    assert web1.quiet("U1") and web2.quiet("U1")
    assert web1.refused("U1") is Verdict.QUIET
    assert not web1.quiet("U2")  # per user
    assert 0 < client.ttl(f"{prefix}:refusals:U1") <= 1  # the key never outlives its window
    time.sleep(1.2)
    assert not web1.quiet("U1")
    assert web1.refused("U1") is Verdict.ANSWER


def test_a_limiter_without_redis_does_not_limit() -> None:
    broken = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    limiter = RefusalLimiter(broken, "t", RefusalPolicy(limit=1, window=60))
    assert not limiter.quiet("U1")
    assert limiter.refused("U1") is Verdict.ANSWER


def test_a_flood_of_refused_clicks_gets_one_slow_down_then_nothing(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    rt.refusal_limit, rt.refusal_window = 3, 60
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    assert dep is not None
    to_gate(rt, dep.id)
    deliver_pending(rt, notifier(mock), dep.id)

    told = [slack.click_and_wait("canary_approve", f"{dep.id}:2", user=STRANGER) for _ in range(6)]
    assert [t.startswith("You are not an approver") if t else t for t in told[:3]] == [True] * 3
    assert told[3] is not None and told[3].startswith("Slow down: more than 3 of your requests")
    assert told[4:] == [None, None]
    refusals = [e for e in api.get_events(dep.id, rt=rt) if e.kind == "refused"]
    assert len(refusals) == 4  # nothing recorded once the user is being ignored

    # Commands from that user are not processed either, for the rest of the window ...
    before = len(mock.responses)
    assert slack.command("status payments", user=STRANGER).status == 200
    time.sleep(0.3)
    assert mock.responses[before:] == []
    # ... while everyone else is served as always.
    assert slack.click_and_wait("canary_approve", f"{dep.id}:2", user=SAM) is None
    mock.wait_for(lambda: api.get_deployment(dep.id, rt=rt).state == State.SHIFTING)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("user", "text", "running"),
    [
        (STRANGER, f"deploy payments {IMAGE}", False),  # not a deployer
        (DANA, f"deploy payments {IMAGE} steps=100", False),  # the catalogue's gates skipped
        (DANA, f"deploy payments {IMAGE}", True),  # busy
        (STRANGER, "abort payments", True),  # may not abort
    ],
)
def test_every_kind_of_refused_command_counts(
    slack: Slack, rt: Runtime, user: str, text: str, running: bool
) -> None:
    rt.refusal_limit = 2
    if running:
        assert slack.answer(f"deploy payments {IMAGE}", user=DANA).startswith("Starting")
    answers = [slack.answer(text, user=user) for _ in range(3)]
    assert not answers[0].startswith("Slow down") and answers[1] == answers[0], answers
    assert answers[2].startswith("Slow down"), answers


def test_refused_commands_count_too(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    rt.refusal_limit = 2
    answers = [slack.answer("abort nosuchservice", channel=PAYMENTS_CHANNEL) for _ in range(3)]
    assert answers[0] == answers[1] and "nosuchservice" in answers[0]
    assert answers[2].startswith("Slow down")


def test_the_settings_reach_the_web_process(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(canary_refusal_limit=5, canary_refusal_window=30)  # type: ignore[call-arg]
    rt = runtime_from_env(settings)
    assert (rt.refusal_limit, rt.refusal_window) == (5, 30)
