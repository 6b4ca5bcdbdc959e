"""What a job needs at run time (Redis, store, queues, AWS, clock), built from the environment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from redis import Redis

from workers import defaults
from workers.domain.catalogue import Catalogue, ServiceConfig
from workers.engine.store import Retention, Store
from workers.runtime.budget import CallBudget
from workers.runtime.catalogue_file import CatalogueFile
from workers.runtime.queues import RqScheduler, Scheduler
from workers.runtime.settings import Settings, load_settings

if TYPE_CHECKING:  # the web process builds a Runtime too, and never loads the AWS drivers
    from workers.aws.base import Backend
    from workers.aws.clients import AwsClients


def _make_clients() -> AwsClients:
    from workers.aws.clients import make_clients  # boto3: loaded by the worker only
    from workers.runtime.telemetry import watch_aws_clients

    clients = make_clients()
    watch_aws_clients(clients)  # their calls counted and timed for the metrics
    return clients


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
    #: Refusals one user may get per window before a "slow down" (read by the web process).
    refusal_limit: int = defaults.REFUSAL_LIMIT
    refusal_window: float = defaults.REFUSAL_WINDOW_SECONDS
    #: The installation's AWS call budget (CANARY_AWS_CALLS_PER_SECOND); None: no ceiling.
    call_budget: CallBudget | None = None
    _cache: dict[str, object] = field(default_factory=dict)

    @cached_property
    def clients(self) -> AwsClients:
        clients = self.aws()
        if self.call_budget is not None:
            c = clients
            self.call_budget.install(c.ecs, c.appmesh, c.servicediscovery, c.cloudwatch, c.elbv2)
        return clients

    def backend(self, settings: ServiceConfig) -> Backend:
        """The traffic backend that serves a service."""
        return self.backend_for(settings, self.clients)

    def catalogue(self) -> Catalogue:
        """The service catalogue as it is now: rights are checked against it at every click."""
        return self.catalogue_loader()


def connect(settings: Settings) -> Redis:
    """A Redis client on the settings' REDIS_URL."""
    return Redis.from_url(settings.redis_url.get_secret_value())


def retention_from(settings: Settings) -> Retention:
    """What Redis keeps, from CANARY_HISTORY_KEEP, CANARY_EVENTS_TTL and CANARY_MAX_REFUSALS."""
    return Retention(
        history_keep=settings.canary_history_keep,
        events_ttl=settings.canary_events_ttl,
        max_refusals=settings.canary_max_refusals,
    )


def runtime_from_env(settings: Settings | None = None) -> Runtime:
    """A Runtime for this process, from REDIS_URL and the other documented variables."""
    settings = settings or load_settings()
    redis = connect(settings)
    prefix = settings.canary_redis_prefix
    rate = settings.canary_aws_calls_per_second
    return Runtime(
        # The path from these settings: reading the environment at every command costs more than
        # the command (pydantic-settings reads .env each time).
        catalogue_loader=CatalogueFile(settings.canary_config),
        call_budget=CallBudget(redis, f"{prefix}:aws-budget", rate) if rate > 0 else None,
        redis=redis,
        store=Store(redis, prefix, retention_from(settings)),
        scheduler=RqScheduler(redis, prefix),
        watchdog_grace=settings.canary_watchdog_grace,
        ready_poll=settings.canary_ready_poll,
        run_lock_seconds=settings.canary_run_lock_seconds,
        refusal_limit=settings.canary_refusal_limit,
        refusal_window=settings.canary_refusal_window,
    )


_current: Runtime | None = None
_building = threading.Lock()


def get_runtime(settings: Settings | None = None) -> Runtime:
    """This process's Runtime (built on first use, from `settings` when given, else from the
    environment; shared by the worker threads)."""
    global _current
    if _current is None:
        with _building:
            if _current is None:
                _current = runtime_from_env(settings)
    return _current
