"""`python -m workers`: RQ workers, a scheduler and the watchdog, supervised until stopped."""

from __future__ import annotations

import os
import sys
import tempfile

from workers import defaults
from workers.runtime.settings import load_settings

# prometheus_client chooses where metrics live when it is first imported: with the metrics on,
# every process of the worker keeps its figures in one directory that the supervisor serves the
# sum of (workers/runtime/exposition.py), so the variable is set before the imports below. The
# settings are read here, once, and passed on (the doctor reads its own): a bad variable stops
# the process here, named.
if __name__ == "__main__" and sys.argv[1:2] != ["doctor"]:
    SETTINGS = load_settings()
    if SETTINGS.canary_metrics_port is not None and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
            prefix=defaults.METRICS_DIR_PREFIX
        )

import contextlib
import ctypes
import logging
import multiprocessing
import shutil
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rq import SimpleWorker

from workers.engine.migrations import drop_unreadable_jobs
from workers.engine.watchdog import sweep
from workers.runtime.context import connect, get_runtime
from workers.runtime.logs import configure_logging
from workers.runtime.notifiers import get_notifier
from workers.runtime.queues import SERIALIZER, queue_names
from workers.runtime.scheduler import run_scheduler
from workers.runtime.settings import Settings
from workers.runtime.worker_threads import run_threads

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from workers.runtime.context import Runtime

log = logging.getLogger("workers")


def _die_with_parent() -> None:
    # Linux: a worker must not outlive the supervisor (a SIGKILLed supervisor is restarted whole).
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _work(settings: Settings, names: Sequence[str]) -> None:
    _die_with_parent()
    configure_logging(settings)
    # The notifier from the supervisor's reading, before the first job: built by that job, it
    # would read the environment again (the Runtime came built with the fork).
    get_notifier(settings)
    redis = connect(settings)
    # SimpleWorker runs jobs in-process: AWS clients and connections are reused across jobs, and
    # a job is a few API calls, so a fork per job would cost more than the job. One worker, one
    # job at a time: Slack delivery keeps each thread's messages in order.
    worker = SimpleWorker(list(names), connection=redis, serializer=SERIALIZER)
    worker.work(logging_level="WARNING")


def _work_threads(settings: Settings, names: Sequence[str]) -> None:
    _die_with_parent()
    configure_logging(settings)
    _few_malloc_arenas()
    run_threads(names, lambda: connect(settings), settings.canary_worker_threads)


def _few_malloc_arenas() -> None:
    # glibc gives each thread that allocates its own malloc arena (up to 8 per core); for threads
    # that mostly wait, two arenas hold the same work in less resident memory.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX


def _schedule(settings: Settings, names: Sequence[str]) -> None:
    _die_with_parent()
    configure_logging(settings)
    run_scheduler(connect(settings), names)


def _serve_metrics(settings: Settings, rt: Runtime) -> WSGIServer | None:
    """Serve the sum of every process's metrics on CANARY_METRICS_PORT (None when unset)."""
    if settings.canary_metrics_port is None:
        return None
    from workers.runtime import exposition

    directory = exposition.multiprocess_dir()
    if directory is None:  # only `python -m workers` sets it up, before its imports
        log.error("metrics: PROMETHEUS_MULTIPROC_DIR is not set; /metrics is off")
        return None
    exposition.empty(directory)
    server = exposition.serve(
        settings.canary_metrics_port, exposition.worker_registry(lambda: rt.store)
    )
    # Tools that start the worker with CANARY_METRICS_PORT=0 read the port from this line.
    log.info("worker metrics on port %d (/metrics)", server.server_port)
    return server


def _stop_metrics(server: WSGIServer | None) -> None:
    if server is None:
        return
    from workers.runtime import exposition

    server.shutdown()
    server.server_close()
    directory = exposition.multiprocess_dir()
    # Removed only when made by `python -m workers` (one an operator set is theirs).
    if directory is not None and directory.name.startswith(defaults.METRICS_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def _gone(child: multiprocessing.process.BaseProcess, metrics: WSGIServer | None) -> None:
    """A child process ended: its live gauges leave the worker's metrics."""
    if child.pid is not None and metrics is not None:
        from workers.runtime.exposition import process_gone

        process_gone(child.pid)


def main(settings: Settings | None = None) -> int:
    """Start the rollout and notification workers, then watch over them and the deployments.

    `settings` None: read from the environment now (a bad variable stops the process, named)."""
    settings = settings or load_settings()
    configure_logging(settings)
    high, default, notify = queue_names(settings.canary_redis_prefix)
    rollout_workers = settings.canary_workers
    threads = settings.canary_worker_threads
    interval = settings.canary_watchdog_interval
    specs: list[tuple[Callable[[Settings, Sequence[str]], None], tuple[str, ...]]] = [
        (_work_threads, (high, default)) for _ in range(rollout_workers)
    ]
    # Slack delivery has its own process: a Slack outage (retries, 429 waits) never holds up a
    # rollback queued behind it.
    specs.append((_work, (notify,)))
    # One scheduler moves every queue's delayed jobs (RQ's scheduler locks keep it to one per
    # queue across all supervisors sharing the Redis).
    specs.append((_schedule, (high, default, notify)))
    ctx = multiprocessing.get_context("fork")
    children: list[multiprocessing.process.BaseProcess | None] = [None] * len(specs)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rt = get_runtime(settings)  # built before the fork: every child shares it
    try:
        # Before any worker dequeues: an earlier release's pickled jobs are dropped unread (their
        # deployments are rescheduled by the watchdog below).
        drop_unreadable_jobs(rt.redis, (high, default, notify))
    except Exception:  # a Redis blip at start: the workers still start (RQ fails such jobs)
        log.exception("dropping unreadable jobs failed")
    metrics = _serve_metrics(settings, rt)
    log.info(
        "workers: %d rollout (%d threads each), 1 notify; queues %s, %s, %s",
        rollout_workers,
        threads,
        high,
        default,
        notify,
    )
    while not stop.is_set():
        for i, (target, names) in enumerate(specs):
            child = children[i]
            if child is None or not child.is_alive():
                if child is not None:
                    log.warning(
                        "%s for %s exited (%s); restarting", target.__name__, names, child.exitcode
                    )
                    _gone(child, metrics)
                child = ctx.Process(target=target, args=(settings, names), daemon=False)
                child.start()
                children[i] = child
        try:
            sweep(rt)
        except Exception:  # the watchdog must outlive a Redis blip
            log.exception("watchdog sweep failed")
        stop.wait(interval)
    for child in children:
        if child is not None and child.is_alive():
            child.terminate()
    for child in children:
        if child is not None:
            child.join(timeout=10)
    _stop_metrics(metrics)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["doctor"]:  # the read-only checks of a service (workers/doctor.py)
        from workers.doctor import main as doctor

        sys.exit(doctor(sys.argv[2:]))
    sys.exit(main(SETTINGS))
