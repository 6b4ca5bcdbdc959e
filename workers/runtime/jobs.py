"""The RQ job functions: each takes ids, reloads state from Redis and does one short step."""

from __future__ import annotations

import logging

from workers.engine.outbox import deliver_pending
from workers.engine.runner import Runner
from workers.engine.slots import run_slot as run_checks
from workers.engine.steps import STEPS
from workers.runtime.context import Runtime, get_runtime
from workers.runtime.notifiers import get_notifier
from workers.runtime.queues import SlotScheduler

log = logging.getLogger(__name__)


def runner(rt: Runtime) -> Runner:
    """A Runner of `rt` with the product's step table."""
    return Runner(rt, STEPS)


def run(dep_id: str, version: int) -> str:
    """Do the deployment's current step if it is still at `version`."""
    return runner(get_runtime()).run(dep_id, version)


def run_slot(slot: float) -> str:
    """Run the checks due by `slot` (epoch seconds), at most SLOT_CHUNK of them in this job."""
    rt = get_runtime()
    if not isinstance(rt.scheduler, SlotScheduler):
        raise TypeError("a slot job needs a scheduler with slots")
    return run_checks(runner(rt), rt.scheduler, slot)


def deliver(dep_id: str) -> int:
    """Deliver the deployment's pending notifications."""
    return deliver_pending(get_runtime(), get_notifier(), dep_id)


def chart(dep_id: str, what: str, attempt: int = 0) -> str:
    """Draw the deployment's chart and upload it into its thread, once for occasion `what`;
    retried or dropped by the outbox's rules (workers/slack/chart_upload.py)."""
    # matplotlib and the Slack client: loaded by the notify worker only.
    from workers.engine.outbox import RetryLater, Undeliverable
    from workers.slack import chart_upload
    from workers.slack.notifier import SlackNotifier

    rt, notifier = get_runtime(), get_notifier()
    if not isinstance(notifier, SlackNotifier):
        return "no Slack"
    try:
        return chart_upload.post_chart(
            notifier.client, rt.store, dep_id, what, now=rt.clock()
        ).outcome
    except Undeliverable as exc:
        log.error("deployment %s: chart %s cannot be shown, dropped: %s", dep_id, what, exc)
        return "dropped"
    except Exception as exc:  # RetryLater, or a failure nobody sorted: again, a few times
        asked = exc.seconds if isinstance(exc, RetryLater) else None
        if chart_upload.gives_up(attempt):
            log.error(
                "deployment %s: chart %s failed %d times, dropped: %s",
                dep_id,
                what,
                attempt + 1,
                exc,
            )
            return "dropped"
        delay = chart_upload.retry_delay(attempt, asked)
        log.warning("deployment %s: chart %s failed (%s); again in %gs", dep_id, what, exc, delay)
        rt.scheduler.chart(dep_id, what, delay=delay, attempt=attempt + 1)
        return "retrying"


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
