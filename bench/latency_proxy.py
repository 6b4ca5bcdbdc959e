"""An HTTP proxy in front of moto_server that answers each request `delay` seconds later.

moto on loopback answers in about a millisecond; AWS's API endpoints take tens of milliseconds
per call. Pointing the workers' AWS_ENDPOINT_URL here shows how the rollout worker copes when
its jobs spend their time waiting, as they do in production (bench/in_flight.py --aws-latency-ms).
bench/aws_standin.py builds on it: it answers a check's read calls itself.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Headers that belong to one hop, not to the request being forwarded.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class LatencyProxy(ThreadingHTTPServer):
    """Forwards every request to `upstream` after sleeping `delay` seconds."""

    daemon_threads = True

    def __init__(self, upstream: str, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.delay = delay
        self.requests = 0
        self._local = threading.local()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def connection(self) -> http.client.HTTPConnection:
        """This handler thread's keep-alive connection to the upstream."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        return conn

    def drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def forward(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request upstream: (status, headers, body) of its answer."""
        headers = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        for attempt in (1, 2):
            conn = self.connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.getheaders(), response.read()
            except (ConnectionError, http.client.HTTPException):
                self.drop_connection()  # the upstream closed a kept-alive connection
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def handle_request_of(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        """Answer one request: here, forward it upstream after the delay."""
        time.sleep(self.delay)  # ok: the latency this proxy exists to add
        self.requests += 1
        reply(handler, *self.forward(handler.command, handler.path, body, handler.headers))

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def reply(
    handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], data: bytes
) -> None:
    """Write one HTTP answer (the hop's own headers replaced by a Content-Length)."""
    handler.send_response(status)
    for name, value in headers:
        if name.lower() not in _HOP:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LatencyProxy

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.handle_request_of(self, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: a benchmark prints figures, not a line per request."""
