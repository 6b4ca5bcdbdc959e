"""Test fixtures for the Slack side: a Runtime on fakeredis, signed requests, an engine stand-in."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

from bot.server import make_server
from sandbox.slack_user import TEAM, block_actions_body, command_body
from sandbox.slack_user import signed_headers as _signed_headers
from tests.fakes import fake_runtime, no_aws
from tests.slack_mock import MockSlack
from workers.analysis.judge import Counts, Outcome, Verdict
from workers.domain.catalogue import parse_catalogue
from workers.domain.deployment import Deployment
from workers.domain.events import EVENTS, Event
from workers.domain.state import State
from workers.runtime.context import Runtime
from workers.slack.client import make_client
from workers.slack.notifier import SlackNotifier

TOKEN = "xoxb-0000-test-token-do-not-log"
SECRET = "signing-secret-do-not-log-0123456789"
PAYMENTS_CHANNEL, OTHER_CHANNEL = "C0PAYMENTS", "C0RANDOM"
DANA, SAM, LEE, GRACE, STRANGER = "U0DANA", "U0SAM", "U0LEE", "U0GRACE", "U0STRANGER"
DEPLOY_GROUP = "S0DEPLOY"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v42"
OLD_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v41"

CATALOGUE: dict[str, Any] = {
    "defaults": {"bake": "5m", "analysis_interval": "1m"},
    "services": {
        "payments": {
            "cluster": "prod",
            "mesh": "prod-mesh",
            "virtual_router": "payments-vr",
            "route": "payments-route",
            "channel": PAYMENTS_CHANNEL,
            "deployers": [DANA, DEPLOY_GROUP],
            "approvers": [SAM, LEE],
        },
        "search": {
            "cluster": "prod",
            "mesh": "prod-mesh",
            "virtual_router": "search-vr",
            "route": "search-route",
        },
        "web": {
            "cluster": "prod",
            "mesh": "prod-mesh",
            "virtual_router": "web-vr",
            "route": "web-route",
            "gates": "auto",
        },
    },
}


def make_runtime(catalogue: dict[str, Any] | None = None) -> Runtime:
    """The bot tests' Runtime: fakeredis, a recording scheduler, real time, and no AWS at all."""
    return fake_runtime(parse_catalogue(catalogue or CATALOGUE), time.time, aws=no_aws)


def notifier(mock: MockSlack, *, clock: Callable[[], float] = time.time) -> SlackNotifier:
    return SlackNotifier(
        make_client(TOKEN, mock.base_url, retry_interval=0.01),
        clock=clock,
    )


@contextmanager
def serving(app: App, **settings: Any) -> Iterator[str]:
    """The bot's real HTTP transport (waitress) on a free loopback port; yields its base URL."""
    server = make_server(app, "127.0.0.1", 0, **settings)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{int(server.effective_port)}"
    finally:
        # waitress has no stop() for a loop in another thread: close every channel (the loop
        # ends when its map is empty), then its worker threads, as webtest's StopableWSGIServer.
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
        while server._map:
            for channel in list(server._map.values()):
                channel.handle_close()
        server.task_dispatcher.shutdown()
        thread.join(5)
        logging.getLogger("waitress").setLevel(logging.NOTSET)


# signed requests -------------------------------------------------------------------------------
def signed_headers(body: str, *, timestamp: int | None = None, secret: str = SECRET) -> dict:
    """Headers Slack would send with `body` (the sandbox's signer, with the tests' secret)."""
    return _signed_headers(body, secret=secret, timestamp=timestamp)


