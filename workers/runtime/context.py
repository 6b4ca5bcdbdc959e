"""What a job needs at run time (Redis, store, queues, AWS, clock), built from the environment."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from redis import Redis

from workers import defaults
from workers.domain.catalogue import Catalogue, ServiceConfig
from workers.engine.store import Store
from workers.runtime.catalogue_file import CatalogueFile
from workers.runtime.queues import RqScheduler, Scheduler

if TYPE_CHECKING:  # the web process builds a Runtime too, and never loads the AWS drivers
    from workers.aws.base import Backend
    from workers.aws.clients import AwsClients


def _make_clients() -> AwsClients:
    from workers.aws.clients import make_clients  # boto3: loaded by the worker only

    return make_clients()


def _backend_for(settings: ServiceConfig, clients: AwsClients) -> Backend:
    from workers.aws.backends import backend_for  # the AWS drivers: loaded by the worker only

    return backend_for(settings, clients)


@dataclass
class Runtime:
    """The engine's collaborators; tests build one with fakes, processes build one from env."""

    redis: Redis
    store: Store
    scheduler: Scheduler
    aws: Callable[[], AwsClients] = _make_clients
    backend_for: Callable[[ServiceConfig, AwsClients], Backend] = _backend_for
    clock: Callable[[], float] = time.time
    #: The catalogue as it is now (by default the CANARY_CONFIG file, reread when it changes).
    catalogue_loader: Callable[[], Catalogue] = field(default_factory=CatalogueFile)
    watchdog_grace: float = defaults.WATCHDOG_GRACE_SECONDS
    ready_poll: float = defaults.READY_POLL_SECONDS
    run_lock_seconds: float = defaults.RUN_LOCK_SECONDS
    _cache: dict[str, object] = field(default_factory=dict)

    @cached_property
    def clients(self) -> AwsClients:
        return self.aws()

    def backend(self, settings: ServiceConfig) -> Backend:
        """The traffic backend that serves a service."""
        return self.backend_for(settings, self.clients)

    def catalogue(self) -> Catalogue:
        """The service catalogue as it is now: rights are checked against it at every click."""
        return self.catalogue_loader()


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or defaults.REDIS_URL


def redis_prefix() -> str:
    return os.environ.get("CANARY_REDIS_PREFIX") or defaults.REDIS_PREFIX


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def runtime_from_env() -> Runtime:
    """A Runtime for this process, from REDIS_URL and the other documented variables."""
    redis = Redis.from_url(redis_url())
    prefix = redis_prefix()
    return Runtime(
        redis=redis,
        store=Store(redis, prefix),
        scheduler=RqScheduler(redis, prefix),
        watchdog_grace=_float_env("CANARY_WATCHDOG_GRACE", defaults.WATCHDOG_GRACE_SECONDS),
        ready_poll=_float_env("CANARY_READY_POLL", defaults.READY_POLL_SECONDS),
        run_lock_seconds=_float_env("CANARY_RUN_LOCK_SECONDS", defaults.RUN_LOCK_SECONDS),
    )


_current: Runtime | None = None
_building = threading.Lock()


def get_runtime() -> Runtime:
    """This process's Runtime (built on first use; shared by the worker threads)."""
    global _current
    if _current is None:
        with _building:
            if _current is None:
                _current = runtime_from_env()
    return _current


def set_runtime(runtime: Runtime | None) -> None:
    """Replace this process's Runtime (tests)."""
    global _current
    _current = runtime
