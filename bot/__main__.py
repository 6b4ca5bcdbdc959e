"""`python -m bot`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT (default 3000)."""

from __future__ import annotations

import logging
import signal
import threading

from bot.app import create_app
from bot.server import EVENTS_PATH, HEALTH_PATH, make_server
from workers.runtime.settings import load_settings

log = logging.getLogger("bot")


def main() -> None:
    settings = load_settings()  # a bad variable stops the process here, named
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(settings=settings)
    # SIGTERM (a redeploy of the bot) stops taking requests, then finishes the work of those
    # already acknowledged: a command Slack was told "ok" about is not dropped on the floor.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        log.info("canary bot connecting in Socket Mode")
        handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value())
        handler.connect()
        stop.wait()
        handler.close()
    else:
        server = make_server(app, "0.0.0.0", settings.port)
        port = server.server_address[1]
        # Tools that start the bot with PORT=0 read the port from this line.
        log.info("canary bot listening on port %d (%s, %s)", port, EVENTS_PATH, HEALTH_PATH)
        serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        serving.start()
        stop.wait()
        server.shutdown()
        server.server_close()
    log.info("canary bot stopping: finishing the work of acknowledged requests")
    app.close()
    log.info("canary bot stopped")


if __name__ == "__main__":
    main()