class Slack:
    """People typing commands and clicking buttons, dispatched through the real Bolt app."""

    def __init__(self, app: App, mock: MockSlack) -> None:
        self.app, self.mock = app, mock

    def dispatch(self, body: str, headers: dict | None = None, **sign: Any) -> BoltResponse:
        return self.app.dispatch(
            BoltRequest(body=body, headers=headers or signed_headers(body, **sign))
        )

    def command_body(self, text: str, user: str, channel: str, team: str = TEAM) -> str:
        return command_body(
            text, user=user, channel=channel, response_url=self.mock.response_url(), team=team
        )

    def command(
        self,
        text: str,
        *,
        user: str = DANA,
        channel: str = PAYMENTS_CHANNEL,
        team: str = TEAM,
        extra_headers: dict | None = None,
        **sign: Any,
    ) -> BoltResponse:
        body = self.command_body(text, user, channel, team)
        headers = signed_headers(body, **sign)
        headers.update(extra_headers or {})
        return self.dispatch(body, headers)

    def answer(self, text: str, **kwargs: Any) -> str:
        """Type a command and return the ephemeral answer (the ack's, else the response_url's)."""
        before = len(self.mock.responses)
        response = self.command(text, **kwargs)
        assert response.status == 200, response.body
        if response.body:
            return json.loads(response.body)["text"]
        got = self.mock.wait_for(lambda: self.mock.responses[before:])
        return got[0]["text"]

    def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        channel: str = PAYMENTS_CHANNEL,
        message_ts: str = "1700000000.000009",
        thread_ts: str | None = "1700000000.000001",
        team: str = TEAM,
        user_team: str | None = None,
    ) -> BoltResponse:
        body = block_actions_body(
            action_id,
            value,
            user=user,
            channel=channel,
            message_ts=message_ts,
            thread_ts=thread_ts,
            response_url=self.mock.response_url(),
            team=team,
            user_team=user_team,
        )
        return self.dispatch(body)

    def click_and_wait(self, action_id: str, value: str, *, user: str, **kw: Any) -> str | None:
        """Click and return what the clicker is told (None when told nothing within 0.3 s).

        A click that succeeds tells nothing (the thread shows it); tests then wait for the
        state they expect rather than trusting this short grace.
        """
        before = len(self.mock.ephemeral_texts())
        response = self.click(action_id, value, user=user, **kw)
        assert response.status == 200
        try:
            return self.mock.wait_for(lambda: self.mock.ephemeral_texts()[before:], 0.3)[0]
        except AssertionError:
            return None


# an engine stand-in ----------------------------------------------------------------------------
def advance(
    rt: Runtime,
    dep_id: str,
    state: State,
    events: Iterable[Event] = (),
    mutate: Callable[[Deployment], None] | None = None,
) -> Deployment:
    """Move a deployment to `state` with `events`, as the engine would (compare-and-set)."""
    dep = rt.store.get(dep_id)
    assert dep is not None
    pending = list(events)

    def change(d: Deployment) -> list[Event]:
        if mutate:
            mutate(d)
        d.state = state
        for event in pending:
            event.state = state
            if event.step is None and d.step_number:
                event.step = d.step_number
        return pending

    return rt.store.transition(dep_id, dep.version, change)


def event(kind: str, **fields: Any) -> Event:
    """An event of `kind` with its typed fields, as the engine writes it."""
    return EVENTS.validate_python({"kind": kind, "at": time.time(), **fields})


def verdict(
    canary: tuple[int, int],
    stable: tuple[int, int],
    outcome: str = "pass",
    reason: str | None = None,
) -> Verdict:
    return Verdict(
        outcome=Outcome(outcome),
        canary=Counts(*canary),
        stable=Counts(*stable),
        threshold_pct=1.0,
        wilson_lower_pct=0.1,
        p_value=0.6,
        alarms_firing=(),
        reason=reason or f"canary {canary[1]} × 5xx of {canary[0]} req",
    )


def to_gate(rt: Runtime, dep_id: str) -> Deployment:
    """Provision, make ready, shift to step 1, pass it and open the gate of step 2."""
    advance(
        rt,
        dep_id,
        State.WAITING_READY,
        [
            event(
                "provisioned",
                canary={
                    "task_definition": "payments:58",
                    "virtual_node": f"payments-{dep_id}",
                    "ecs_service": f"payments-{dep_id}",
                },
                desired=2,
                old_image=OLD_IMAGE,
            )
        ],
        mutate=lambda d: setattr(d, "old_image", OLD_IMAGE),
    )

    def first(d: Deployment) -> None:
        d.step_index, d.step_started_at = 0, time.time()

    advance(
        rt,
        dep_id,
        State.BAKING,
        [
            event("ready", running=2, desired=2),
            event("shifted", weight=10, route="route payments-route"),
        ],
        mutate=first,
    )
    v = verdict((1204, 3), (10877, 31))

    def gate(d: Deployment) -> None:
        d.gate_opened_at, d.last_verdict = time.time(), v

    return advance(
        rt,
        dep_id,
        State.AWAITING_APPROVAL,
        [
            event("step_passed", step=1, weight=10, verdict=v),
            event("gate_opened", next_step=2, next_weight=25, timeout_at=time.time() + 86400),
        ],
        mutate=gate,
    )
