"""ECS-native backend: ECS's own CANARY / LINEAR service deployments, gated by PAUSE hooks.

ECS shifts and restores the traffic itself; the bot plans the deployment configuration
(`strategy.py`), then judges and gates each pause. See docs/ECS.md for the documented lifecycle.
"""
