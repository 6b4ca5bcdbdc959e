"""Which notifier this process uses: Slack when a bot token is set, else the log."""

from __future__ import annotations

from workers.engine.outbox import LoggingNotifier, Notifier
from workers.runtime.settings import load_settings

_current: Notifier | None = None


def get_notifier() -> Notifier:
    """The process's notifier, chosen once from the environment."""
    global _current
    if _current is None:
        if load_settings().slack_bot_token is not None:
            from workers.slack.notifier import SlackNotifier

            _current = SlackNotifier.from_env()
        else:
            _current = LoggingNotifier()
    return _current


def set_notifier(notifier: Notifier | None) -> None:
    """Replace the process's notifier (tests)."""
    global _current
    _current = notifier
