"""The Bolt app: Slack credentials from the environment, listeners from bot.handlers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import SecretStr
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.request import payload_utils as payload
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.ack_first import AckFirst
from bot.handlers import Handlers
from bot.permissions import GroupDirectory
from bot.refusal_log import RefusalLog
from workers.runtime import telemetry
from workers.runtime.context import Runtime, get_runtime
from workers.runtime.settings import Settings, load_settings
from workers.slack.client import make_client

#: Listener threads: an ack waits for a free one, so this bounds how many commands are
#: acknowledged at once. A listener only parses and acks, then hands its work over.
LISTENER_THREADS = 64
#: Threads doing the work after the acks (Redis, the engine's API, answers to Slack). Few, so
#: that in a burst the acks are not queued behind that work for the interpreter's lock.
WORK_THREADS = 4

log = logging.getLogger("bot")


class CanaryApp(App):
    """Bolt's App, counting the requests being dispatched so that work lets their acks go first."""

    def __init__(
        self, *, acks: AckFirst, work: ThreadPoolExecutor, signing_secret: str, **kwargs: Any
    ) -> None:
        # Bolt's own check logs each refused request at INFO with its whole body (log injection,
        # and a flood of log lines for anyone without credentials): this class checks instead.
        super().__init__(
            signing_secret=signing_secret, request_verification_enabled=False, **kwargs
        )
        self.acks = acks
        #: Where the work after the acks runs; `close` waits for it.
        self.work = work
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._refusals = RefusalLog(
            log, "refused a request with a missing, wrong or stale signature%s"
        )

    def close(self) -> None:
        """Finish the work already handed over (answers to Slack), then take no more."""
        self.work.shutdown(wait=True)

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        """Answer one request from Slack (HTTP or Socket Mode), counted and timed by kind."""
        started = time.perf_counter()
        response = self._answer(req)
        kind = request_kind(req.body)
        telemetry.SLACK_REQUESTS.labels(kind, str(response.status)).inc()
        telemetry.SLACK_ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return response

    def _answer(self, req: BoltRequest) -> BoltResponse:
        if not self.verified(req):
            return BoltResponse(status=401, body={"error": "invalid request"})
        if not takes_apart(req.body):
            log.warning("refused a signed request whose payload has fields of the wrong type")
            return BoltResponse(status=400, body="bad request")
        with self.acks.acking():
            return super().dispatch(req)

    def verified(self, req: BoltRequest) -> bool:
        """Whether `req` is signed with the signing secret, within Slack's 5 minutes."""
        if req.mode == "socket_mode":  # came over the app's own authenticated WebSocket
            return True
        timestamp = req.headers.get("x-slack-request-timestamp", ["0"])[0]
        signature = req.headers.get("x-slack-signature", [""])[0]
        if self._verifier is not None and self._verifier.is_valid(
            req.raw_body, timestamp, signature
        ):
            return True
        self._refusals.note()
        return False


#: Kinds of request counted by name (`type` of an interaction or an Events API envelope).
_KINDS = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
        "event_callback",
        "url_verification",
    }
)


def request_kind(body: object) -> str:
    """What a request from Slack is, from a fixed set (its body is not trusted yet): a label."""
    if not isinstance(body, dict):
        return "other"
    if "command" in body and "type" not in body:
        return "command"
    kind = body.get("type")
    return kind if isinstance(kind, str) and kind in _KINDS else "other"


def takes_apart(body: dict[str, Any]) -> bool:
    """Whether Bolt can take `body` apart: it reads these parts for every middleware and error
    handler, and answers 500 (its error handler tripping over them again) when one raises."""
    try:
        # Each part is then read as a mapping (`action["action_id"]`, `.get`): None or a dict.
        return all(isinstance(part(body), dict | type(None)) for part in _PARTS)
    except (TypeError, KeyError, AttributeError, IndexError, ValueError):
        return False


_PARTS = (
    payload.to_options,
    payload.to_shortcut,
    payload.to_action,
    payload.to_view,
    payload.to_command,
    payload.to_event,
    payload.to_message,
    payload.to_step,
)


def create_app(
    rt: Runtime | None = None,
    client: WebClient | None = None,
    *,
    settings: Settings | None = None,
) -> CanaryApp:
    """The app; `rt` and `client` default to the process's Runtime and a client on SLACK_API_URL."""
    settings = settings or load_settings()
    if client is None:
        client = make_client(_secret(settings.slack_bot_token), settings.slack_api_url)
    acks = AckFirst()
    work = ThreadPoolExecutor(max_workers=WORK_THREADS, thread_name_prefix="canary-work")
    app = CanaryApp(
        acks=acks,
        work=work,
        client=client,
        signing_secret=_secret(settings.slack_signing_secret),
        process_before_response=True,  # listeners only ack and hand over: no 10 ms ack polling
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="canary-listener"
        ),
        logger=logging.getLogger("bot.bolt"),
    )
    Handlers(
        runtime=(lambda: rt) if rt is not None else get_runtime,
        groups=GroupDirectory(client),
        later=lambda job: work.submit(_after_acks, acks, job),
    ).register(app)
    return app


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _after_acks(acks: AckFirst, job: Callable[[], None]) -> None:
    acks.wait_for_acks()
    try:
        job()
    except Exception:  # a future nobody reads would swallow it
        logging.getLogger("bot").exception("work after an ack failed")
