"""The Bolt app: Slack credentials from the environment, listeners from bot.handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import SecretStr
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot.ack_first import AckFirst
from bot.handlers import Handlers
from bot.permissions import GroupDirectory
from workers.runtime.context import Runtime, get_runtime
from workers.runtime.settings import Settings, load_settings
from workers.slack.notifier import make_client

#: Listener threads: an ack waits for a free one, so this bounds how many commands are
#: acknowledged at once. A listener only parses and acks, then hands its work over.
LISTENER_THREADS = 64
#: Threads doing the work after the acks (Redis, the engine's API, answers to Slack). Few, so
#: that in a burst the acks are not queued behind that work for the interpreter's lock.
WORK_THREADS = 4


class CanaryApp(App):
    """Bolt's App, counting the requests being dispatched so that work lets their acks go first."""

    def __init__(self, *, acks: AckFirst, work: ThreadPoolExecutor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.acks = acks
        #: Where the work after the acks runs; `close` waits for it.
        self.work = work

    def close(self) -> None:
        """Finish the work already handed over (answers to Slack), then take no more."""
        self.work.shutdown(wait=True)

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        with self.acks.acking():
            return super().dispatch(req)


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
