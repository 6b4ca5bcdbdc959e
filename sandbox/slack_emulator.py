"""A local Slack Web API: keeps channels, threads and ephemeral answers as people would see them.

Bound to 127.0.0.1 on a free port; `base_url` goes into WebClient(base_url=...) or SLACK_API_URL.
Used by the sandbox, `make demo` and the end-to-end tests (sandbox.world); the unit tests use
it as tests/slack_mock.MockSlack (member of the tests' channels, no rate limit by default).

As strict as Slack where the product could get it wrong:

- every message's blocks are parsed and validated with slack_sdk.models.blocks and checked
  against Block Kit's documented limits (50 blocks, 3,000 characters per text object, 75 per
  button label: https://docs.slack.dev/reference/block-kit/blocks), answering `invalid_blocks`;
  text over 40,000 characters answers `msg_too_long` (chat.postMessage, "Truncating content":
  https://docs.slack.dev/reference/methods/chat.postMessage) -- response_url posts too, with
  HTTP 400 and the code as the body;
- the bot is a member only of the channels it was given (`channels`, `invite`): elsewhere
  chat.postMessage, chat.update, chat.delete, chat.postEphemeral and conversations.* answer
  `not_in_channel`; an archived channel answers `is_archived`. A user id as the channel posts in
  the app's direct messages with that person (`dms(user)`);
- chat.postMessage is limited per channel to `post_rate` messages a second with bursts of
  `post_burst` ("chat.postMessage generally allows posting one message per second per channel",
  https://docs.slack.dev/apis/web-api/rate-limits), answering HTTP 429 with `Retry-After`
  (whole seconds, as Slack sends it); `post_rate=None` turns it off;
- messages can be deleted (chat.delete, or `delete_as_user` as a person would): a later
  chat.update answers `message_not_found`, as Slack's chat.update documents;
- views.publish (the App Home tab, https://docs.slack.dev/reference/methods/views.publish) takes
  `user_id` and `view` (both required: `invalid_arguments` without them), a view of type `home`
  parsed with slack_sdk.models.views.View (1 to 100 blocks, each valid as above; a
  private_metadata of at most 3,000 characters, a callback_id of at most 255:
  https://docs.slack.dev/reference/views/home-tab-views), else `invalid_arguments`; a view over
  250 kB answers `view_too_large`; with the app's Home tab off (`home_tab_enabled=False`),
  `not_enabled`. Published views are kept per user (`home(user)`) with their buttons.
- files are shared the way slack-sdk's `files_upload_v2` does it, in three calls, each as
  strict as Slack's reference says (https://docs.slack.dev/reference/methods/
  files.getUploadURLExternal and .../files.completeUploadExternal): files.getUploadURLExternal
  needs `filename` and a positive `length` and answers an `upload_url` and a `file_id`; the
  bytes POSTed to that URL must be exactly `length` long (HTTP 200 "OK - <length>", else 400);
  files.completeUploadExternal shares uploaded files once ("This method can only be called
  once"), in a channel the bot is in, as a reply when `thread_ts` names a top-level message
  ("Never use a reply's ts value; use its parent instead"). The file then shows in the thread as
  a message with `files`; `uploads` keeps the bytes. Both file methods need the `files:write`
  scope: `revoke_scope("files:write")` makes them answer `missing_scope`, and
  `fail(..., methods=...)` limits a fault to some methods (or to "upload", the upload URL).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

#: Slack's documented limits (see the module docstring).
MAX_BLOCKS, MAX_TEXT_OBJECT, MAX_MESSAGE_TEXT = 50, 3000, 40_000
#: A Home tab view: at most 100 blocks, and 250 kB in all (views.publish: "view_too_large").
MAX_VIEW_BLOCKS, MAX_VIEW_BYTES = 100, 250_000
#: Limits of a confirmation dialog's texts (composition objects: confirm).
_CONFIRM_LIMITS = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
#: Methods that need the bot to be a member of the channel they name.
_IN_CHANNEL = frozenset(
    {
        "chat.postMessage",
        "chat.update",
        "chat.delete",
        "chat.postEphemeral",
        "chat.getPermalink",
        "conversations.history",
        "conversations.replies",
        "files.completeUploadExternal",
    }
)
#: Methods that need a scope the app may be made to lack (`revoke_scope`).
_SCOPES = {
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
#: Slack's limit on one file (https://docs.slack.dev/messaging/working-with-files: 1 GB).
MAX_FILE_BYTES = 1024**3


@dataclass
class Call:
    """One request the mock received."""

    method: str
    params: dict[str, Any]
    status: int = 200


@dataclass
class Posted:
    """A message as the channel shows it now (updates applied)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    updates: int = 0
    #: Wall-clock time the message was posted (Slack shows it beside the message).
    posted_at: float = field(default_factory=time.time)
    #: Slack message metadata (event_type, event_payload), returned with include_all_metadata.
    metadata: dict[str, Any] | None = None
    #: Files shared with the message (files.completeUploadExternal), as the Web API lists them.
    files: list[dict[str, Any]] = field(default_factory=list)

    def buttons(self) -> list[dict[str, Any]]:
        """Every button in the message's actions blocks."""
        return _buttons(self.blocks)

    def button(self, action_id: str) -> dict[str, Any] | None:
        return next((b for b in self.buttons() if b.get("action_id") == action_id), None)

    def shown(self) -> str:
        """The text a reader sees: every text of every block, else the fallback text."""
        parts = [_shown(self.blocks)] if self.blocks else []
        parts = [p for p in parts if p]
        if self.files:
            head = parts or ([self.text] if self.text else [])
            parts = head + [f"[file: {f.get('title') or f.get('name')}]" for f in self.files]
        return "\n".join(parts) if parts else self.text


