"""Everything Slack reads from the engine: card, thread replies, command answers, notifier."""
