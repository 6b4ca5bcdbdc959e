"""The Slack side of the canary bot: Bolt app, commands, permissions and button handlers."""
