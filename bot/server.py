"""HTTP transport for the app: /slack/events for Slack, GET /healthz for probes and GET /metrics
for Prometheus, on waitress.

waitress (a maintained WSGI server) reads every request whole, in its one I/O thread, before a
worker thread sees it: a client that sends its headers and then a byte a minute costs a socket
and a buffer, never a thread, so Slack's own requests still find a free thread. It closes idle
connections (`channel_timeout`), caps open connections and body sizes (413 and close), and
decodes chunked bodies. Bolt's WSGI adapter turns each request into a `BoltRequest`; what Bolt
cannot parse gets a 400 here instead of an exception and a dropped connection.

waitress has no limit on how long one request may take to arrive, only on silence between two
bytes; `DeadlineServer` adds it (REQUEST_DEADLINE), so that a slowloris holds a connection for
seconds, not for as long as it keeps dripping.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer

from workers.runtime.single_flight import SingleFlight

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from workers.runtime.exposition import Page

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
#: The CI door's paths (bot.ci_api).
API_PREFIX = "/api/"
METRICS_PATH = "/metrics"
#: Slack's payloads are a few kB; anything much larger is not from Slack (answered 413).
MAX_BODY = 1 << 20
#: A connection with nothing to read or write for this long is closed (seconds).
CHANNEL_TIMEOUT = 10.0
#: A request must have arrived whole this long after its first byte, else the connection is
#: closed (seconds). Slack sends a few kB at once; only a slow client needs more.
REQUEST_DEADLINE = 10.0
#: Open connections at most; beyond it new ones wait in the listen backlog until some close.
#: An idle connection costs waitress a socket and a few kB, no thread.
CONNECTION_LIMIT = 5000
#: The most connections accepted in one turn of waitress's loop.
ACCEPT_BATCH = 256
#: Threads that run the app (parse, verify, ack). Requests reach them whole, so a slow client
#: never holds one; the work after an ack has threads of its own (bot.app.WORK_THREADS).
THREADS = 8
#: The longest /healthz waits for Redis before answering 503.
HEALTH_TIMEOUT = 2.0


@dataclass(frozen=True)
class Health:
    """What /healthz answers: ok, or not with a short reason."""

    ok: bool
    reason: str = "ok"


HealthCheck = Callable[[], Health]


def always_healthy() -> Health:
    return Health(True)


class BoundedHealth:
    """Runs `check` at most once at a time and waits for it at most `timeout` seconds.

    A Redis that does not answer must not hold a server thread per probe: while one check is
    still running, other probes wait on the same one.
    """

    def __init__(self, check: HealthCheck, timeout: float = HEALTH_TIMEOUT) -> None:
        self.check, self.timeout = check, timeout
        # The probe says what failed, it does not crash.
        self._checks = SingleFlight(
            lambda: self.check(), lambda exc: Health(False, f"{type(exc).__name__}: {exc}")
        )

    def __call__(self) -> Health:
        try:
            return self._checks(self.timeout)
        except FutureTimeout:
            return Health(False, f"no answer within {self.timeout:g} s")


#: A WSGI application (the CI door, bot.ci_api.CiApi).
WsgiApp = Callable[["WSGIEnvironment", "StartResponse"], Iterable[bytes]]


class SlackWsgi(SlackRequestHandler):
    """Bolt's WSGI adapter with /healthz, /metrics, /api/… (the CI door, when given), and a 400
    for bodies Bolt cannot parse."""

    def __init__(
        self,
        app: App,
        health: HealthCheck = always_healthy,
        api: WsgiApp | None = None,
        metrics: Callable[[], Page] | None = None,
    ) -> None:
        super().__init__(app, EVENTS_PATH)
        self.health = health
        self.api = api
        self.metrics = metrics

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        try:
            # Bolt parses the body (form, then the JSON in `payload`) before any listener runs:
            # invalid UTF-8, bad JSON or a payload that is not an object raise here.
            bolt_request = BoltRequest(
                body=request.get_body(),
                query=request.query_string,
                headers=request.get_headers(),
            )
        except (ValueError, AttributeError, TypeError) as exc:
            log.info("refused a request Bolt cannot parse (%s)", type(exc).__name__)
            return BoltResponse(status=400, body="bad request")
        return self.app.dispatch(bolt_request)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            health = self.health()
            if not health.ok:
                log.warning("healthz: %s", health.reason)
            status = "200 OK" if health.ok else "503 Service Unavailable"
            body = health.reason.encode()
            start_response(
                status,
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if self.api is not None and path.startswith(API_PREFIX):
            return self.api(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        if path == METRICS_PATH and self.metrics is not None and method in ("GET", "HEAD"):
            page = self.metrics()
            start_response(
                "200 OK",
                [("Content-Type", page.content_type), ("Content-Length", str(len(page.body)))],
            )
            return [page.body]
        return super().__call__(environ, start_response)


class _TimedParser(HTTPRequestParser):
    """waitress's request parser, remembering when the request's first byte came."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.started = time.time()  # waitress's own clock for last_activity


