"""The metrics: what a deployment, a check, an AWS or Slack call and a request from Slack count,
the gauges read from Redis, the worker's multiprocess sum, and the sample dashboard."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError

from bot.app import request_kind
from tests.fakes import World
from tests.slack_mock import MockSlack
from tests.test_engine import V3, at_gate, make_world, start
from workers import api
from workers.analysis.judge import Counts, Outcome, ReasonCode, Verdict, judge
from workers.domain.state import State
from workers.engine.store import Store
from workers.runtime import exposition, telemetry
from workers.runtime.queues import RqScheduler
from workers.runtime.telemetry import RedisGauges, watch_aws_clients
from workers.slack.client import make_client

ROOT = Path(__file__).resolve().parent.parent


def sample(name: str, **labels: str) -> float:
    """The current value of one series in this process (0 when it has not appeared yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def world(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws():
        world = make_world(monkeypatch, "appmesh")
        watch_aws_clients(world.clients)  # as runtime.context does for the worker's clients
        yield world


def test_a_gated_deployment_counts_its_steps_gates_clicks_and_calls(world: World) -> None:
    before = {
        "gate": sample("canary_gate_wait_seconds_count", decision="approved"),
        "gate_sum": sample("canary_gate_wait_seconds_sum", decision="approved"),
        "click": sample("canary_click_to_shift_seconds_count", router="appmesh"),
        "step": sample("canary_step_duration_seconds_count", outcome="passed"),
        "pass": sample("canary_verdicts_total", outcome="pass", reason="healthy"),
        "shift": sample("canary_aws_api_calls_total", service="appmesh", operation="UpdateRoute"),
        "promoted": sample(
            "canary_deployments_finished_total", service="payments", outcome="promoted"
        ),
        "jobs": sample("canary_job_duration_seconds_count", state="provisioning"),
        "late": sample("canary_job_lateness_seconds_count"),
    }
    dep_id = start(world)
    dep = world.drive(dep_id, at_gate)
    assert dep.state == State.AWAITING_APPROVAL and dep.gate_opened_at is not None
    world.clock.advance(90)  # a person takes a minute and a half to click
    assert api.decide_gate(dep_id, 2, approve=True, actor="USAM", rt=world.rt).ok
    waited = world.clock.now - dep.gate_opened_at
    world.drive(dep_id, lambda d: d.state == State.BAKING)

    assert sample("canary_gate_wait_seconds_count", decision="approved") == before["gate"] + 1
    gate_sum = sample("canary_gate_wait_seconds_sum", decision="approved") - before["gate_sum"]
    assert gate_sum == pytest.approx(waited)
    assert sample("canary_click_to_shift_seconds_count", router="appmesh") == before["click"] + 1
    assert sample("canary_step_duration_seconds_count", outcome="passed") == before["step"] + 1
    assert sample("canary_verdicts_total", outcome="pass", reason="healthy") >= before["pass"] + 1
    # the shift to step 1 and to step 2: one UpdateRoute each, counted by botocore's events
    shifts = sample("canary_aws_api_calls_total", service="appmesh", operation="UpdateRoute")
    assert shifts == before["shift"] + 2
    assert sample("canary_job_duration_seconds_count", state="provisioning") == before["jobs"] + 1
    assert sample("canary_job_lateness_seconds_count") > before["late"]
    # not finished yet
    assert (
        sample("canary_deployments_finished_total", service="payments", outcome="promoted")
        == before["promoted"]
    )


def test_a_failing_canary_counts_its_verdict_rollback_and_end(world: World) -> None:
    fail_before = sum(
        sample("canary_verdicts_total", outcome="fail", reason=code)
        for code in ("error_rate", "worse_than_stable")
    )
    rollbacks = sample("canary_rollbacks_total", cause="canary check")
    restored = sample("canary_rollback_restore_seconds_count", router="appmesh")
    ended = sample("canary_deployments_finished_total", service="payments", outcome="rolled_back")
    failed_steps = sample("canary_step_duration_seconds_count", outcome="rolled_back")
    dep_id = start(world, V3)
    dep = world.drive(dep_id, lambda d: not d.active)
    assert dep.state == State.ROLLED_BACK and dep.last_verdict is not None
    fail_after = sum(
        sample("canary_verdicts_total", outcome="fail", reason=code)
        for code in ("error_rate", "worse_than_stable")
    )
    assert fail_after == fail_before + 1
    assert dep.last_verdict.code in (ReasonCode.ERROR_RATE, ReasonCode.WORSE_THAN_STABLE)
    assert sample("canary_rollbacks_total", cause="canary check") == rollbacks + 1
    assert sample("canary_rollback_restore_seconds_count", router="appmesh") == restored + 1
    assert sample("canary_step_duration_seconds_count", outcome="rolled_back") == failed_steps + 1
    assert (
        sample("canary_deployments_finished_total", service="payments", outcome="rolled_back")
        == ended + 1
    )


def test_aws_errors_are_counted_by_operation_and_code(world: World) -> None:
    labels = {"service": "appmesh", "operation": "DescribeVirtualNode"}
    calls = sample("canary_aws_api_calls_total", **labels)
    with pytest.raises(ClientError) as raised:
        world.clients.appmesh.describe_virtual_node(meshName="prod-mesh", virtualNodeName="nope")
    code = raised.value.response["Error"]["Code"]
    assert sample("canary_aws_api_calls_total", **labels) == calls + 1
    assert sample("canary_aws_api_errors_total", code=code, **labels) >= 1
    assert sample("canary_aws_api_call_duration_seconds_count", **labels) >= 1


def test_verdicts_carry_a_reason_code_that_survives_the_store() -> None:
    def judged(canary: Counts, stable: Counts, **kw: object) -> Verdict:
        options: dict = {"max_error_rate_pct": 1.0, "min_requests": 100, "bake_complete": True}
        return judge(canary, stable, **(options | kw))

    assert judged(Counts(500, 0), Counts(500, 0)).code == ReasonCode.HEALTHY
    assert judged(Counts(50, 0), Counts(500, 0)).code == ReasonCode.TOO_FEW_REQUESTS
    alarmed = judged(Counts(500, 0), Counts(500, 0), alarms_firing=["p99"])
    assert (alarmed.outcome, alarmed.code) == (Outcome.FAIL, ReasonCode.ALARM)
    assert judged(Counts(5000, 400), Counts(5000, 5)).code == ReasonCode.ERROR_RATE
    waiting = judged(Counts(0, 0), Counts(500, 0), bake_complete=False)
    assert waiting.code == ReasonCode.NO_REQUESTS_YET
    assert Verdict.from_dict(alarmed.to_dict()) == alarmed
    older = {k: v for k, v in alarmed.to_dict().items() if k != "code"}
    assert Verdict.from_dict(older).code == ReasonCode.UNKNOWN


def test_redis_gauges_read_deployments_outbox_and_queues(world: World) -> None:
    dep_id = start(world)
    store = world.rt.store
    queued = RqScheduler(world.rt.redis, store.prefix)  # the world's own scheduler only records
    queued.run(dep_id, 1)
    queued.run(dep_id, 2, delay=60)
    families = {f.name: f for f in RedisGauges(lambda: store).collect()}
    states = {s.labels["state"]: s.value for s in families["canary_deployments"].samples}
    assert states["provisioning"] == 1 and states["baking"] == 0
    assert "promoted" not in states  # only deployments under way
    assert families["canary_outbox_pending_deployments"].samples[0].value == 1
    jobs = {
        (s.labels["queue"], s.labels["status"]): s.value
        for s in families["canary_queue_jobs"].samples
    }
    default = f"{store.prefix}-default"
    assert jobs[(default, "queued")] == 1 and jobs[(default, "scheduled")] == 1
    assert jobs[(f"{store.prefix}-high", "queued")] == 0


def test_redis_gauges_leave_a_scrape_without_redis_answering() -> None:
    def broken() -> Store:
        raise ConnectionError("redis down")

    assert list(RedisGauges(broken).collect()) == []


def test_a_hung_redis_holds_a_scrape_no_longer_than_the_timeout() -> None:
    release = threading.Event()
    reads: list[int] = []

    def hung() -> Store:
        reads.append(1)
        release.wait()  # a Redis that never answers
        raise ConnectionError("gone")

    gauges = RedisGauges(hung, timeout=0.05)
    try:
        assert list(gauges.collect()) == []
        assert list(gauges.collect()) == []
        assert len(reads) == 1  # the second scrape waited for the same read, not a new one
    finally:
        release.set()


def test_slack_calls_and_errors_are_counted_by_method() -> None:
    with MockSlack() as mock:
        client = make_client("xoxb-test", mock.base_url, retry_interval=0.01)
        posts = sample("canary_slack_api_calls_total", method="chat.postMessage")
        client.chat_postMessage(channel="C0PAYMENTS", text="hello")
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel="C0NOTAMEMBER", text="hello")
    assert sample("canary_slack_api_calls_total", method="chat.postMessage") == posts + 2
    errors = [
        s
        for f in REGISTRY.collect()
        if f.name == "canary_slack_api_errors"
        for s in f.samples
        if s.name.endswith("_total") and s.labels["method"] == "chat.postMessage"
    ]
    assert errors and all(s.labels["error"] != "unknown" for s in errors)


def test_requests_from_slack_are_told_apart_by_a_fixed_set_of_kinds() -> None:
    assert request_kind({"command": "/canary", "text": "help"}) == "command"
    assert request_kind({"type": "block_actions"}) == "block_actions"
    assert request_kind({"type": "event_callback", "event": {}}) == "event_callback"
    assert request_kind({"type": "x" * 500}) == "other"  # never a label a sender chooses
    assert request_kind(["not", "a", "dict"]) == "other"


_CHILD = """
import os, sys
from workers.runtime import telemetry
telemetry.AWS_CALLS.labels("ecs", "DescribeServices").inc(int(sys.argv[1]))
telemetry.JOBS_RUNNING.inc()
print(os.getpid())
"""


def test_the_worker_sums_its_processes_and_forgets_a_dead_ones_live_gauge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    pids = [
        int(
            subprocess.run(
                [sys.executable, "-c", _CHILD, str(n)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for n in (2, 3)
    ]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    calls = {"service": "ecs", "operation": "DescribeServices"}
    assert registry.get_sample_value("canary_aws_api_calls_total", calls) == 5
    assert registry.get_sample_value("canary_jobs_running", {}) == 2
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    exposition.process_gone(pids[0])
    assert registry.get_sample_value("canary_jobs_running", {}) == 1
    # counters of a dead process stay in the sum: a counter never goes down
    assert registry.get_sample_value("canary_aws_api_calls_total", calls) == 5
    # a new run starts from nothing, but keeps this process's own files
    (tmp_path / "counter_999999999.db").write_bytes(b"")
    exposition.empty(tmp_path)
    assert not list(tmp_path.glob("*_999999999.db"))
    assert registry.get_sample_value("canary_aws_api_calls_total", calls) is None


def test_the_web_page_has_its_own_metrics_and_redis_gauges(world: World) -> None:
    start(world)
    page = exposition.page(exposition.web_registry(lambda: world.rt.store))
    names = {f.name for f in text_string_to_metric_families(page.body.decode())}
    assert {"canary_deployments", "canary_queue_jobs", "canary_slack_requests"} <= names
    assert "process_cpu_seconds" in names  # the process's own, from the default registry
    assert page.content_type.startswith("text/plain")


# The sample dashboard ----------------------------------------------------------------------------
def known_series() -> set[str]:
    """Every series name the product exposes (with the suffixes of each metric type)."""
    names = set(telemetry.REDIS_GAUGE_NAMES)
    for metric in telemetry.ALL:
        for family in metric.describe():
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",),
            }[family.type]
            names |= {family.name + s for s in suffixes}
    return names


def test_the_sample_dashboard_reads_only_series_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert len(exprs) >= 10
    known = known_series()
    used = {name for expr in exprs for name in re.findall(r"\bcanary_[a-z0-9_]+", expr)}
    assert used and used <= known, sorted(used - known)
    # every metric the product defines has a panel
    families = {m.describe()[0].name for m in telemetry.ALL} | set(telemetry.REDIS_GAUGE_NAMES)
    shown = {f for f in families if any(name.startswith(f) for name in used)}
    assert shown == families, sorted(families - shown)


def test_metric_names_follow_prometheus_conventions() -> None:
    for metric in telemetry.ALL:
        family = metric.describe()[0]
        assert family.name.startswith("canary_"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        labels = set(metric._labelnames)
        assert not labels & {"deployment", "dep_id", "id", "user", "actor"}, family.name
