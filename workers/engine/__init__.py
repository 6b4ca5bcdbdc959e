"""The rollout engine: compare-and-set transitions, each state's step, the store, the outbox."""
