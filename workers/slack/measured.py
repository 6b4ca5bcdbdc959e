"""slack-sdk's WebClient, counting its calls and their errors by method for the metrics.

slack-sdk has no hook around a call (its retry handlers see only failures), and every method of
the WebClient goes through `api_call`: overriding that one method counts them all.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from workers.runtime.telemetry import SLACK_CALLS, SLACK_ERRORS


class MeasuredWebClient(WebClient):
    """A WebClient whose calls (after its retries) and failures are counted by method."""

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        SLACK_CALLS.labels(api_method).inc()
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            SLACK_ERRORS.labels(api_method, str(error or "unknown")).inc()
            raise
        except Exception as exc:  # no answer (a timeout, a refused connection): its kind
            SLACK_ERRORS.labels(api_method, type(exc).__name__).inc()
            raise
