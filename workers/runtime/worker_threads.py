"""One rollout worker process running several RQ workers, one per thread.

A rollout job is a few AWS calls and Redis round trips: it spends most of its time waiting.
One RQ worker runs one job at a time, so one process could keep up with only as many checks per
second as it can wait out back to back (about 150 ms per check against real AWS, three calls;
bench/in_flight.py). Each thread here is a whole RQ worker (its own name, heartbeat and Redis
connection, seen by `rq info`), so jobs overlap their waits; a deployment's own jobs never act
at once (workers.runtime.run_lock), as with several worker processes.

Signals reach the main thread only: it asks every worker to stop, waits for the jobs in progress
to finish (a warm shutdown, as RQ's own worker does), and then leaves. A job a thread picked up in
that last moment is not lost: its deployment becomes overdue and the watchdog runs it again.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

from redis import Redis
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from workers.runtime.queues import SERIALIZER

log = logging.getLogger(__name__)

#: How long a warm shutdown waits for the jobs in progress (a job is a few API calls).
STOP_WAIT_SECONDS = 30.0


class ThreadWorker(SimpleWorker):
    """An RQ SimpleWorker that can run in a thread other than the main one."""

    # SIGALRM would land in the main thread: a timer raises the timeout in the job's own thread.
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """Only the main thread may install handlers; it stops the workers itself."""


def run_threads(
    names: Sequence[str],
    connect: Callable[[], Redis],
    threads: int,
    *,
    stop: threading.Event | None = None,
    logging_level: str = "WARNING",
) -> None:
    """Run `threads` RQ workers on the queues `names` until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    workers = [
        ThreadWorker(list(names), connection=connect(), serializer=SERIALIZER)
        for _ in range(max(1, threads))
    ]
    running = [
        threading.Thread(
            target=worker.work,
            kwargs={"logging_level": logging_level},
            name=f"rq-worker-{i}",
            daemon=True,  # an idle one blocks in a Redis pop; the process leaves without it
        )
        for i, worker in enumerate(workers)
    ]
    for thread in running:
        thread.start()
    while not stop.wait(1.0):
        if not all(t.is_alive() for t in running):
            # A worker quits only on a fatal error (Redis gone for good): let the supervisor
            # restart the whole process rather than run short-handed.
            log.error("a worker thread stopped; leaving so the supervisor starts a new process")
            break
    shut_down(workers, running)


def shut_down(
    workers: Sequence[ThreadWorker],
    running: Sequence[threading.Thread],
    wait: float = STOP_WAIT_SECONDS,
) -> None:
    """Let the jobs in progress finish, then unregister every worker that is still in a pop."""
    for worker in workers:
        worker._stop_requested = True  # the work loop checks it between jobs
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(
        t.is_alive() and w.get_state() == WorkerStatus.BUSY
        for w, t in zip(workers, running, strict=True)
    ):
        time.sleep(0.05)  # ok: the main thread waiting for jobs in progress
    for worker, thread in zip(workers, running, strict=True):
        if thread.is_alive():
            try:
                worker.teardown()
            except Exception:  # leaving anyway: RQ expires the worker's keys by itself
                log.warning("could not unregister worker %s", worker.name, exc_info=True)
