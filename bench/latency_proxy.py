"""An HTTP proxy in front of moto_server that answers each request `delay` seconds later.

moto on loopback answers in about a millisecond; AWS's API endpoints take tens of milliseconds
per call. Pointing the workers' AWS_ENDPOINT_URL here shows how the rollout worker copes when
its jobs spend their time waiting, as they do in production (bench/in_flight.py --aws-latency-ms).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
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

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LatencyProxy

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        time.sleep(self.server.delay)  # ok: the latency this proxy exists to add
        self.server.requests += 1
        for attempt in (1, 2):
            conn = self.server.connection()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.server.drop_connection()  # the upstream closed a kept-alive connection
                if attempt == 2:
                    raise
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: a benchmark prints figures, not a line per request."""
