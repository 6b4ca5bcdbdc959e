"""The RQ job functions: each takes ids, reloads state from Redis and does one short step."""

from __future__ import annotations

from workers.engine.outbox import deliver_pending
from workers.engine.runner import Runner
from workers.engine.steps import STEPS
from workers.runtime.context import Runtime, get_runtime
from workers.runtime.notifiers import get_notifier


def runner(rt: Runtime) -> Runner:
    """A Runner of `rt` with the product's step table."""
    return Runner(rt, STEPS)


def run(dep_id: str, version: int) -> str:
    """Do the deployment's current step if it is still at `version`."""
    return runner(get_runtime()).run(dep_id, version)


def deliver(dep_id: str) -> int:
    """Deliver the deployment's pending notifications."""
    return deliver_pending(get_runtime(), get_notifier(), dep_id)


def check(service: str, response_url: str, channel: str | None) -> bool:
    """`/canary check`: run the doctor for one service and post the table to the person who
    asked (the command's response_url); True when every check passed."""
    from workers.doctor import answer_check, slack_client  # the doctor's Slack and AWS reads

    return answer_check(
        get_runtime(), service, response_url=response_url, channel=channel, slack=slack_client()
    )


def publish_homes(attempt: int = 0) -> int:
    """Refresh the App Home of the people who opened it recently (after a state change)."""
    from workers.slack.home_publisher import refresh_homes  # Slack only when a token is set

    client = getattr(get_notifier(), "client", None)
    if client is None:  # no Slack configured: nobody has a Home tab to refresh
        return 0
    return refresh_homes(get_runtime(), client, attempt=attempt)
