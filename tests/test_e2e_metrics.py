"""End to end: the /metrics of `python -m bot` (HTTP, beside /healthz) and of `python -m workers`
(CANARY_METRICS_PORT, summed over its rollout, notify and scheduler processes), scraped while a
deployment typed and approved in Slack runs through a gate to its promotion.

Real processes on real Redis, moto_server and the Slack emulator (sandbox.world, as in
tests/test_e2e_slack.py). The series are read as Prometheus reads them: the text format, parsed.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.processes import free_port, wait_for_http
from sandbox.world import DANA, IMAGE, SAM, World
from tests.test_e2e_slack import STARTED, _redis_url
from workers.domain.state import State
from workers.slack.buttons import APPROVE

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Series:
    """Every sample of a /metrics page: (name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and wanted <= ls)


def names(series: Series) -> set[str]:
    return {n for n, _ in series}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    port = free_port()
    w = World(
        Path(tmp_path_factory.mktemp("e2e-metrics")),
        # one gate, between 50 % and 100 %
        {"payments": {"steps": [50, 100]}},
        redis_url=_redis_url(),
        extra_env={"CANARY_METRICS_PORT": str(port)},
    )
    w.start()
    w.worker_metrics = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    try:
        wait_for_http(w.worker_metrics, proc=w.workers[0].proc)  # type: ignore[attr-defined]
        yield w
    finally:
        w.stop()


def test_both_processes_metrics_move_as_a_deployment_runs(world: World) -> None:
    worker_url: str = world.worker_metrics  # type: ignore[attr-defined]
    web_url = f"{world.bot_url}/metrics"
    dana, sam = world.person(DANA), world.person(SAM)
    at_start = scrape(worker_url)

    answer = dana.ask(f"deploy payments {IMAGE.format(key='payments', tag='v2')}")
    found = STARTED.match(answer)
    assert found, answer
    dep_id = found.group(1)
    card = world.wait_card(dep_id)
    gate = world.wait_gate(card, timeout=60)
    told = dana.click_and_hear(gate, APPROVE)  # four-eyes: the requester may not approve
    assert told and "your own" in told.lower(), told

    # During: the deployment waits at its gate ------------------------------------------------
    during = scrape(worker_url)
    assert world.dep(dep_id).state == State.AWAITING_APPROVAL
    assert value(during, "canary_deployments", state="awaiting_approval") == 1
    assert value(during, "canary_verdicts_total", outcome="pass", reason="healthy") >= 1
    assert value(during, "canary_verdicts_total") > value(at_start, "canary_verdicts_total")
    # AWS calls counted by method through botocore's events, in the rollout process
    assert value(during, "canary_aws_api_calls_total", service="appmesh", operation="UpdateRoute")
    assert value(during, "canary_aws_api_calls_total", service="ecs", operation="CreateService")
    assert value(during, "canary_aws_api_calls_total", service="cloudwatch") >= 1
    # the step of 50 % passed and opened the gate; every job's lateness and duration observed
    assert value(during, "canary_step_duration_seconds_count", outcome="passed") == 1
    assert value(during, "canary_job_lateness_seconds_count") >= 1
    assert value(during, "canary_job_duration_seconds_count", state="provisioning") >= 1
    # Slack calls of the notify process, summed with the rollout process's by the supervisor
    assert value(during, "canary_slack_api_calls_total", method="chat.postMessage") >= 1
    # queue depth of every queue, read from Redis
    queues = {dict(ls)["queue"] for n, ls in during if n == "canary_queue_jobs"}
    assert queues == {f"{world.prefix}-{q}" for q in ("high", "default", "notify")}
    assert "canary_outbox_pending_deployments" in names(during)

    web = scrape(web_url)
    assert value(web, "canary_slack_requests_total", kind="command", status="200") >= 1
    assert value(web, "canary_slack_requests_total", kind="block_actions", status="200") >= 1
    assert value(web, "canary_slack_ack_duration_seconds_count", kind="command") >= 1
    assert value(web, "canary_refusals_total", answer="answer") >= 1  # dana's own approval
    assert value(web, "canary_deployments", state="awaiting_approval") == 1
    assert "process_resident_memory_bytes" in names(web)

    # The approval: recorded by the web process, the weights moved by the worker --------------
    assert sam.click_and_hear(gate, APPROVE, timeout=0.3) is None  # the thread shows it
    world.wait(dep_id, lambda d: not d.active, timeout=90)
    assert world.dep(dep_id).state == State.PROMOTED
    after = scrape(worker_url)
    web = scrape(web_url)

    assert value(web, "canary_gate_wait_seconds_count", decision="approved") == 1
    assert value(after, "canary_click_to_shift_seconds_count", router="appmesh") == 1
    assert value(after, "canary_click_to_shift_seconds_sum", router="appmesh") > 0
    assert value(after, "canary_step_duration_seconds_count", outcome="passed") == 2
    assert (
        value(after, "canary_deployments_finished_total", service="payments", outcome="promoted")
        == 1
    )
    assert value(after, "canary_deployments", state="awaiting_approval") == 0
    assert value(after, "canary_aws_api_calls_total", operation="UpdateRoute") > value(
        during, "canary_aws_api_calls_total", operation="UpdateRoute"
    )
    # no series names a deployment
    assert not any(dep_id in v for _, ls in after for _, v in ls)
    assert not any(re.search(r"canary_.*deployment_id", n) for n in names(after))
