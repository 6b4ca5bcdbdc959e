"""A BENCHMARK stand-in for AWS: it answers the read calls of a check itself, cheaply, and
forwards every other call to moto_server.

It is not a test world (sandbox/strict_moto.py is): it does not check what it is asked, it
tells every deployment's traffic as healthy, and it exists so that a benchmark of many
deployments in flight measures the product, not moto (which spends about 145 ms of CPU on one
GetMetricData, on the same two CPUs as the workers).

What it answers itself, after `delay` seconds, as AWS's protocols say (botocore's models):

- CloudWatch `GetMetricData`: one data point per period from a `TrafficModel` (requests per
  second, an error rate), never from moto. CloudWatch's model lists the protocols
  smithy-rpc-v2-cbor, json and query; botocore 1.44 sends JSON 1.0 (X-Amz-Target
  GraniteServiceVersion20100801.*), and both JSON and RPC v2 CBOR are answered here.
- CloudWatch `DescribeAlarms`: every alarm asked for exists, OK unless the model fires it.
- ECS `DescribeServices` (JSON 1.1), App Mesh `DescribeVirtualNode` (REST-JSON), ELBv2
  `DescribeTargetGroups` (query): moto's first answer, kept until a write of the same service
  or resource passes through; an ECS service is told at steady state (running = desired).

Everything else (provisioning, route weights, Cloud Map, EC2) goes to moto after the same delay,
unless the stand-in holds ECS, App Mesh and Cloud Map itself (`memory`, bench/aws_memory/:
what a benchmark of thousands of deployments needs, since moto cannot provision them in time).
Every call is counted by API (`calls`), and whether it was answered here or forwarded.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.model import ServiceModel
from botocore.parsers import RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer

from bench.latency_proxy import LatencyProxy, reply

if TYPE_CHECKING:
    from bench.aws_memory import MemoryAws

#: The services the workers talk to, by botocore name.
SERVICES = ("cloudwatch", "ecs", "appmesh", "elbv2", "servicediscovery", "ec2")
#: The calls answered here rather than by moto.
ANSWERED = (
    "cloudwatch.GetMetricData",
    "cloudwatch.DescribeAlarms",
    "ecs.DescribeServices",
    "appmesh.DescribeVirtualNode",
    "elbv2.DescribeTargetGroups",
)


@cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


@cache
def _by_signing_name() -> dict[str, str]:
    return {service_model(n).signing_name: n for n in SERVICES}


@cache
def _rest_routes(service: str) -> tuple[tuple[str, re.Pattern[str], str], ...]:
    """(method, path pattern, operation) of a REST service, from its model's requestUri."""
    model = service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http["requestUri"].split("?", 1)[0]
        pattern = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(uri))
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        routes.append((http["method"], re.compile(pattern), name))
    return tuple(routes)


@dataclass(frozen=True)
class Call:
    """One AWS API call as it arrived: service (botocore's name) and operation."""

    service: str
    operation: str
    #: How it is encoded: "json", "cbor" (Smithy RPC v2), "query" or "rest".
    protocol: str = "rest"

    @property
    def api(self) -> str:
        return f"{self.service}.{self.operation}"


