"""`python -m bot`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT (default 3000)."""

from __future__ import annotations

import logging
import os
import signal
import threading

from bot.app import create_app
from bot.server import EVENTS_PATH, HEALTH_PATH, make_server

log = logging.getLogger("bot")

DEFAULT_PORT = 3000


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app()
    # SIGTERM (a redeploy of the bot) stops taking requests, then finishes the work of those
    # already acknowledged: a command Slack was told "ok" about is not dropped on the floor.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    app_token = os.environ.get("SLACK_APP_TOKEN")
    if app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        log.info("canary bot connecting in Socket Mode")
        handler = SocketModeHandler(app, app_token)
        handler.connect()
        stop.wait()
        handler.close()
    else:
        server = make_server(app, "0.0.0.0", int(os.environ.get("PORT") or DEFAULT_PORT))
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
