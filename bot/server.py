"""HTTP transport for the app: /slack/events for Slack, GET /healthz for probes, many threads.

Bolt's own development server is single-threaded and has no health check, hence this one.
"""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
#: Slack's payloads are small; anything much larger is not from Slack.
MAX_BODY = 1 << 20


class BoltHTTPServer(ThreadingHTTPServer):
    """One thread per connection; a listen backlog deep enough for Slack's bursts."""

    daemon_threads = True
    # The default backlog of 5 resets connections when dozens of commands arrive at once.
    request_queue_size = 128


def make_server(app: App, host: str = "0.0.0.0", port: int = 3000) -> ThreadingHTTPServer:
    """A threading HTTP server for `app`; port 0 picks a free one (see server_address)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def do_GET(self) -> None:
            if self.path.partition("?")[0] == HEALTH_PATH:
                self._send(200, "ok", {"Content-Type": ["text/plain"]})
            else:
                self._send(404, "not found")

        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            if path != EVENTS_PATH:
                self._send(404, "not found")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self._send(400, "bad request")
                return
            if length > MAX_BODY or length < 0:
                self._send(413, "too large")
                return
            raw = self.rfile.read(length)
            headers = {k.lower(): [v] for k, v in self.headers.items()}
            try:
                # Bolt parses the body before it checks the signature: junk must not kill the
                # connection without an answer.
                request = BoltRequest(body=raw.decode("utf-8"), query=query, headers=headers)
            except (ValueError, UnicodeDecodeError):
                self._send(400, "bad request")
                return
            response: BoltResponse = app.dispatch(request)
            self._send(response.status, response.body, response.headers)

        def _send(self, status: int, body: str, headers: dict[str, Any] | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            for name, values in (headers or {}).items():
                if name.lower() == "content-length":
                    continue
                for value in values if isinstance(values, list | tuple) else [values]:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return BoltHTTPServer((host, port), Handler)
