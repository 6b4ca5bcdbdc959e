"""Tests of the CloudWatch reads against moto: counts fed by the sandbox feeder (which publishes
only what the CloudWatch agent configured by deploy/cloudwatch-agent.json would), alarm states."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sandbox.metrics_feed import (
    AgentConfig,
    Declaration,
    DelayedPublisher,
    envoy_labels,
    put_alb_counts,
    put_envoy_counts,
)
from workers.analysis.judge import Counts
from workers.analysis.templates import AlbMetricTemplate, MetricTemplate, Version
from workers.aws.cloudwatch import (
    AlbTarget,
    CountsRead,
    MissingAlarmError,
    alarms_firing,
    alb_query,
    envoy_query,
    fetch_one,
)

TEMPLATE = MetricTemplate()
CANARY = Version("prod", "payments", "8", "payments-4f2a9c1e", "payments-4f2a9c1e")
STABLE = Version("prod", "payments", "7", "payments", "payments")
NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


class CallCounter:
    """Counts the API calls a client sends, by operation name, and keeps their parameters."""

    def __init__(self, client: Any, operation: str) -> None:
        self.sent = 0
        self.calls: list[dict[str, Any]] = []
        # before-call fires once per HTTP request actually made; before-parameter-build sees the
        # API parameters as the caller passed them.
        client.meta.events.register(f"before-call.cloudwatch.{operation}", self._sent)
        client.meta.events.register(f"before-parameter-build.cloudwatch.{operation}", self._built)

    def _sent(self, **_: Any) -> None:
        self.sent += 1

    def _built(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))

    def __len__(self) -> int:
        return self.sent


def fetch(client: Any, template: MetricTemplate = TEMPLATE, **kwargs: Any) -> tuple[Counts, Counts]:
    window = {"start": NOW - timedelta(minutes=5), "end": NOW, "period_s": 60, **kwargs}
    query = envoy_query(template, canary=CANARY, stable=STABLE, period=window["period_s"])
    found = fetch_one(client, CountsRead(query, window["start"], window["end"]))
    return found.canary, found.stable


def put(cloudwatch: Any, version: Version, requests: int, errors: int, at: datetime) -> None:
    """As the agent publishes: NOW is long past, so the publication lag is over."""
    feed = DelayedPublisher(cloudwatch, lag=120)
    put_envoy_counts(feed, version, requests=requests, errors=errors, timestamp=at)


def test_fed_counts_come_back_in_one_call(cloudwatch: Any) -> None:
    for minutes_ago in (3, 2, 1):
        at = NOW - timedelta(minutes=minutes_ago)
        put(cloudwatch, CANARY, 400, 4, at)
        put(cloudwatch, STABLE, 3600, 9, at)
    calls = CallCounter(cloudwatch, "GetMetricData")

    canary, stable = fetch(cloudwatch)

    assert canary == Counts(requests=1200, errors=12)
    assert stable == Counts(requests=10800, errors=27)
    assert len(calls) == 1
    queries = calls.calls[0]["MetricDataQueries"]
    assert sorted(q["Id"] for q in queries) == [f"{s}{c}" for s in "cs" for c in range(1, 6)]
    assert all(q["MetricStat"]["Period"] == 60 for q in queries)
    assert all(q["MetricStat"]["Stat"] == "Sum" for q in queries)
    assert all("Expression" not in q for q in queries)


def test_other_services_and_data_outside_the_window_are_not_counted(cloudwatch: Any) -> None:
    other = Version("prod", "payments", "9", "payments-0000aaaa", "payments-0000aaaa")
    put(cloudwatch, other, 999, 999, NOW - timedelta(seconds=30))
    put(cloudwatch, CANARY, 500, 500, NOW - timedelta(minutes=10))
    put(cloudwatch, CANARY, 100, 1, NOW - timedelta(seconds=30))

    canary, stable = fetch(cloudwatch)

    assert canary == Counts(100, 1)
    assert stable == Counts(0, 0)


def test_all_status_classes_count_as_requests(cloudwatch: Any) -> None:
    at = NOW - timedelta(minutes=1)
    data = []
    agent = AgentConfig.load()
    for code_class, value in ((1, 1.0), (2, 90.0), (3, 5.0), (4, 3.0), (5, 2.0)):
        # Every class, under the dimension sets the shipped agent configuration publishes.
        labels = envoy_labels(CANARY, code_class)
        for dims in agent.dimension_sets("envoy_http_downstream_rq_xx", labels):
            dimensions = [{"Name": name, "Value": labels[name]} for name in dims]
            data.append(
                {
                    "MetricName": "envoy_http_downstream_rq_xx",
                    "Dimensions": dimensions,
                    "Timestamp": at,
                    "Value": value,
                }
            )
    cloudwatch.put_metric_data(Namespace=agent.namespace, MetricData=data)

    canary, _ = fetch(cloudwatch)

    assert canary == Counts(requests=101, errors=2)


def test_no_data_is_zero_counts(cloudwatch: Any) -> None:
    calls = CallCounter(cloudwatch, "GetMetricData")
    assert fetch(cloudwatch) == (Counts(0, 0), Counts(0, 0))
    assert len(calls) == 1


def test_an_empty_window_makes_no_call(cloudwatch: Any) -> None:
    calls = CallCounter(cloudwatch, "GetMetricData")
    assert fetch(cloudwatch, start=NOW, end=NOW) == (Counts(0, 0), Counts(0, 0))
    assert fetch(cloudwatch, start=NOW, end=NOW - timedelta(1)) == (Counts(0, 0), Counts(0, 0))
    assert len(calls) == 0


def test_a_short_sandbox_period_works(cloudwatch: Any) -> None:
    for seconds_ago in (50, 40, 30, 20, 10):
        at = NOW - timedelta(seconds=seconds_ago)
        put(cloudwatch, CANARY, 20, 1, at)
    canary, _ = fetch(cloudwatch, start=NOW - timedelta(minutes=1), period_s=5)
    assert canary == Counts(100, 5)


def test_a_replaced_template_reads_what_its_agent_configuration_publishes(cloudwatch: Any) -> None:
    """A team whose agent publishes per family and revision in its own namespace."""
    by_revision = (
        "ClusterName",
        "TaskDefinitionFamily",
        "TaskRevision",
        "envoy_response_code_class",
    )
    agent = AgentConfig(
        "Custom/Envoy",
        (Declaration(("container_name",), "^envoy$", ";", (by_revision,), ("^envoy_http_",)),),
    )
    template = MetricTemplate(
        namespace="Custom/Envoy",
        dimensions={
            "ClusterName": "{cluster}",
            "TaskDefinitionFamily": "{family}",
            "TaskRevision": "{revision}",
            "envoy_response_code_class": "{code_class}",
        },
    )
    at = NOW - timedelta(minutes=2)
    feed = DelayedPublisher(cloudwatch)
    put_envoy_counts(feed, CANARY, requests=300, errors=30, timestamp=at, agent=agent)
    put_envoy_counts(feed, STABLE, requests=2700, errors=3, timestamp=at, agent=agent)
    # Data the shipped agent configuration publishes must not leak into the replaced template.
    put(cloudwatch, CANARY, 5000, 5000, at)
    calls = CallCounter(cloudwatch, "GetMetricData")

    canary, stable = fetch(cloudwatch, template)

    assert canary == Counts(300, 30)
    assert stable == Counts(2700, 3)
    assert len(calls) == 1
    metric = calls.calls[0]["MetricDataQueries"][4]["MetricStat"]["Metric"]
    assert metric["Namespace"] == "Custom/Envoy"
    assert {d["Name"]: d["Value"] for d in metric["Dimensions"]}["TaskRevision"] == "8"


def test_the_old_default_with_a_virtual_node_dimension_reads_nothing(cloudwatch: Any) -> None:
    """The agent attaches no App Mesh virtual node label: a query naming one matches no series,
    while the default template reads what the agent publishes."""
    old_default = MetricTemplate(
        dimensions={
            "ClusterName": "{cluster}",
            "TaskDefinitionFamily": "{family}",
            "envoy_http_conn_manager_prefix": "ingress",
            "envoy_response_code_class": "{code_class}",
            "appmesh_virtual_node": "{virtual_node}",
        }
    )
    put(cloudwatch, CANARY, 400, 4, NOW - timedelta(minutes=2))
    put(cloudwatch, STABLE, 3600, 9, NOW - timedelta(minutes=2))

    assert fetch(cloudwatch, old_default) == (Counts(0, 0), Counts(0, 0))
    assert fetch(cloudwatch) == (Counts(400, 4), Counts(3600, 9))


def test_the_feed_publishes_only_the_agent_declared_dimension_sets(cloudwatch: Any) -> None:
    calls = CallCounter(cloudwatch, "PutMetricData")
    put(cloudwatch, CANARY, 10, 1, NOW)
    declared = {
        tuple(dims)
        for d in AgentConfig.load().declarations
        for dims in d.dimension_sets("envoy_http_downstream_rq_xx", envoy_labels(CANARY, 5))
    }
    published = {
        tuple(dim["Name"] for dim in datum["Dimensions"])
        for call in calls.calls
        for datum in call["MetricData"]
    }
    assert published == declared and declared
    assert "appmesh_virtual_node" not in envoy_labels(CANARY, 5)


def test_the_feed_publishes_only_after_the_publication_lag(cloudwatch: Any) -> None:
    clock = [NOW.timestamp()]
    feed = DelayedPublisher(cloudwatch, lag=90, clock=lambda: clock[0])
    put_envoy_counts(feed, CANARY, requests=100, errors=1, timestamp=NOW - timedelta(seconds=30))
    window = {"start": NOW - timedelta(minutes=5), "end": NOW + timedelta(minutes=5)}
    assert fetch(cloudwatch, **window) == (Counts(0, 0), Counts(0, 0))
    clock[0] += 59
    feed.flush()
    assert fetch(cloudwatch, **window) == (Counts(0, 0), Counts(0, 0))
    clock[0] += 1
    feed.flush()
    assert fetch(cloudwatch, **window) == (Counts(100, 1), Counts(0, 0))


def test_put_envoy_counts_is_one_call_and_checks_its_input(cloudwatch: Any) -> None:
    calls = CallCounter(cloudwatch, "PutMetricData")
    feed = DelayedPublisher(cloudwatch)
    put_envoy_counts(feed, CANARY, requests=10, errors=0)
    assert len(calls) == 1
    with pytest.raises(ValueError):
        put_envoy_counts(feed, CANARY, requests=10, errors=11)
    with pytest.raises(ValueError):
        put_envoy_counts(feed, CANARY, requests=-1, errors=0)


LB = "app/edge/50dc6c495c0c9188"


def alb_target(name: str) -> AlbTarget:
    return AlbTarget(LB, f"targetgroup/{name}/73e2d6bc24d8a067", name, "prod")


def test_a_crashing_canarys_failed_connections_count_against_it(cloudwatch: Any) -> None:
    """Behind an ALB, a canary whose tasks crash fails connections; the load balancer answers
    502, which it publishes per load balancer only. The canary's own per-target-group
    TargetConnectionErrorCount counts them; the stable's figures stay its own."""
    feed = DelayedPublisher(cloudwatch, lag=60)
    at = NOW - timedelta(minutes=2)
    canary, stable = alb_target("payments-4f2a9c1e"), alb_target("payments-v1")
    for target, errors, failed in ((canary, 2, 30), (stable, 1, 0)):
        put_alb_counts(
            feed,
            load_balancer=LB,
            target_group=target.target_group,
            requests=300,
            errors=errors,
            connection_errors=failed,
            timestamp=at,
        )

    def alb_counts(template: AlbMetricTemplate) -> tuple[Counts, Counts]:
        query = alb_query(template, canary=canary, stable=stable, period=60)
        found = fetch_one(cloudwatch, CountsRead(query, NOW - timedelta(minutes=5), NOW))
        return found.canary, found.stable

    counts = alb_counts(AlbMetricTemplate())

    assert counts == (Counts(300, 32), Counts(300, 1))
    # What an earlier default summed per target group reads nothing: it exists per load balancer.
    elb_only = AlbMetricTemplate.model_construct(
        **{**AlbMetricTemplate().__dict__, "error_metrics": ["HTTPCode_ELB_5XX_Count"]}
    )
    old = alb_counts(elb_only)
    assert old == (Counts(300, 0), Counts(300, 0))


