"""Which Slack failures are worth trying again, and which can never succeed (pure).

Slack answers a refused call with HTTP 200 and `{"ok": false, "error": "<code>"}`, a rate limit
with HTTP 429 and `Retry-After: <seconds>`, and its own trouble with 5xx. The codes below are the
ones the methods this product calls document (https://docs.slack.dev/reference/methods/
chat.postMessage, .../chat.update, .../conversations.replies; the rate limits at
https://docs.slack.dev/apis/web-api/rate-limits: "a Retry-After HTTP header containing the number
of seconds until you can retry"). Retrying a permanent one only blocks the messages behind it.
"""

from __future__ import annotations

import enum
import math
import socket
import urllib.error
from dataclasses import dataclass
from http.client import HTTPException

from slack_sdk.errors import SlackApiError, SlackClientError


class Kind(enum.Enum):
    """What a failure means for the message that met it."""

    #: Slack was busy or unreachable: the same call may succeed later (429, 5xx, a timeout).
    RETRY = "retry"
    #: The channel or thread cannot be posted to: the bot is not in it, it is gone or archived.
    UNREACHABLE = "unreachable"
    #: The message to edit is gone (someone deleted it) or may no longer be edited.
    GONE = "gone"
    #: Slack refuses this message's content (blocks, length, metadata): send something simpler.
    CONTENT = "content"
    #: The token or its scopes cannot do this at all: nothing posted with it will get through.
    NO_ACCESS = "no_access"
    #: A code this module does not know: tried again a few times, then given up.
    UNKNOWN = "unknown"


# Codes from the methods' "Errors" tables (chat.postMessage, chat.update, chat.delete,
# conversations.replies/history/open) and the common errors every method may return.
_CODES: dict[Kind, frozenset[str]] = {
    Kind.RETRY: frozenset(
        {
            "ratelimited",
            "rate_limited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
            "team_added_to_org",  # "temporarily unavailable while the team is migrated"
        }
    ),
    Kind.UNREACHABLE: frozenset(
        {
            "not_in_channel",
            "channel_not_found",
            "is_archived",
            "channel_is_archived",
            "thread_not_found",
            "cannot_reply_to_message",
            "restricted_action",
            "restricted_action_read_only_channel",
            "restricted_action_thread_only_channel",
            "restricted_action_non_threadable_channel",
            "team_access_not_granted",
            "ekm_access_denied",
            "user_not_found",
            "user_disabled",
            "cannot_dm_bot",
            "messages_tab_disabled",
        }
    ),
    Kind.GONE: frozenset({"message_not_found", "cant_update_message", "edit_window_closed"}),
    Kind.CONTENT: frozenset(
        {
            "invalid_blocks",
            "invalid_blocks_format",
            "msg_too_long",
            "msg_blocks_too_long",
            "no_text",
            "too_many_attachments",
            "invalid_attachments",
            "invalid_metadata_format",
            "invalid_metadata_schema",
            "metadata_too_large",
            "metadata_must_be_sent_from_app",
            "invalid_arguments",
            "invalid_arg_name",
            "invalid_array_arg",
            "invalid_charset",
            "invalid_form_data",
            "invalid_post_type",
            "missing_post_type",
            "invalid_json",
            "json_not_object",
        }
    ),
    Kind.NO_ACCESS: frozenset(
        {
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "token_expired",
            "account_inactive",
            "missing_scope",
            "no_permission",
            "not_allowed_token_type",
            "access_denied",
            "accesslimited",
            "org_login_required",
            "two_factor_setup_required",
            "enterprise_is_restricted",
            "deprecated_endpoint",
            "method_deprecated",
            "not_authorized",
        }
    ),
}
_KIND_OF = {code: kind for kind, codes in _CODES.items() for code in codes}
#: Exceptions of the transport (no answer from Slack, or a broken one): worth trying again.
_TRANSPORT = (OSError, TimeoutError, socket.timeout, urllib.error.URLError, HTTPException)


@dataclass(frozen=True)
class SlackFailure:
    """A failed Slack call, sorted: what it means, Slack's code, how long Slack asked to wait."""

    kind: Kind
    #: Slack's error code ("not_in_channel"), or the exception's class for transport failures.
    code: str
    #: Seconds from the Retry-After header of a 429 (honoured exactly), else None.
    retry_after: float | None = None
    #: The API method that failed ("chat.postMessage"), when known.
    method: str | None = None
    #: The HTTP status of Slack's answer (None when there was no answer).
    status: int | None = None

    @property
    def permanent(self) -> bool:
        """True when the same call can never succeed (retrying only blocks what follows)."""
        return self.kind not in (Kind.RETRY, Kind.UNKNOWN)

    def describe(self) -> str:
        """ "chat.postMessage: not_in_channel (HTTP 200)": for logs; never holds the token."""
        where = f"{self.method}: " if self.method else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        wait = f", Retry-After {self.retry_after:g}s" if self.retry_after is not None else ""
        return f"{where}{self.code}{status}{wait}"


def classify(exc: BaseException) -> SlackFailure | None:
    """Sort a failed Slack call; None when `exc` is not a Slack or transport failure (a bug)."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", None)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        code = str(data.get("error") or f"http_{status}")
        method = _method(str(getattr(response, "api_url", "") or ""))
        retry_after = _retry_after(getattr(response, "headers", None) or {})
        if status == 429 or code in ("ratelimited", "rate_limited"):
            return SlackFailure(
                Kind.RETRY, code, retry_after if retry_after else 1.0, method, status
            )
        if status is not None and status >= 500:
            return SlackFailure(Kind.RETRY, code, None, method, status)
        return SlackFailure(_KIND_OF.get(code, Kind.UNKNOWN), code, None, method, status)
    if isinstance(exc, _TRANSPORT):
        return SlackFailure(Kind.RETRY, type(exc).__name__)
    if isinstance(exc, SlackClientError):  # the SDK refused the call itself (bad arguments)
        return SlackFailure(Kind.UNKNOWN, type(exc).__name__)
    return None


def kind_of(code: str) -> Kind:
    """The kind of one of Slack's error codes (Kind.UNKNOWN when not listed here)."""
    return _KIND_OF.get(code, Kind.UNKNOWN)


def _method(url: str) -> str | None:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name or None


def _retry_after(headers: dict[str, object]) -> float | None:
    """Retry-After in seconds (header names are case-insensitive; a list is the SDK's shape)."""
    for name, value in headers.items():
        if name.lower() != "retry-after":
            continue
        raw = value[0] if isinstance(value, list | tuple) and value else value
        try:
            seconds = float(str(raw))
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None
