"""Work after an ack waits for the other acks of a burst, but never longer than max_wait."""

from __future__ import annotations

import threading
import time

from bot.ack_first import AckFirst


def start_waiting(gate: AckFirst) -> tuple[threading.Thread, list[bool]]:
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(gate.wait_for_acks()))
    waiter.start()
    return waiter, result


def test_work_waits_until_the_request_being_dispatched_is_done() -> None:
    gate = AckFirst(quiet=0.0, max_wait=30.0)
    with gate.acking():
        waiter, result = start_waiting(gate)
        waiter.join(0.2)
        assert waiter.is_alive() and result == []  # still dispatching: the work holds back
    waiter.join(5)
    assert result == [True]


def test_work_waits_for_a_quiet_moment_after_the_last_arrival() -> None:
    gate = AckFirst(quiet=0.3, max_wait=30.0)
    with gate.acking():
        pass
    began = time.monotonic()
    assert gate.wait_for_acks() is True
    assert time.monotonic() - began >= 0.25  # a burst's next request may be milliseconds away


def test_a_steady_stream_of_requests_cannot_starve_the_work() -> None:
    gate = AckFirst(quiet=0.0, max_wait=0.2)
    with gate.acking():
        assert gate.wait_for_acks() is False  # gave up waiting: the job runs anyway


def test_no_requests_no_wait() -> None:
    assert AckFirst(max_wait=30.0).wait_for_acks() is True