def stubbed(operation: str, pages: list[dict[str, Any]]) -> tuple[Any, Stubber]:
    """A real boto3 CloudWatch client answering `operation` with `pages` in turn (moto never
    paginates); the stubber keeps the parameters of each request."""
    client = boto3.client("cloudwatch", region_name="us-east-1")
    stubber = Stubber(client)
    for page in pages:
        stubber.add_response(operation, page)
    return client, stubber


def requests_of(client: Any, operation: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        f"before-parameter-build.cloudwatch.{operation}",
        lambda params, **_: sent.append(dict(params)),
    )
    return sent


def test_next_token_pages_are_followed_and_summed() -> None:
    def result(query_id: str, *values: float) -> dict[str, Any]:
        return {"Id": query_id, "Values": list(values), "StatusCode": "PartialData"}

    client, stubber = stubbed(
        "get_metric_data",
        [
            {"MetricDataResults": [result("c2", 50, 40), result("c5", 1)], "NextToken": "t1"},
            {"MetricDataResults": [result("c2", 10), result("s2", 900), result("s5", 2.0)]},
        ],
    )
    requests = requests_of(client, "GetMetricData")

    with stubber:
        canary, stable = fetch(client)
        stubber.assert_no_pending_responses()

    assert canary == Counts(101, 1)
    assert stable == Counts(902, 2)
    assert len(requests) == 2
    assert "NextToken" not in requests[0]
    assert requests[1]["NextToken"] == "t1"
    assert requests[1]["MetricDataQueries"] == requests[0]["MetricDataQueries"]


