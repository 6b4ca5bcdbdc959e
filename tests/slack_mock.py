"""The mock Slack Web API of the tests: the sandbox's emulator under its test name."""

from sandbox.slack_emulator import Call, Fault, Posted, SlackEmulator

MockSlack = SlackEmulator

__all__ = ["Call", "Fault", "MockSlack", "Posted", "SlackEmulator"]
