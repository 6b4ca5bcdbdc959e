"""`python -m workers`: RQ workers, a scheduler and the watchdog, supervised until stopped."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from rq import SimpleWorker

from workers.engine.watchdog import sweep
from workers.runtime.context import connect, get_runtime
from workers.runtime.logs import configure_logging
from workers.runtime.queues import SERIALIZER, queue_names
from workers.runtime.scheduler import run_scheduler
from workers.runtime.settings import Settings, load_settings
from workers.runtime.worker_threads import run_threads

log = logging.getLogger("workers")


def _die_with_parent() -> None:
    # Linux: a worker must not outlive the supervisor (a SIGKILLed supervisor is restarted whole).
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _work(settings: Settings, names: Sequence[str]) -> None:
    _die_with_parent()
    configure_logging(settings)
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


def main() -> int:
    """Start the rollout and notification workers, then watch over them and the deployments."""
    settings = load_settings()  # a bad variable stops the process here, named
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
    rt = get_runtime()
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
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["doctor"]:  # the read-only checks of a service (workers/doctor.py)
        from workers.doctor import main as doctor

        sys.exit(doctor(sys.argv[2:]))
    sys.exit(main())