# --- alarms -----------------------------------------------------------------------------------


def put_alarm(client: Any, name: str) -> None:
    client.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApplicationELB",
        MetricName="TargetResponseTime",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_only_alarms_in_alarm_are_reported(cloudwatch: Any) -> None:
    for name in ("payments-p99-latency", "payments-cpu", "payments-5xx"):
        put_alarm(cloudwatch, name)
    cloudwatch.set_alarm_state(
        AlarmName="payments-5xx", StateValue="ALARM", StateReason="test breach"
    )
    cloudwatch.set_alarm_state(AlarmName="payments-cpu", StateValue="OK", StateReason="test")

    names = ["payments-p99-latency", "payments-cpu", "payments-5xx"]
    assert alarms_firing(cloudwatch, names) == ("payments-5xx",)

    cloudwatch.set_alarm_state(
        AlarmName="payments-p99-latency", StateValue="ALARM", StateReason="test breach"
    )
    assert alarms_firing(cloudwatch, names) == ("payments-p99-latency", "payments-5xx")


def test_insufficient_data_is_not_firing(cloudwatch: Any) -> None:
    put_alarm(cloudwatch, "fresh")  # a new alarm starts in INSUFFICIENT_DATA
    assert alarms_firing(cloudwatch, ["fresh"]) == ()


