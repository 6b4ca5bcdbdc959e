"""The mock Slack Web API of the unit tests: the sandbox's strict emulator (sandbox.slack_emulator)
with the unit tests' defaults: the bot is a member of the tests' channels, and chat.postMessage
is not rate-limited unless a test asks (`MockSlack(post_rate=1.0)`), so tests stay fast."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox.slack_emulator import Call, Fault, Posted, SlackEmulator

#: Channels of tests/bot_harness.py (payments', another one) and tests/test_bot_server.py.
TEST_CHANNELS = ("C0PAYMENTS", "C0RANDOM", "C0ANY")


class MockSlack(SlackEmulator):
    """SlackEmulator with the unit tests' defaults (see the module docstring)."""

    def __init__(
        self,
        groups: dict[str, list[str]] | None = None,
        *,
        channels: Iterable[str] = TEST_CHANNELS,
        post_rate: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(groups, channels=channels, post_rate=post_rate, **options)


__all__ = ["Call", "Fault", "MockSlack", "Posted", "SlackEmulator", "TEST_CHANNELS"]
