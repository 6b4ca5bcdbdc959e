"""The RQ job functions: each takes ids, reloads state from Redis and does one short step."""

from __future__ import annotations

from workers.engine import Engine
from workers.notifiers import get_notifier
from workers.outbox import deliver_pending
from workers.runtime import get_runtime


def run(dep_id: str, version: int) -> str:
    """Do the deployment's current step if it is still at `version`."""
    return Engine(get_runtime()).run(dep_id, version)


def deliver(dep_id: str) -> int:
    """Deliver the deployment's pending notifications."""
    return deliver_pending(get_runtime(), get_notifier(), dep_id)