def test_a_missing_alarm_is_a_configuration_error_naming_it(cloudwatch: Any) -> None:
    put_alarm(cloudwatch, "payments-5xx")
    with pytest.raises(MissingAlarmError) as caught:
        alarms_firing(cloudwatch, ["payments-5xx", "payments-typo"])
    assert isinstance(caught.value, ValueError)
    assert caught.value.names == ("payments-typo",)
    assert "payments-typo" in str(caught.value) and "payments-5xx" not in str(caught.value)


def test_alarm_pages_are_followed_one_call_each() -> None:
    def alarm(name: str, state: str) -> dict[str, Any]:
        return {"AlarmName": name, "StateValue": state}

    client, stubber = stubbed(
        "describe_alarms",
        [
            {"MetricAlarms": [alarm("a", "OK")], "NextToken": "t1"},
            {"MetricAlarms": [alarm("b", "ALARM")], "CompositeAlarms": [alarm("c", "ALARM")]},
        ],
    )
    requests = requests_of(client, "DescribeAlarms")

    with stubber:
        assert alarms_firing(client, ["a", "b", "c"]) == ("b", "c")
        stubber.assert_no_pending_responses()

    assert [r.get("NextToken") for r in requests] == [None, "t1"]
    assert requests[1]["AlarmNames"] == ["a", "b", "c"]


def test_no_alarms_configured_makes_no_call(cloudwatch: Any) -> None:
    calls = CallCounter(cloudwatch, "DescribeAlarms")
    assert alarms_firing(cloudwatch, []) == ()
    assert len(calls) == 0


def test_alarm_names_must_not_be_a_bare_string(cloudwatch: Any) -> None:
    with pytest.raises(TypeError):
        alarms_firing(cloudwatch, "payments-5xx")


def test_the_engine_clients_parse_timestamps_to_utc_without_the_local_zone(
    cloudwatch: Any,
) -> None:
    """The engine's clients (make_clients) answer timestamps as aware datetimes in UTC, made
    from the epoch numbers of the JSON/CBOR answers at once (botocore's default goes through
    dateutil's local zone: most of a batched check's CPU, docs/SCALE.md); the instants, and so
    the sums of a window, are the same."""
    from workers.aws.clients import make_clients, utc_timestamp

    at = NOW - timedelta(minutes=3)
    put(cloudwatch, CANARY, 400, 4, at)
    cw = make_clients("us-east-1").cloudwatch
    query = envoy_query(TEMPLATE, canary=CANARY, stable=STABLE, period=60)
    answer = cw.get_metric_data(
        MetricDataQueries=[
            {"Id": local, "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat}}
            for local, metric, stat in query.queries()
        ],
        StartTime=NOW - timedelta(minutes=10),
        EndTime=NOW,
    )
    stamps = [t for r in answer["MetricDataResults"] for t in r["Timestamps"]]
    assert stamps and set(stamps) == {at}
    assert all(t.tzinfo is UTC for t in stamps)
    # The read itself is unchanged by it.
    assert fetch(cw)[0] == Counts(requests=400, errors=4)
    assert utc_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert utc_timestamp(1.5).tzinfo is UTC
    # The query protocol's strings still go through botocore's own parser.
    assert utc_timestamp("2026-03-02T12:00:00Z") == NOW