def identify(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Call:
    """Which API a botocore request calls: the service from its SigV4 credential scope, the
    operation from X-Amz-Target (JSON), the RPC v2 path (CBOR), Action (query) or the REST
    route of the service's model."""
    scope = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/", headers.get("Authorization", ""))
    signing = scope.group(1) if scope else "unknown"
    service = _by_signing_name().get(signing, signing)
    target = headers.get("X-Amz-Target")
    if target:
        return Call(service, target.rsplit(".", 1)[-1], "json")
    bare = path.split("?", 1)[0]
    if bare.startswith("/service/") and "/operation/" in bare:
        return Call(service, bare.rsplit("/", 1)[-1], "cbor")
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        action = urllib.parse.parse_qs(body.decode()).get("Action", ["?"])[0]
        return Call(service, action, "query")
    if service in SERVICES:
        for verb, pattern, name in _rest_routes(service):
            if verb == method and pattern.fullmatch(bare):
                return Call(service, name)
    return Call(service, f"{method} {bare}")


def _is_read(operation: str) -> bool:
    return operation.startswith(("Describe", "List", "Get"))


@dataclass
class TrafficModel:
    """Every deployment's traffic as the stand-in tells it: so many requests a second, each
    version alike, `error_rate` of them 5xx; `firing` names the alarms in state ALARM."""

    requests_per_second: float = 20.0
    error_rate: float = 0.0
    firing: set[str] = field(default_factory=set)
    #: At most this many data points per query (the newest), as a long window would give.
    max_points: int = 1440
    #: Every version's response time at any percentile (`Stat: pNN`), in milliseconds.
    latency_ms: float = 40.0
    #: ECS services (Envoy's TaskGroup "service:<name>") failing since an epoch second: from
    #: then on `failing_error_rate` of their requests are 5xx (bench/in_flight.py --breaches).
    failing: dict[str, float] = field(default_factory=dict)
    failing_error_rate: float = 0.5

    def failing_since(self, metric: Mapping[str, Any]) -> float | None:
        for dim in metric.get("Dimensions", []):
            if dim.get("Name") == "TaskGroup":
                return self.failing.get(str(dim.get("Value", "")).removeprefix("service:"))
        return None

    def per_period(
        self, metric: Mapping[str, Any], period: int, stat: str = "Sum", start: float = 0.0
    ) -> float:
        """The value of one period of `metric` (a boto3 `Metric`), the one starting at `start`
        (epoch seconds), at `stat`: requests or errors (Sum), or a latency at a percentile
        (ALB's TargetResponseTime is in seconds). A failing service's period has errors for the
        part of it after its failure began."""
        if re.fullmatch(r"p\d+(\.\d+)?", stat):
            seconds = "ResponseTime" in str(metric.get("MetricName", ""))
            return self.latency_ms / 1000.0 if seconds else self.latency_ms
        requests = self.requests_per_second * period
        rate = self.error_rate
        since = self.failing_since(metric) if self.failing else None
        if since is not None:
            share = min(max(start + period - since, 0.0), period) / period
            rate += (self.failing_error_rate - self.error_rate) * share
        kind = _code_class(metric)
        if kind == "all":
            return requests
        if kind == "5":
            return requests * rate
        if kind == "2":
            return requests * (1.0 - rate)
        return 0.0


def _code_class(metric: Mapping[str, Any]) -> str | None:
    """ "all" for a request count, "1".."5" for a status class (Envoy's response-code-class
    dimension, or an ALB metric named after its class), None otherwise."""
    for dim in metric.get("Dimensions", []):
        if "code_class" in dim.get("Name", "").lower():
            return str(dim.get("Value", ""))[:1]
    name = str(metric.get("MetricName", ""))
    found = re.search(r"([1-5])XX", name, re.IGNORECASE)
    if found:
        return found.group(1)
    return "all" if "RequestCount" in name else None


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


_CBOR_IN = RpcV2CBORParser()
# botocore's own CBOR encoder, driven by the output shape (no CBOR library in the venv).
_CBOR_OUT = RpcV2CBORSerializer()  # its CBOR encoder knows timestamps


def decode_cbor(body: bytes) -> dict[str, Any]:
    return _CBOR_IN._initial_body_parse(body) or {}  # noqa: SLF001 - botocore's decoder


def encode_cbor(value: Mapping[str, Any], service: str, operation: str) -> bytes:
    shape = service_model(service).operation_model(operation).output_shape
    out = bytearray()
    _CBOR_OUT._serialize_data_item(out, dict(value), shape)  # noqa: SLF001 - botocore's encoder
    return bytes(out)


def _healthy(service: Mapping[str, Any]) -> dict[str, Any]:
    """An ECS service as at steady state: every desired task running, its rollout complete."""
    told = dict(service)
    if told.get("status") != "ACTIVE":
        return told
    desired = int(told.get("desiredCount", 0))
    told.update(runningCount=desired, pendingCount=0)
    told["deployments"] = [
        {**d, "runningCount": desired, "pendingCount": 0, "rolloutState": "COMPLETED"}
        for d in told.get("deployments", [])
        if d.get("status") == "PRIMARY"
    ]
    return told


def _last(name: str) -> str:
    """The name at the end of an ARN (or the name itself)."""
    return name.rsplit("/", 1)[-1]


Answer = tuple[int, list[tuple[str, str]], bytes]


class AwsStandIn(LatencyProxy):
    """The stand-in: answers ANSWERED itself, forwards the rest to moto (`upstream`)."""

    def __init__(
        self,
        upstream: str,
        delay: float = 0.0,
        model: TrafficModel | None = None,
        *,
        answer: bool = True,
        memory: MemoryAws | None = None,
    ) -> None:
        """`answer=False`: forward every call to moto, only counting them (moto's own figures).
        `memory`: ECS, App Mesh and Cloud Map answered from memory too (bench/aws_memory/),
        so that nothing of the App Mesh backend's reaches moto."""
        super().__init__(upstream, delay)
        self.model = model or TrafficModel()
        self.answer = answer
        self.memory = memory
        self.calls: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._lock = threading.Lock()
        #: Bumped by every write: an answer read from moto before a write is not kept.
        self._generation = 0
        self._services: dict[tuple[str, str], dict[bool, dict[str, Any]]] = {}
        self._nodes: dict[str, Answer] = {}
        self._groups: dict[bytes, Answer] = {}

    # counting ----------------------------------------------------------------------------------
    def counts(self) -> Counter[str]:
        """A copy of the calls so far, by API ("cloudwatch.GetMetricData": n)."""
        with self._lock:
            return Counter(self.calls)

    def forwarded_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.forwarded)

    # the handler's entry -----------------------------------------------------------------------
    def handle_request_of(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        data = body or b""
        headers = {k: v for k, v in handler.headers.items()}
        call = identify(handler.command, handler.path, headers, data)
        time.sleep(self.delay)  # ok: the latency AWS's endpoints take
        with self._lock:
            self.calls[call.api] += 1
            self.requests += 1
        answer = self._answer(call, handler.command, handler.path, headers, data)
        reply(handler, *answer)

    def _answer(
        self, call: Call, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        if not self.answer:
            return self._forward(call, method, path, headers, body)
        if call.service == "cloudwatch" and call.protocol in ("json", "cbor"):
            if call.operation == "GetMetricData":
                return self._encode(call, self._metric_data(self._decode(call, body)))
            if call.operation == "DescribeAlarms":
                return self._encode(call, self._alarms(self._decode(call, body)))
        if self.memory is not None:
            answered = self.memory.handle(call, method, path, body)
            if answered is not None:
                return answered
        if call.api == "ecs.DescribeServices":
            return self._describe_services(call, method, path, headers, body)
        if call.api == "appmesh.DescribeVirtualNode":
            return self._cached(self._nodes, path.split("?", 1)[0], call, method, path, headers)
        if call.api == "elbv2.DescribeTargetGroups":
            return self._cached(self._groups, body, call, method, path, headers, body)
        if not _is_read(call.operation):
            self._written(call, path, body)
        return self._forward(call, method, path, headers, body)

    def _forward(
        self, call: Call, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> Answer:
        with self._lock:
            self.forwarded[call.api] += 1
        return self.forward(method, path, body or None, headers)

    # writes forget what they change ------------------------------------------------------------
    def _written(self, call: Call, path: str, body: bytes) -> None:
        with self._lock:
            self._generation += 1
            if call.service == "ecs":
                try:
                    request = json.loads(body or b"{}")
                except ValueError:
                    request = {}
                names = {
                    _last(str(request[k]))
                    for k in ("service", "serviceName", "resourceArn")
                    if k in request
                }
                for key in [k for k in self._services if k[1] in names]:
                    del self._services[key]
            elif call.service == "appmesh":
                self._nodes.pop(path.split("?", 1)[0], None)
            elif call.service == "elbv2":
                self._groups.clear()

    # CloudWatch --------------------------------------------------------------------------------
    @staticmethod
    def _decode(call: Call, body: bytes) -> dict[str, Any]:
        return decode_cbor(body) if call.protocol == "cbor" else json.loads(body or b"{}")

    def _encode(self, call: Call, value: dict[str, Any]) -> Answer:
        """CloudWatch's answer in the request's protocol (JSON 1.0 or RPC v2 CBOR)."""
        request_id = ("x-amzn-requestid", str(uuid.uuid4()))
        if call.protocol == "cbor":
            headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
            return 200, [*headers, request_id], encode_cbor(value, call.service, call.operation)
        text = json.dumps(value, default=lambda t: t.timestamp())
        return 200, [("Content-Type", "application/x-amz-json-1.0"), request_id], text.encode()

    def _metric_data(self, request: Mapping[str, Any]) -> dict[str, Any]:
        start, end = _epoch(request["StartTime"]), _epoch(request["EndTime"])
        ascending = request.get("ScanBy") == "TimestampAscending"
        results = []
        for query in request.get("MetricDataQueries", []):
            stat = query.get("MetricStat")
            if not stat or query.get("ReturnData") is False:
                results.append({"Id": query["Id"], "StatusCode": "Complete"})
                continue
            period = max(1, int(stat.get("Period", 60)))
            first = math.ceil(start / period) * period
            count = max(0, math.ceil((end - first) / period))
            skip = max(0, count - self.model.max_points)
            stamps = [first + (skip + i) * period for i in range(count - skip)]
            if not ascending:
                stamps.reverse()
            metric, how = stat["Metric"], str(stat.get("Stat", "Sum"))
            if self.model.failing and self.model.failing_since(metric) is not None:
                values = [self.model.per_period(metric, period, how, t) for t in stamps]
            else:
                values = [self.model.per_period(metric, period, how)] * len(stamps)
            results.append(
                {
                    "Id": query["Id"],
                    "Label": stat["Metric"].get("MetricName", query["Id"]),
                    "Timestamps": [datetime.fromtimestamp(t, UTC) for t in stamps],
                    "Values": values,
                    "StatusCode": "Complete",
                }
            )
        return {"MetricDataResults": results, "Messages": []}

    def _alarms(self, request: Mapping[str, Any]) -> dict[str, Any]:
        alarms = [
            {
                "AlarmName": name,
                "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}",
                "StateValue": "ALARM" if name in self.model.firing else "OK",
            }
            for name in request.get("AlarmNames", [])
        ]
        return {"MetricAlarms": alarms, "CompositeAlarms": []}

    # ECS ---------------------------------------------------------------------------------------
    def _describe_services(
        self, call: Call, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        request = json.loads(body or b"{}")
        cluster = _last(str(request.get("cluster") or "default"))
        names = [_last(str(n)) for n in request.get("services", [])]
        tags = "TAGS" in request.get("include", [])
        with self._lock:
            kept = [self._services.get((cluster, n), {}).get(tags) for n in names]
            generation = self._generation
        if names and all(s is not None for s in kept):
            return self._json({"services": kept, "failures": []})
        status, answer_headers, data = self._forward(call, method, path, headers, body)
        if status != 200:
            return status, answer_headers, data
        answer = json.loads(data)
        told = [_healthy(s) for s in answer.get("services", [])]
        with self._lock:
            if generation == self._generation:
                for s in told:
                    self._services.setdefault((cluster, s["serviceName"]), {})[tags] = s
        return self._json({"services": told, "failures": answer.get("failures", [])})

    def _json(self, value: Mapping[str, Any]) -> Answer:
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        return 200, headers, json.dumps(value).encode()

    # App Mesh, ELBv2: moto's answer, kept until a write --------------------------------------
    def _cached(
        self,
        store: dict[Any, Answer],
        key: Any,
        call: Call,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Answer:
        with self._lock:
            kept = store.get(key)
            generation = self._generation
        if kept is not None:
            return kept
        answer = self._forward(call, method, path, headers, body)
        if answer[0] == 200:
            with self._lock:
                if generation == self._generation:
                    store[key] = answer
        return answer
