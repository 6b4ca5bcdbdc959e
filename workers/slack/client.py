"""The bot's Slack WebClient: where it points, which calls it repeats, what its failures mean.

`make_client` builds a WebClient on SLACK_API_URL that repeats a call once after a broken
connection or a 5xx, except a call that posts (`_POSTS`): a repeat could post twice, so those
go back to the outbox, which looks before posting again (workers/slack/posting.py). A 429 is
never waited out here: `sorted_failures` turns it into the outbox's `RetryLater` with Slack's
Retry-After, and a permanent refusal into `Undeliverable` (sorted by workers.slack.errors).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from workers.engine.outbox import RetryLater, Undeliverable
from workers.runtime.settings import load_settings
from workers.slack.errors import Kind, SlackFailure, classify
from workers.slack.measured import MeasuredWebClient


def slack_api_url() -> str:
    """SLACK_API_URL (with or without a trailing "/"), else Slack's own, always ending in "/"."""
    return load_settings().slack_api_url


#: Methods that create a message: never repeated inside one call (a connection that broke after
#: Slack took the request would post twice). The outbox retries them with its exactly-once lookup.
_POSTS = (
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.scheduleMessage",
    "chat.meMessage",
    "files.completeUploadExternal",  # shares a file: a chart posted twice (chart_upload.py)
)


class _NeverRepost(RetryHandler):
    """Another retry handler, except for the methods that post (see _POSTS)."""

    def __init__(self, inner: RetryHandler) -> None:
        super().__init__(
            max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator
        )
        self.inner = inner

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.rstrip("/").endswith(_POSTS):
            return False
        return self.inner._can_retry(state=state, request=request, response=response, error=error)


def retry_handlers(interval: float = 0.5) -> list[RetryHandler]:
    """One quick retry of a broken connection or a 5xx, for calls that cannot post twice.

    No rate-limit handler: a 429 goes back to the outbox, which waits exactly the Retry-After
    Slack asked for (however long) without holding a worker, then looks before posting again.
    """
    return [
        _NeverRepost(ConnectionErrorRetryHandler(max_retry_count=1)),
        _NeverRepost(
            ServerErrorRetryHandler(
                max_retry_count=1,
                interval_calculator=FixedValueRetryIntervalCalculator(interval),
            )
        ),
    ]


def make_client(
    token: str, base_url: str | None = None, *, retry_interval: float = 0.5
) -> WebClient:
    """A WebClient on SLACK_API_URL with the retry handlers above."""
    url = base_url or slack_api_url()
    return MeasuredWebClient(  # a WebClient whose calls the metrics count
        token=token,
        base_url=url if url.endswith("/") else url + "/",
        timeout=10,
        retry_handlers=retry_handlers(retry_interval),
    )


@contextmanager
def sorted_failures(dep_id: str) -> Iterator[None]:
    """Turn a failed Slack call into what the outbox understands (see workers.engine.outbox).

    Retryable: RetryLater with Slack's Retry-After. Permanent: Undeliverable (logged as an error
    by the outbox). Unknown codes and bugs go through as they are: retried a few times.
    """
    try:
        yield
    except (RetryLater, Undeliverable):
        raise
    except Exception as exc:
        failure = classify(exc)
        if failure is None or failure.kind is Kind.UNKNOWN:
            raise
        if failure.kind is Kind.RETRY:
            # A reply waiting for chat.postMessage's per-channel limit need not hold the card:
            # chat.update has its own (Tier 3, https://docs.slack.dev/reference/methods/chat.update).
            posting = failure.method == "chat.postMessage"
            raise RetryLater(
                f"Slack {failure.describe()}", failure.retry_after, summary_ok=posting
            ) from exc
        raise Undeliverable(f"Slack refused {failure.describe()}") from exc


def permanent(exc: Exception, *kinds: Kind) -> SlackFailure | None:
    """The failure of `exc` when it is a Slack refusal of one of `kinds`, else None."""
    failure = classify(exc)
    return failure if failure is not None and failure.kind in kinds else None