@dataclass
class HomeView:
    """A person's App Home tab as the last views.publish left it."""

    user: str
    id: str
    blocks: list[dict[str, Any]]
    #: How many times it was published.
    publishes: int = 1

    def buttons(self) -> list[dict[str, Any]]:
        return _buttons(self.blocks)

    def button(self, action_id: str, value_prefix: str = "") -> dict[str, Any] | None:
        """The first button `action_id` whose value starts with `value_prefix`."""
        return next(
            (
                b
                for b in self.buttons()
                if b.get("action_id") == action_id
                and str(b.get("value", "")).startswith(value_prefix)
            ),
            None,
        )

    def block_of(self, button: dict[str, Any]) -> str:
        """The block_id of the actions block holding `button`."""
        return next(
            (
                b.get("block_id", "")
                for b in self.blocks
                if b.get("type") == "actions" and button in b.get("elements", [])
            ),
            "",
        )

    def shown(self) -> str:
        return _shown(self.blocks)


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every button in the actions blocks of `blocks`."""
    return [
        element
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]


def _shown(blocks: list[dict[str, Any]]) -> str:
    """Every text of every block, as a reader sees them (buttons as [label])."""
    parts: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for element in block.get("elements", []):
            if element.get("type") in ("mrkdwn", "plain_text"):
                parts.append(element.get("text", ""))
            elif element.get("type") == "button":
                parts.append(f"[{element['text']['text']}]")
    return "\n".join(parts)


@dataclass
class Upload:
    """A file on its way through files_upload_v2: announced, uploaded, then shared."""

    file_id: str
    filename: str
    length: int
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    #: Where it was shared (files.completeUploadExternal), once it was.
    channel: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None
    #: Where the emulator saved the bytes (`save_dir`), once shared.
    path: Path | None = None

    @property
    def shared(self) -> bool:
        return self.message_ts is not None


@dataclass
class Fault:
    status: int
    until: float
    remaining: int
    retry_after: int | None
    #: Slack's error code in the answer (default: by status, "ratelimited" or "internal_error").
    error: str | None = None
    #: Only these methods fail ("upload" is the upload URL); None: every call.
    methods: frozenset[str] | None = None


class SlackEmulator:
    """The emulator's server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        groups: dict[str, list[str]] | None = None,
        *,
        channels: Iterable[str] = (),
        post_rate: float | None = 1.0,
        post_burst: int = 5,
        home_tab_enabled: bool = True,
    ) -> None:
        #: The app's Home tab (the manifest's features.app_home.home_tab_enabled).
        self.home_tab_enabled = home_tab_enabled
        #: Each person's App Home tab as last published.
        self.homes: dict[str, HomeView] = {}
        self.groups: dict[str, list[str]] = dict(groups or {})
        #: Channels the bot is a member of; archived channels.
        self.members: set[str] = set(channels)
        self.archived: set[str] = set()
        #: chat.postMessage per channel: messages a second (None: unlimited) and the burst.
        self.post_rate, self.post_burst = post_rate, post_burst
        self._buckets: dict[str, tuple[float, float]] = {}
        #: Messages deleted (chat.delete or delete_as_user), as they read when deleted.
        self.deleted: dict[tuple[str, str], Posted] = {}
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Posted] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        #: response_url posts by the url's number, so an answer is matched to its command.
        self.responses_by_url: dict[str, list[dict[str, Any]]] = {}
        #: What single people were shown, in order: chat.postEphemeral and response_url posts.
        self.private: list[dict[str, Any]] = []
        self.tokens_seen: set[str] = set()
        self._fault: Fault | None = None
        #: Files by id (files.getUploadURLExternal), with their bytes once uploaded.
        self.uploads: dict[str, Upload] = {}
        #: Scopes the app lacks: the methods that need them answer `missing_scope`.
        self.missing_scopes: set[str] = set()
        self._file_ids = itertools.count(1)
        #: A directory to save shared files in, so a person can open them (the sandbox's).
        self.save_dir: Path | None = None
        #: Seconds every answer waits before it is given (a slow Slack).
        self.delay = 0.0
        self._ts = itertools.count(1)
        self._response_urls = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    def start(self) -> SlackEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # fault injection -------------------------------------------------------------------------
    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1_000_000,
        seconds: float = 3600.0,
        retry_after: int | None = None,
        error: str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer the next `times` API calls (for at most `seconds`) with `status` (and `error`:
        e.g. `fail(200, error="token_revoked")` for a permanent refusal); with `methods`, only
        calls of those methods ("upload": a POST to an upload URL)."""
        only = frozenset(methods) if methods is not None else None
        with self._lock:
            self._fault = Fault(status, time.monotonic() + seconds, times, retry_after, error, only)

    def heal(self) -> None:
        with self._lock:
            self._fault = None

    # the workspace ---------------------------------------------------------------------------
    def invite(self, channel: str) -> None:
        """The bot joins `channel` (/invite @canary)."""
        with self._lock:
            self.members.add(channel)

    def remove_bot(self, channel: str) -> None:
        """Someone removes the bot from `channel`."""
        with self._lock:
            self.members.discard(channel)

    def revoke_scope(self, scope: str) -> None:
        """The app is installed without `scope` (e.g. before `files:write` was added)."""
        with self._lock:
            self.missing_scopes.add(scope)

    def archive(self, channel: str) -> None:
        with self._lock:
            self.archived.add(channel)

    def delete_as_user(self, channel: str, ts: str) -> Posted:
        """A person deletes a message (the bot's card, a gate): gone, its replies stay."""
        with self._changed:
            message = self.messages.pop((channel, ts))
            self.deleted[(channel, ts)] = message
            self._changed.notify_all()
            return message

    def dms(self, user: str) -> list[Posted]:
        """The app's direct messages to `user`, oldest first."""
        with self._lock:
            found = [m for m in self.messages.values() if m.channel == _dm_channel(user)]
        return sorted(found, key=lambda m: float(m.ts))

    def home(self, user: str) -> HomeView | None:
        """`user`'s App Home tab as last published, or None."""
        with self._lock:
            return self.homes.get(user)

    def response_url(self) -> str:
        """A fresh response_url whose POSTs land in `responses`."""
        return f"{self.url}/respond/{next(self._response_urls)}"

    # reading what people see -----------------------------------------------------------------
    def api_calls(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.status == 200]

    def channel(self, channel: str) -> list[Posted]:
        """Top-level messages of the channel, oldest first, as they read now."""
        with self._lock:
            found = [m for m in self.messages.values() if m.channel == channel and not m.thread_ts]
        return sorted(found, key=lambda m: float(m.ts))

    def message(self, channel: str, ts: str) -> Posted | None:
        """One message as it reads now, or None."""
        with self._lock:
            return self.messages.get((channel, ts))

    def thread(self, channel: str, thread_ts: str, *, files: bool = False) -> list[Posted]:
        """Replies in the thread, oldest first, as they read now. Files shared in it (a message
        with `files` and no text of its own) only with `files=True`: transcripts of what the
        bot wrote read the same with or without its charts (conversations.replies has both)."""
        with self._lock:
            found = [m for m in self.messages.values() if m.thread_ts == thread_ts]
        found = [m for m in found if m.channel == channel and (files or not m.files)]
        return sorted(found, key=lambda m: float(m.ts))

    def shared_files(self, channel: str | None = None) -> list[Upload]:
        """Files shared (in `channel`), in the order they were shared."""
        with self._lock:
            found = [u for u in self.uploads.values() if u.shared]
        found = [u for u in found if channel in (None, u.channel)]
        return sorted(found, key=lambda u: float(u.message_ts or 0))

    def answers_to(self, response_url: str) -> list[dict[str, Any]]:
        """What was posted to one response_url, oldest first."""
        with self._lock:
            return list(self.responses_by_url.get(response_url.rsplit("/", 1)[-1], []))

    def ephemeral_texts(self, user: str | None = None) -> list[str]:
        """Everything shown to one person only: chat.postEphemeral and response_url posts."""
        with self._lock:
            return [p.get("text", "") for p in self.private if user in (None, p.get("user"))]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy (listeners answer from Bolt's worker threads)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for the mock Slack")
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    # the server ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                self._reply(path, dict(parse_qsl(query)))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.startswith("/upload/"):  # a file's bytes, not a form
                    self._bytes(self.path, self.rfile.read(length))
                    return
                raw = self.rfile.read(length).decode()
                kind = self.headers.get("Content-Type", "")
                params = json.loads(raw or "{}") if "json" in kind else dict(parse_qsl(raw))
                path, _, query = self.path.partition("?")
                params = {**dict(parse_qsl(query)), **params}
                self._reply(path, params)

            def _bytes(self, path: str, data: bytes) -> None:
                status, text = mock._receive(path.removeprefix("/upload/"), data)
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _reply(self, path: str, params: dict[str, Any]) -> None:
                for key in ("blocks", "attachments", "view"):
                    if isinstance(params.get(key), str):
                        try:
                            params[key] = json.loads(params[key])
                        except ValueError:
                            params[key] = None  # refused by the method as invalid
                if mock.delay:
                    time.sleep(mock.delay)  # ok: the slow Slack a test asked for
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Bearer "):
                    params.setdefault("token", auth[7:])
                status, body, headers = mock._answer(path, params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict]:
        with self._changed:
            try:
                return self._route(path, params)
            finally:
                self._changed.notify_all()

    def _route(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict]:
        if path.startswith("/respond/"):
            refused = _refusal(params)
            if refused:
                self.calls.append(Call("response_url", params, 400))
                return 400, {"ok": False, "error": refused}, {}
            self.responses.append(params)
            self.responses_by_url.setdefault(path.removeprefix("/respond/"), []).append(params)
            self.private.append(params)
            self.calls.append(Call("response_url", params))
            return 200, {"ok": True}, {}
        method = path.removeprefix("/api/").split("?")[0]
        token = params.pop("token", None)
        if token:
            self.tokens_seen.add(token)
        fault = self._fault
        if self._faulty(fault, method):
            assert fault is not None
            fault.remaining -= 1
            self.calls.append(Call(method, params, fault.status))
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            error = fault.error or ("ratelimited" if fault.status == 429 else "internal_error")
            return fault.status, {"ok": False, "error": error}, headers
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            self.calls.append(Call(method, params))
            return 200, {"ok": False, "error": "unknown_method"}, {}
        refused = self._access(method, params)
        scope = _SCOPES.get(method)
        if refused is None and scope in self.missing_scopes:
            self.calls.append(Call(method, params, 200))
            return 200, {"ok": False, "error": "missing_scope", "needed": scope}, {}
        if refused is None and method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            refused = _refusal(params)
        if refused is not None:
            self.calls.append(Call(method, params, 200))
            return 200, {"ok": False, "error": refused}, {}
        if method == "chat.postMessage":
            wait = self._rate_limited(str(params.get("channel", "")))
            if wait is not None:
                self.calls.append(Call(method, params, 429))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
        self.calls.append(Call(method, params))
        return 200, handler(params), {}

    def _faulty(self, fault: Fault | None, method: str) -> bool:
        """True when the injected fault applies to this call of `method`."""
        if not fault or fault.remaining <= 0 or time.monotonic() >= fault.until:
            return False
        return fault.methods is None or method in fault.methods

    def _access(self, method: str, params: dict[str, Any]) -> str | None:
        """`not_in_channel` / `is_archived` where the bot may not act, else None."""
        if method not in _IN_CHANNEL:
            return None
        channel = str(params.get("channel") or params.get("channel_id") or "")
        if channel[:1] in ("U", "W", "D"):  # a person: the app's direct messages
            return None
        if channel in self.archived:
            return "is_archived"
        if channel not in self.members:
            return "not_in_channel"
        return None

    def _rate_limited(self, channel: str) -> int | None:
        """Seconds to wait before the next chat.postMessage in `channel`, or None: go ahead."""
        if not self.post_rate:
            return None
        now = time.monotonic()
        tokens, last = self._buckets.get(channel, (float(self.post_burst), now))
        tokens = min(float(self.post_burst), tokens + (now - last) * self.post_rate)
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.post_rate))
        self._buckets[channel] = (tokens - 1.0, now)
        return None

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://example.slack.com/",
            "team": "Example",
            "team_id": "T0001",
            "user": "canary",
            "user_id": "UBOT",
            "bot_id": "BBOT",
        }

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params["channel"], self._next_ts()
        if channel[:1] in ("U", "W"):
            channel = _dm_channel(channel)
        message = Posted(
            channel=channel,
            ts=ts,
            text=params.get("text", ""),
            blocks=params.get("blocks") or [],
            thread_ts=params.get("thread_ts") or None,
            metadata=_metadata(params.get("metadata")),
        )
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": message.text}}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (params["channel"], params["ts"])
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.text = params.get("text", message.text)
        if "blocks" in params:
            message.blocks = params.get("blocks") or []
        message.updates += 1
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (params["channel"], params["ts"])
        message = self.messages.pop(key, None)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        self.deleted[key] = message
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = str(params.get("users", "")).split(",")
        if len(users) != 1 or not users[0]:
            return {"ok": False, "error": "not_enough_users" if not users[0] else "too_many_users"}
        return {"ok": True, "channel": {"id": _dm_channel(users[0])}}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(params)
        self.private.append(params)
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params["channel"], params["message_ts"]
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user, view = params.get("user_id"), params.get("view")
        if not isinstance(user, str) or not user or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if len(json.dumps(view).encode()) > MAX_VIEW_BYTES:
            return {"ok": False, "error": "view_too_large"}
        if view.get("type") == "home" and not self.home_tab_enabled:
            return {"ok": False, "error": "not_enabled"}
        if not _valid_home_view(view):
            return {"ok": False, "error": "invalid_arguments"}
        found = self.homes.get(user)
        view_id = found.id if found else f"V{len(self.homes) + 1:08d}"
        self.homes[user] = HomeView(
            user=user,
            id=view_id,
            blocks=view["blocks"],
            publishes=(found.publishes + 1) if found else 1,
        )
        return {"ok": True, "view": {**view, "id": view_id, "team_id": "T0001"}}

    # files, as files_upload_v2 shares them --------------------------------------------------
    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = str(params.get("filename") or "")
        try:
            length = int(params.get("length", ""))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not filename:
            return {"ok": False, "error": "invalid_arguments"}
        if length <= 0:  # "missing_argument: typically only occurs when the length is 0"
            return {"ok": False, "error": "missing_argument"}
        if length > MAX_FILE_BYTES:
            return {"ok": False, "error": "file_upload_size_restricted"}
        alt = params.get("alt_txt")
        if alt is not None and len(str(alt)) > 1000:
            return {"ok": False, "error": "alt_txt_too_large"}
        file_id = f"F{next(self._file_ids):08d}"
        self.uploads[file_id] = Upload(file_id, filename, length, alt)
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _receive(self, file_id: str, data: bytes) -> tuple[int, str]:
        """A POST of a file's bytes to its upload URL: (HTTP status, body)."""
        with self._changed:
            try:
                if self._faulty(self._fault, "upload"):
                    assert self._fault is not None
                    self._fault.remaining -= 1
                    self.calls.append(Call("upload", {"file_id": file_id}, self._fault.status))
                    return self._fault.status, "upload failed"
                upload = self.uploads.get(file_id)
                if upload is None or upload.data is not None or upload.shared:
                    # an unknown URL, or one already used: it is good for one upload
                    self.calls.append(Call("upload", {"file_id": file_id}, 404))
                    return 404, "upload url not found"
                if len(data) != upload.length:
                    self.calls.append(Call("upload", {"file_id": file_id}, 400))
                    return 400, f"length mismatch: {len(data)} bytes, announced {upload.length}"
                upload.data = data
                self.calls.append(Call("upload", {"file_id": file_id, "length": len(data)}))
                return 200, f"OK - {len(data)}"
            finally:
                self._changed.notify_all()

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("files")
        try:
            files = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            return {"ok": False, "error": "invalid_arguments"}
        uploads = []
        for f in files:
            upload = self.uploads.get(str(f.get("id", "")))
            # Unknown, never uploaded, or already shared ("can only be called once").
            if upload is None or upload.data is None or upload.shared:
                return {"ok": False, "error": "file_not_found"}
            uploads.append((upload, str(f.get("title") or upload.filename)))
        channel = params.get("channel_id") or None
        thread_ts = params.get("thread_ts") or None
        if thread_ts and not channel:
            return {"ok": False, "error": "invalid_arguments"}
        if channel is None:  # "If not specified the file will be private": nothing to show
            for upload, title in uploads:
                upload.title, upload.message_ts = title, "private"
            return {"ok": True, "files": [{"id": u.file_id, "title": t} for u, t in uploads]}
        if thread_ts:
            root = self.messages.get((channel, thread_ts))
            if root is None or root.thread_ts:  # gone, or a reply's ts instead of its parent's
                return {"ok": False, "error": "thread_not_found"}
        ts = self._next_ts()
        shown = []
        for upload, title in uploads:
            upload.title, upload.channel, upload.thread_ts = title, channel, thread_ts
            upload.message_ts = ts
            if self.save_dir is not None and upload.data is not None:
                self.save_dir.mkdir(parents=True, exist_ok=True)
                upload.path = self.save_dir / Path(upload.filename).name
                upload.path.write_bytes(upload.data)
            shown.append(
                {
                    "id": upload.file_id,
                    "name": upload.filename,
                    "title": title,
                    "size": upload.length,
                    "mimetype": _mimetype(upload.filename),
                    "alt_txt": upload.alt_txt,
                }
            )
        self.messages[(channel, ts)] = Posted(
            channel=channel,
            ts=ts,
            text=params.get("initial_comment") or "",
            thread_ts=thread_ts,
            files=shown,
        )
        return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shown]}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup", "")
        if group not in self.groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.groups[group])}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel", ""), params.get("ts", "")
        root = self.messages.get((channel, ts))
        if root is None:
            return {"ok": False, "error": "thread_not_found"}
        replies = sorted(
            (m for m in self.messages.values() if m.channel == channel and m.thread_ts == ts),
            key=lambda m: float(m.ts),
        )
        return {"ok": True, "messages": [_as_api(m) for m in [root, *replies]]}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "")
        found = sorted(
            (m for m in self.messages.values() if m.channel == channel and not m.thread_ts),
            key=lambda m: float(m.ts),
            reverse=True,
        )
        return {"ok": True, "messages": [_as_api(m) for m in found]}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "")
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": f"chan-{channel.lower()}",
                "is_member": channel in self.members,
                "is_archived": channel in self.archived,
            },
        }