class _Channel(HTTPChannel):
    parser_class = _TimedParser


class DeadlineServer(TcpWSGIServer):
    """waitress's TCP server, closing connections whose request takes too long to arrive, and
    accepting waiting connections in batches."""

    channel_class = _Channel
    request_deadline = REQUEST_DEADLINE

    def handle_accept(self) -> None:
        # waitress accepts one connection per turn of its loop, and a turn looks at every open
        # connection: with thousands open, Slack's connection would wait seconds in the backlog
        # behind a flood's (bench/slow_clients.py). Take what is waiting, up to ACCEPT_BATCH.
        for _ in range(ACCEPT_BATCH):
            before = len(self._map)
            if before >= self.adj.connection_limit:
                return
            super().handle_accept()
            if len(self._map) == before:  # nothing was waiting (or accept failed)
                return

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections (channel_timeout)
        cutoff = now - self.request_deadline
        for channel in list(self.active_channels.values()):
            partial = channel.request  # being read; `requests` are read whole, being served
            if partial is not None and not channel.requests and partial.started < cutoff:
                channel.will_close = True


def _allow_descriptors(needed: int) -> None:
    """Raise this process's open-file limit towards `needed` (up to the hard limit): each
    connection is a descriptor, and the usual soft limit of 1024 would cap them first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def make_server(
    app: App,
    host: str = "0.0.0.0",
    port: int = 3000,
    *,
    health: HealthCheck = always_healthy,
    api: WsgiApp | None = None,
    metrics: Callable[[], Page] | None = None,
    channel_timeout: float = CHANNEL_TIMEOUT,
    request_deadline: float = REQUEST_DEADLINE,
    **adjustments: Any,
) -> DeadlineServer:
    """A waitress server for `app` (not yet running: call `run()`); port 0 picks a free one.

    The port is in `effective_port`; `api` serves API_PREFIX. `adjustments` are waitress's own
    settings.
    """
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "threads": THREADS,
        "channel_timeout": channel_timeout,
        # waitress looks for idle and late connections every cleanup_interval seconds.
        "cleanup_interval": max(0.5, min(channel_timeout, request_deadline) / 4),
        "connection_limit": CONNECTION_LIMIT,
        "max_request_body_size": MAX_BODY,
        "max_request_header_size": 64 * 1024,
        # poll(2) rather than select(2): select cannot watch descriptors past 1024.
        "asyncore_use_poll": True,
        "backlog": 1024,
        "ident": "canary-bot",
        **adjustments,
    }
    _allow_descriptors(settings["connection_limit"] + 256)
    server = DeadlineServer(SlackWsgi(app, health, api, metrics), adj=Adjustments(**settings))
    server.request_deadline = request_deadline
    return server
