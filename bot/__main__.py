"""`python -m bot`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT (default 3000).

The CI door (/api/…, bot.ci_api) is served with the HTTP mode's /slack/events; in Socket Mode,
when the catalogue names pipelines at start, an HTTP server on PORT serves it and /healthz.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from bot.app import CanaryApp, create_app
from bot.ci_api import CiApi
from bot.pipeline_tokens import token_problems
from bot.server import (
    API_PREFIX,
    EVENTS_PATH,
    HEALTH_PATH,
    METRICS_PATH,
    BoundedHealth,
    DeadlineServer,
    Health,
    make_server,
)
from workers.domain.catalogue import ConfigError
from workers.runtime import exposition
from workers.runtime.context import get_runtime
from workers.runtime.logs import configure_logging
from workers.runtime.settings import load_settings

log = logging.getLogger("bot")


def readiness() -> Health:
    """Ready when Redis answers and a valid catalogue is in force (what /healthz answers)."""
    rt = get_runtime()
    try:
        rt.redis.ping()
    except Exception as exc:  # any failure to reach Redis, said in one line
        return Health(False, f"redis: {type(exc).__name__}: {exc}")
    try:
        catalogue = rt.catalogue()
    except ConfigError as exc:
        return Health(False, f"catalogue: {exc}")
    # A broken edit of the file leaves the previous catalogue in force: still serving, but said.
    problem = getattr(rt.catalogue_loader, "problem", None)
    if problem:
        return Health(True, f"ok, but the catalogue file is not in force: {problem}")
    # A pipeline without a usable token is refused, not the bot: said, still serving.
    tokens = token_problems(catalogue.pipelines)
    if tokens:
        return Health(True, f"ok, but {'; '.join(tokens)}")
    return Health(True)


def _pipelines() -> list[str]:
    """The catalogue's pipelines at start, each problem with its token logged (never a token)."""
    try:
        catalogue = get_runtime().catalogue()
    except ConfigError as exc:  # /healthz says so; the catalogue may be fixed while running
        log.error("catalogue: %s", exc)
        return []
    for problem in token_problems(catalogue.pipelines):
        log.warning("CI API: %s", problem)
    return list(catalogue.pipelines)


def _stop(*_: object) -> NoReturn:
    # waitress's run() catches SystemExit from its loop (in the main thread, where signals
    # land), stops accepting work, and lets its threads finish the requests they hold.
    raise SystemExit(0)


def _http_server(
    app: CanaryApp, port: int, ci: CiApi, metrics: Callable[[], exposition.Page] | None = None
) -> DeadlineServer:
    """The HTTP server (readiness on /healthz, the CI door), stopped gently by SIGTERM/SIGINT."""
    server = make_server(
        app, "0.0.0.0", port, health=BoundedHealth(readiness), api=ci, metrics=metrics
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    return server


def main() -> None:
    settings = load_settings()  # a bad variable stops the process here, named
    configure_logging(settings)  # LOG_LEVEL, LOG_FORMAT; no secret in any line
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        # Without it every request would be refused (or, checked with an empty key, forgeable).
        log.error("SLACK_SIGNING_SECRET is not set: HTTP mode needs it (or set SLACK_APP_TOKEN)")
        sys.exit(2)
    # The process's Runtime from this reading: built on first use, it would read the
    # environment again (readiness, the CI door and the handlers all share it).
    get_runtime(settings)
    app = create_app(settings=settings)
    ci = CiApi(get_runtime, app.client)
    pipelines = _pipelines()
    registry = exposition.web_registry(lambda: get_runtime().store)
    # SIGTERM (a redeploy of the bot) stops taking requests, then finishes the work of those
    # already acknowledged: a command Slack was told "ok" about is not dropped on the floor.
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        log.info("canary bot connecting in Socket Mode")
        handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value())
        # No HTTP server in Socket Mode: /metrics has a port of its own, when one is set.
        metrics = None
        if settings.canary_metrics_port is not None:
            metrics = exposition.serve(settings.canary_metrics_port, registry)
            log.info("canary bot metrics on port %d (%s)", metrics.server_port, METRICS_PATH)
        handler.connect()
        if pipelines:
            # Pipelines reach the bot over HTTP whatever Slack uses (docs/CI.md); Slack's own
            # requests come over the socket (/slack/events answers 401 without a signing secret).
            server = _http_server(app, settings.port, ci)
            log.info(
                "CI API listening on port %d (%s, %s) for pipelines %s",
                int(server.effective_port),
                API_PREFIX,
                HEALTH_PATH,
                ", ".join(pipelines),
            )
            server.run()
        else:
            stop.wait()
        handler.close()
        if metrics is not None:
            metrics.shutdown()
    else:
        server = _http_server(app, settings.port, ci, metrics=lambda: exposition.page(registry))
        # Tools that start the bot with PORT=0 read the port from this line.
        log.info(
            "canary bot listening on port %d (%s, %s, %s, %s)",
            int(server.effective_port),
            EVENTS_PATH,
            HEALTH_PATH,
            API_PREFIX,
            METRICS_PATH,
        )
        server.run()
    log.info("canary bot stopping: finishing the work of acknowledged requests")
    app.close()
    log.info("canary bot stopped")


if __name__ == "__main__":
    main()
