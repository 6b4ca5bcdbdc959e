"""A running stack for end-to-end tests: sandbox.world.World without the bot.

Real Redis (shared, under a key prefix of the stack's own), moto_server, `python -m workers`
(posting into the world's Slack emulator) and simulated users; the tests call the API through
`stack.rt`, wait on deployments with `stack.wait`, and kill and restart workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox.world import IMAGE, World

__all__ = ["IMAGE", "World", "start_stack"]


def start_stack(
    workdir: Path,
    redis_url: str,
    services: Mapping[str, Mapping[str, Any]],
    *,
    backend: str = "appmesh",
    **options: Any,
) -> World:
    """A started World on `redis_url` without the bot, every service on `backend` ("appmesh",
    "alb" or "ecs"); `options` are World's (rps, error_rates, ...)."""
    if backend not in ("appmesh", "alb", "ecs"):
        raise ValueError(f"unknown backend {backend!r}")
    router = {"router": backend} if backend != "appmesh" else {}
    entries = {key: {**router, **overrides} for key, overrides in services.items()}
    return World(workdir, entries, redis_url=redis_url, bot=False, **options).start()
