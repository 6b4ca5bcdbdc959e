"""Which notifier this process uses: Slack when a bot token is set, else the log."""

from __future__ import annotations

from workers.engine.outbox import LoggingNotifier, Notifier
from workers.runtime.settings import Settings, load_settings

_current: Notifier | None = None


def notifier_for(settings: Settings) -> Notifier:
    """Slack's notifier when the settings hold a bot token, else the log's."""
    if settings.slack_bot_token is not None:
        from workers.slack.notifier import SlackNotifier  # the Slack client: only when used

        return SlackNotifier.from_settings(settings)
    return LoggingNotifier()


def get_notifier(settings: Settings | None = None) -> Notifier:
    """The process's notifier, chosen once (from `settings` when given, else the environment).

    The worker process that delivers hands over its settings at start (workers/__main__.py):
    its jobs then find the notifier built and never read the environment again."""
    global _current
    if _current is None:
        _current = notifier_for(settings or load_settings())
    return _current


def set_notifier(notifier: Notifier | None) -> None:
    """Replace the process's notifier (tests)."""
    global _current
    _current = notifier