def _as_api(message: Posted) -> dict[str, Any]:
    """A stored message in the shape the Web API returns it."""
    found: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text}
    if message.blocks:
        found["blocks"] = message.blocks
    if message.thread_ts:
        found["thread_ts"] = message.thread_ts
    if message.metadata:
        found["metadata"] = message.metadata
    if message.files:
        found["files"] = message.files
    return found


def _mimetype(filename: str) -> str:
    return "image/png" if filename.lower().endswith(".png") else "application/octet-stream"


def _metadata(raw: Any) -> dict[str, Any] | None:
    """Metadata arrives as an object in JSON bodies and as a JSON string in form bodies."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, dict) else None


def _dm_channel(user: str) -> str:
    """The id of the app's direct-message conversation with `user`."""
    return "D" + user[1:]


def _refusal(params: dict[str, Any]) -> str | None:
    """Slack's error code for a message it would refuse, else None."""
    text = params.get("text")
    blocks = params.get("blocks")
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
        return "msg_too_long"
    if blocks is None or blocks == []:
        return None
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for raw in blocks:
        if not isinstance(raw, dict) or not _valid_block(raw):
            return "invalid_blocks"
    return None


def _valid_block(raw: dict[str, Any]) -> bool:
    """The block parses with slack_sdk's models, passes their validation and Block Kit's limits."""
    try:
        block = Block.parse(raw)
        if block is None:  # a type slack_sdk does not know
            return False
        block.validate_json()
        for element in getattr(block, "elements", None) or []:
            validate = getattr(element, "validate_json", None)
            if validate is not None:
                validate()
    except (SlackObjectFormationError, KeyError, TypeError, ValueError):
        return False
    return _within_limits(raw)


def _valid_home_view(view: dict[str, Any]) -> bool:
    """A Home tab view Slack takes: slack_sdk's View validation, then each block's."""
    blocks = view.get("blocks")
    if view.get("type") != "home" or not isinstance(blocks, list):
        return False
    if not 0 < len(blocks) <= MAX_VIEW_BLOCKS:
        return False
    try:
        View(**view).validate_json()
    except (SlackObjectFormationError, KeyError, TypeError, ValueError):
        return False
    return all(isinstance(b, dict) and _valid_block(b) for b in blocks)


def _within_limits(value: Any) -> bool:
    """Every text object at most 3,000 characters; confirmation dialogs within theirs."""
    if isinstance(value, list):
        return all(_within_limits(v) for v in value)
    if not isinstance(value, dict):
        return True
    is_text = value.get("type") in ("mrkdwn", "plain_text")
    if is_text and len(str(value.get("text", ""))) > MAX_TEXT_OBJECT:
        return False
    confirm = value.get("confirm")
    if isinstance(confirm, dict):
        for key, limit in _CONFIRM_LIMITS.items():
            part = confirm.get(key)
            if isinstance(part, dict) and len(str(part.get("text", ""))) > limit:
                return False
    return all(_within_limits(v) for v in value.values())
