"""Serving the metrics of workers/runtime/telemetry.py: the web process's `/metrics` page, and the
worker's own port (CANARY_METRICS_PORT) where one supervisor serves all its processes' figures.

The worker runs several processes (rollout, notify, scheduler). prometheus_client's multiprocess
mode keeps each process's figures in a file of PROMETHEUS_MULTIPROC_DIR, and the supervisor
serves their sum. That mode is chosen when prometheus_client is first imported, so
`python -m workers` sets the variable before its imports (workers/__main__.py); the supervisor
empties the directory before starting its processes and forgets a dead one's live gauges.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    start_http_server,
)

from workers.engine.store import Store
from workers.runtime.telemetry import RedisGauges

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    """A /metrics answer."""

    body: bytes
    content_type: str = CONTENT_TYPE_LATEST


def web_registry(store: Callable[[], Store]) -> CollectorRegistry:
    """The web process's metrics: its own (with the process's CPU and memory) and Redis's."""
    registry = CollectorRegistry()
    registry.register(REGISTRY)  # a registry is a collector of everything registered in it
    registry.register(RedisGauges(store))
    return registry


def worker_registry(store: Callable[[], Store]) -> CollectorRegistry:
    """The worker's metrics: the sum over its processes' files, and Redis's."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(RedisGauges(store))
    return registry


def page(registry: CollectorRegistry) -> Page:
    """The registry's metrics in Prometheus's text format."""
    return Page(generate_latest(registry))


def serve(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> WSGIServer:
    """Serve `registry` at /metrics on `port` (0: a free one, in `server_port`) from a daemon
    thread; `shutdown()` stops it."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def multiprocess_dir() -> Path | None:
    """The shared directory of the worker's processes, when multiprocess mode is on."""
    # prometheus_client's own variable, as it reads it (not a setting of ours).
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def empty(directory: Path) -> None:
    """Remove what earlier processes left (counters of a previous run would be added in), but
    not this process's own files (its metrics defined at import already write to them)."""
    directory.mkdir(parents=True, exist_ok=True)
    own = f"_{os.getpid()}.db"
    for stale in directory.glob("*.db"):
        if not stale.name.endswith(own):
            stale.unlink(missing_ok=True)


def process_gone(pid: int) -> None:
    """Forget a dead process's live gauges (its counters and histograms stay in the sums)."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(pid, str(directory))
