"""Tests of the CloudWatch reads against moto: counts fed by the sandbox feeder, alarm states."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sandbox.metrics_feed import put_envoy_counts
from workers.analysis.judge import Counts
from workers.analysis.templates import MetricTemplate
from workers.aws.cloudwatch import MissingAlarmError, Target, alarms_firing, fetch_counts

TEMPLATE = MetricTemplate()
CANARY = Target(cluster="prod", family="payments", virtual_node="payments-4f2a9c1e")
STABLE = Target(cluster="prod", family="payments", virtual_node="payments")
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
    return fetch_counts(client, template, canary=CANARY, stable=STABLE, **window)


def test_fed_counts_come_back_in_one_call(cloudwatch: Any) -> None:
    for minutes_ago in (3, 2, 1):
        at = NOW - timedelta(minutes=minutes_ago)
        put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=400, errors=4, timestamp=at)
        put_envoy_counts(cloudwatch, TEMPLATE, STABLE, requests=3600, errors=9, timestamp=at)
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


def test_other_nodes_and_data_outside_the_window_are_not_counted(cloudwatch: Any) -> None:
    other = Target(cluster="prod", family="payments", virtual_node="payments-0000aaaa")
    put_envoy_counts(cloudwatch, TEMPLATE, other, requests=999, errors=999, timestamp=NOW)
    before = NOW - timedelta(minutes=10)
    put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=500, errors=500, timestamp=before)
    at = NOW - timedelta(seconds=30)
    put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=100, errors=1, timestamp=at)

    canary, stable = fetch(cloudwatch)

    assert canary == Counts(100, 1)
    assert stable == Counts(0, 0)


def test_all_status_classes_count_as_requests(cloudwatch: Any) -> None:
    at = NOW - timedelta(minutes=1)
    data = []
    for code_class, value in ((1, 1.0), (2, 90.0), (3, 5.0), (4, 3.0), (5, 2.0)):
        metric = TEMPLATE.metric_for(
            cluster=CANARY.cluster,
            family=CANARY.family,
            virtual_node=CANARY.virtual_node,
            code_class=code_class,
        )
        data.append(
            {
                "MetricName": metric["MetricName"],
                "Dimensions": metric["Dimensions"],
                "Timestamp": at,
                "Value": value,
            }
        )
    cloudwatch.put_metric_data(Namespace=TEMPLATE.namespace, MetricData=data)

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
        put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=20, errors=1, timestamp=at)
    canary, _ = fetch(cloudwatch, start=NOW - timedelta(minutes=1), period_s=5)
    assert canary == Counts(100, 5)


def test_a_replaced_template_works(cloudwatch: Any) -> None:
    template = MetricTemplate(
        namespace="Custom/Envoy",
        metric_name="envoy_cluster_upstream_rq_{code_class}xx",
        dimensions={"Node": "{virtual_node}", "Cluster": "{cluster}"},
    )
    at = NOW - timedelta(minutes=2)
    put_envoy_counts(cloudwatch, template, CANARY, requests=300, errors=30, timestamp=at)
    put_envoy_counts(cloudwatch, template, STABLE, requests=2700, errors=3, timestamp=at)
    # Data under the default template must not leak into the replaced one.
    put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=5000, errors=5000, timestamp=at)
    calls = CallCounter(cloudwatch, "GetMetricData")

    canary, stable = fetch(cloudwatch, template)

    assert canary == Counts(300, 30)
    assert stable == Counts(2700, 3)
    assert len(calls) == 1
    metric = calls.calls[0]["MetricDataQueries"][4]["MetricStat"]["Metric"]
    assert metric["Namespace"] == "Custom/Envoy"
    assert metric["MetricName"] == "envoy_cluster_upstream_rq_5xx"


def test_put_envoy_counts_is_one_call_and_checks_its_input(cloudwatch: Any) -> None:
    calls = CallCounter(cloudwatch, "PutMetricData")
    put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=10, errors=0)
    assert len(calls) == 1
    with pytest.raises(ValueError):
        put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=10, errors=11)
    with pytest.raises(ValueError):
        put_envoy_counts(cloudwatch, TEMPLATE, CANARY, requests=-1, errors=0)


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
