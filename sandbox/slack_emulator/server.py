"""SlackEmulator: the workspace served over HTTP on 127.0.0.1 (a free port). A Web API call is
dispatched to its method (METHODS) once what Slack refuses first is checked (limits.py); an
upload URL takes a file's bytes, a response_url a command's answer. Faults and a slow Slack are
injected here (`fail`, `heal`, `delay`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from sandbox.slack_emulator import chat, conversations, files, views
from sandbox.slack_emulator.blockkit import refusal
from sandbox.slack_emulator.limits import SCOPES, Fault, access, faulty, post_wait
from sandbox.slack_emulator.records import Call
from sandbox.slack_emulator.workspace import Workspace

Method = Callable[[Workspace, dict[str, Any]], dict[str, Any]]
#: The Web API methods the emulator answers; any other answers `unknown_method`.
METHODS: dict[str, Method] = {
    "auth.test": conversations.auth_test,
    "chat.postMessage": chat.post_message,
    "chat.update": chat.update,
    "chat.delete": chat.delete,
    "chat.postEphemeral": chat.post_ephemeral,
    "chat.getPermalink": chat.get_permalink,
    "conversations.open": conversations.open_dm,
    "conversations.replies": conversations.replies,
    "conversations.history": conversations.history,
    "conversations.info": conversations.info,
    "usergroups.users.list": conversations.usergroup_users,
    "views.publish": views.publish,
    "files.getUploadURLExternal": files.get_upload_url,
    "files.completeUploadExternal": files.complete_upload,
}
#: Methods whose message Slack may refuse (blockkit.py).
_CHECKED = ("chat.postMessage", "chat.update", "chat.postEphemeral")


class SlackEmulator(Workspace):
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
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        url = f"http://127.0.0.1:{self._server.server_address[1]}"
        super().__init__(groups, channels=channels, home_tab_enabled=home_tab_enabled, url=url)
        #: chat.postMessage per channel: messages a second (None: unlimited) and the burst.
        self.post_rate, self.post_burst = post_rate, post_burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._fault: Fault | None = None
        #: Seconds every answer waits before it is given (a slow Slack).
        self.delay = 0.0
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # lifecycle -------------------------------------------------------------------------------
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
            status, body = chat.respond(self, path.removeprefix("/respond/"), params)
            return status, body, {}
        method = path.removeprefix("/api/").split("?")[0]
        token = params.pop("token", None)
        if token:
            self.tokens_seen.add(token)
        fault = self._fault
        if faulty(fault, method):
            assert fault is not None
            fault.remaining -= 1
            self.calls.append(Call(method, params, fault.status))
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            error = fault.error or ("ratelimited" if fault.status == 429 else "internal_error")
            return fault.status, {"ok": False, "error": error}, headers
        handler = METHODS.get(method)
        if handler is None:
            self.calls.append(Call(method, params))
            return 200, {"ok": False, "error": "unknown_method"}, {}
        refused = access(method, params, self.members, self.archived)
        scope = SCOPES.get(method)
        if refused is None and scope in self.missing_scopes:
            self.calls.append(Call(method, params, 200))
            return 200, {"ok": False, "error": "missing_scope", "needed": scope}, {}
        if refused is None and method in _CHECKED:
            refused = refusal(params)
        if refused is not None:
            self.calls.append(Call(method, params, 200))
            return 200, {"ok": False, "error": refused}, {}
        if method == "chat.postMessage":
            channel = str(params.get("channel", ""))
            wait = post_wait(self._buckets, channel, self.post_rate, self.post_burst)
            if wait is not None:
                self.calls.append(Call(method, params, 429))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
        self.calls.append(Call(method, params))
        return 200, handler(self, params), {}

    def _receive(self, file_id: str, data: bytes) -> tuple[int, str]:
        """A POST of a file's bytes to its upload URL: (HTTP status, body)."""
        with self._changed:
            try:
                if faulty(self._fault, "upload"):
                    assert self._fault is not None
                    self._fault.remaining -= 1
                    self.calls.append(Call("upload", {"file_id": file_id}, self._fault.status))
                    return self._fault.status, "upload failed"
                return files.receive(self, file_id, data)
            finally:
                self._changed.notify_all()
