"""The rollout engine: state machine, Redis store, RQ jobs, AWS drivers and notifiers."""
