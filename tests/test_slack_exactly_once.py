"""A worker that dies after Slack took a message but before noting it never posts it twice."""

from __future__ import annotations

import contextlib
from typing import Any

from tests.bot_harness import DANA, IMAGE, PAYMENTS_CHANNEL, event, make_runtime, notifier
from tests.slack_mock import MockSlack
from workers import api
from workers.engine.outbox import deliver_pending
from workers.engine.store import Store


class DiesAfterPosting(Store):
    """A store whose next write of a message's ts is lost, as if the worker was killed."""

    def __init__(self, base: Store) -> None:
        super().__init__(base.redis, base.prefix)
        self.armed = False

    def set_notes(self, dep_id: str, values: dict[str, str]) -> None:
        if self.armed and any(k.startswith(("msg:", "card_ts")) for k in values):
            self.armed = False
            raise SystemExit("killed")  # the worker dies right after Slack answered
        super().set_notes(dep_id, values)


def deliver_through_crash(rt: Any, mock: MockSlack, dep_id: str) -> None:
    with contextlib.suppress(SystemExit):
        deliver_pending(rt, notifier(mock), dep_id)
    rt.store.armed = False
    # the run lock of the dead job is gone with its TTL; a new worker delivers again
    rt.redis.delete(f"{rt.store.prefix}:deliver:{dep_id}")
    deliver_pending(rt, notifier(mock), dep_id)


def test_card_and_replies_are_posted_once_across_a_crash() -> None:
    with MockSlack() as mock:
        rt = make_runtime()
        rt.store = DiesAfterPosting(rt.store)
        answer = api.start_deployment(
            "payments", IMAGE, requester=DANA, channel=PAYMENTS_CHANNEL, rt=rt
        )
        assert answer.ok and answer.deployment is not None
        dep_id = answer.deployment.id
        rt.store.armed = True
        deliver_through_crash(rt, mock, dep_id)  # the card
        cards = mock.channel(PAYMENTS_CHANNEL)
        assert len(cards) == 1

        rt.store.append_event(
            dep_id,
            event(
                "provisioned",
                canary={
                    "virtual_node": f"payments-{dep_id}",
                    "ecs_service": f"payments-{dep_id}",
                    "task_definition": "payments:7",
                },
                desired=2,
            ),
        )
        rt.store.armed = True
        deliver_through_crash(rt, mock, dep_id)  # a thread reply
        replies = mock.thread(PAYMENTS_CHANNEL, cards[0].ts)
        assert len(replies) == 1, [r.shown() for r in replies]
        assert len(mock.api_calls("chat.postMessage")) == 2
