"""The CloudWatch metric a canary is judged on: a template filled in per target and status class.

Pure: it builds boto3 request fragments and never calls AWS.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The only placeholders a template may use, in the order people usually read them.
PLACEHOLDERS: tuple[str, ...] = (
    "cluster",
    "family",
    "revision",
    "ecs_service",
    "task_group",
    "virtual_node",
    "code_class",
)

#: Placeholder sets any one of which names a single version (canary or stable): the canary is its
#: own ECS service (`{ecs_service}`, whose tasks the CloudWatch agent labels
#: `TaskGroup=service:<name>`, `{task_group}`) and its own virtual node, but a new revision of the
#: stable's family, so a revision only names a version together with its family.
IDENTIFYING: tuple[frozenset[str], ...] = (
    frozenset({"ecs_service"}),
    frozenset({"task_group"}),
    frozenset({"virtual_node"}),
    frozenset({"family", "revision"}),
)

#: The Envoy status classes counted: 1xx..5xx. Requests are their sum; errors are class 5.
CODE_CLASSES: tuple[int, ...] = (1, 2, 3, 4, 5)


def _default_dimensions() -> dict[str, str]:
    # Exactly the dimension set deploy/cloudwatch-agent.json declares for this metric: CloudWatch
    # answers only a query whose dimensions equal a published set (docs/METRICS.md).
    return {
        "ClusterName": "{cluster}",
        "TaskGroup": "service:{ecs_service}",
        "envoy_http_conn_manager_prefix": "ingress",
        "envoy_response_code_class": "{code_class}",
    }


@functools.lru_cache(maxsize=1024)
def _placeholders_in(
    text: str, where: str, placeholders: tuple[str, ...] = PLACEHOLDERS
) -> frozenset[str]:
    """The placeholder names used in text; ValueError naming `where` if any is not allowed.

    Cached: every Deployment read from Redis validates its metric templates again.
    """
    allowed = ", ".join("{" + name + "}" for name in placeholders)
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(text)
            if name is not None
        ]
    except ValueError as exc:
        raise ValueError(
            f"{where} = {text!r} is not a valid template ({exc}); "
            "write a literal brace as {{ or }}"
        ) from None
    found: set[str] = set()
    for name, spec, conversion in fields:
        if name not in placeholders:
            shown = "{" + name + "}" if name else "{}"
            raise ValueError(
                f"{where} = {text!r} uses unknown placeholder {shown}; allowed: {allowed}"
            )
        if spec or conversion:
            raise ValueError(
                f"{where} = {text!r}: write the placeholder plainly as {{{name}}}, "
                "without a conversion or format spec"
            )
        found.add(name)
    return frozenset(found)


class MetricTemplate(BaseModel):
    """Which CloudWatch metric counts a target's requests per status class.

    Placeholders in the metric name and dimension values are filled in per query. The default
    is Envoy's ingress request counter as scraped by the CloudWatch agent (Container Insights).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(default="ECS/ContainerInsights/Prometheus", min_length=1)
    metric_name: str = Field(default="envoy_http_downstream_rq_xx", min_length=1)
    # Request counters only make sense summed; Average or Maximum would silently undercount.
    statistic: Literal["Sum"] = "Sum"
    dimensions: dict[str, str] = Field(default_factory=_default_dimensions)

    @field_validator("namespace")
    @classmethod
    def _namespace_is_literal(cls, value: str) -> str:
        if _placeholders_in(value, "namespace"):
            raise ValueError(f"namespace {value!r} cannot contain placeholders")
        return value

    @field_validator("metric_name")
    @classmethod
    def _metric_name_placeholders(cls, value: str) -> str:
        _placeholders_in(value, "metric_name")
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimension_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            if not name or not template:
                raise ValueError(
                    f"dimension {name!r} = {template!r}: names and values cannot be empty"
                )
            if _placeholders_in(name, "dimension name"):
                raise ValueError(f"dimension name {name!r} cannot contain placeholders")
            _placeholders_in(template, f"dimension {name!r}")
        return value

    @model_validator(mode="after")
    def _tells_targets_and_classes_apart(self) -> MetricTemplate:
        used = _placeholders_in(self.metric_name, "metric_name")
        for name, template in self.dimensions.items():
            used |= _placeholders_in(template, f"dimension {name!r}")
        # Without these two, the five classes (or canary and stable) would read the same series.
        if "code_class" not in used:
            raise ValueError(
                "the metric template must use {code_class} in the metric name or a dimension "
                "value, otherwise the status classes (requests vs 5xx) cannot be told apart"
            )
        if not any(needed <= used for needed in IDENTIFYING):
            sets = " or ".join(
                " and ".join("{" + name + "}" for name in sorted(needed)) for needed in IDENTIFYING
            )
            raise ValueError(
                f"the metric template must use {sets} in the metric name or a dimension value, "
                "otherwise the canary and the stable cannot be told apart"
            )
        return self

    def dimensions_for(self, version: Version, code_class: int) -> list[dict[str, str]]:
        """The boto3 `Dimensions` list for one version and status class."""
        return self._dimensions(version.values(code_class))

    def metric_for(self, version: Version, code_class: int) -> dict[str, Any]:
        """The boto3 `Metric` (namespace, name, dimensions) for one version and status class."""
        values = version.values(code_class)  # once for the name and every dimension
        return {
            "Namespace": self.namespace,
            "MetricName": self.metric_name.format(**values),
            "Dimensions": self._dimensions(values),
        }

    def _dimensions(self, values: dict[str, str]) -> list[dict[str, str]]:
        dimensions = []
        for name, template in self.dimensions.items():
            value = template.format(**values)
            if not value:
                raise ValueError(f"dimension {name!r} would be empty (template {template!r})")
            dimensions.append({"Name": name, "Value": value})
        return dimensions


@dataclass(frozen=True)
class Version:
    """What names one version (the canary or the stable) in its Envoy counters' labels."""

    cluster: str
    family: str
    revision: str  # the task definition's revision number, as the agent's TaskRevision label
    ecs_service: str
    virtual_node: str

    @property
    def task_group(self) -> str:
        # ECS puts a service's tasks in the task group "service:<service name>".
        return f"service:{self.ecs_service}"

    def values(self, code_class: int) -> dict[str, str]:
        """Every placeholder's value for this version and status class."""
        if code_class not in CODE_CLASSES:
            raise ValueError(f"code_class must be one of {CODE_CLASSES}, got {code_class!r}")
        return {
            "cluster": self.cluster,
            "family": self.family,
            "revision": self.revision,
            "ecs_service": self.ecs_service,
            "task_group": self.task_group,
            "virtual_node": self.virtual_node,
            "code_class": str(code_class),
        }


#: The placeholders of an ALB metric template's dimension values.
ALB_PLACEHOLDERS: tuple[str, ...] = (
    "load_balancer",
    "target_group",
    "target_group_name",
    "cluster",
)


def _default_alb_dimensions() -> dict[str, str]:
    return {"LoadBalancer": "{load_balancer}", "TargetGroup": "{target_group}"}


#: ALB metrics published per load balancer (and Availability Zone) only, never per target group:
#: a query with a TargetGroup dimension reads nothing from them (docs/ALB.md).
ALB_LOAD_BALANCER_ONLY_PREFIX = "HTTPCode_ELB_"


def _default_alb_errors() -> list[str]:
    # The per-target-group failures of the canary's own making (docs/ALB.md): 5xx its targets
    # answered, and connections to them that failed (which the load balancer answers with 502)
    # or whose TLS handshake failed. HTTPCode_ELB_5XX_Count is per load balancer only.
    return [
        "HTTPCode_Target_5XX_Count",
        "TargetConnectionErrorCount",
        "TargetTLSNegotiationErrorCount",
    ]


class AlbMetricTemplate(BaseModel):
    """Which CloudWatch metrics count a target group's requests and 5xx (router alb).

    Requests come from one metric, errors are the sum of several; all of them are read with
    the same dimensions. The default is the load balancer's own per-target-group counters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(default="AWS/ApplicationELB", min_length=1)
    requests_metric: str = Field(default="RequestCount", min_length=1)
    error_metrics: list[str] = Field(default_factory=_default_alb_errors, min_length=1)
    statistic: Literal["Sum"] = "Sum"
    dimensions: dict[str, str] = Field(default_factory=_default_alb_dimensions)
    #: The latency read at the catalogue's percentile, with the same dimensions (None: none).
    #: The load balancer publishes TargetResponseTime in seconds, with percentile statistics.
    latency_metric: str | None = Field(default="TargetResponseTime", min_length=1)
    latency_unit: Literal["Seconds", "Milliseconds"] = "Seconds"

    @field_validator("namespace", "requests_metric", "latency_metric")
    @classmethod
    def _literal(cls, value: str | None) -> str | None:
        if value is not None and _placeholders_in(value, "ALB metric name", ALB_PLACEHOLDERS):
            raise ValueError(f"{value!r} cannot contain placeholders")
        return value

    @field_validator("error_metrics")
    @classmethod
    def _error_metrics(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or _placeholders_in(name, "error metric", ALB_PLACEHOLDERS):
                raise ValueError(f"error metric {name!r} must be a plain metric name")
        if len(set(value)) != len(value):
            raise ValueError("error_metrics lists a metric twice; it would be counted twice")
        per_load_balancer = [n for n in value if n.startswith(ALB_LOAD_BALANCER_ONLY_PREFIX)]
        if per_load_balancer:
            raise ValueError(
                f"{', '.join(per_load_balancer)}: the load balancer publishes its own 5xx per "
                "load balancer only, never per target group, so the canary's query would read "
                "nothing; use HTTPCode_Target_5XX_Count, TargetConnectionErrorCount, "
                "TargetTLSNegotiationErrorCount"
            )
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: dict[str, str]) -> dict[str, str]:
        used: set[str] = set()
        for name, template in value.items():
            if not name or not template:
                raise ValueError(
                    f"dimension {name!r} = {template!r}: names and values cannot be empty"
                )
            if _placeholders_in(name, "dimension name", ALB_PLACEHOLDERS):
                raise ValueError(f"dimension name {name!r} cannot contain placeholders")
            used |= _placeholders_in(template, f"dimension {name!r}", ALB_PLACEHOLDERS)
        if not used & {"target_group", "target_group_name"}:
            raise ValueError(
                "the ALB metric dimensions must use {target_group} or {target_group_name}, "
                "otherwise the canary and the stable cannot be told apart"
            )
        return value

    def metric_for(
        self,
        metric_name: str,
        *,
        load_balancer: str,
        target_group: str,
        target_group_name: str,
        cluster: str,
    ) -> dict[str, Any]:
        """The boto3 `Metric` of one of the template's metrics for one target group."""
        values = {
            "load_balancer": load_balancer,
            "target_group": target_group,
            "target_group_name": target_group_name,
            "cluster": cluster,
        }
        dimensions = []
        for name, template in self.dimensions.items():
            value = template.format(**values)
            if not value:
                raise ValueError(f"dimension {name!r} would be empty (template {template!r})")
            dimensions.append({"Name": name, "Value": value})
        return {"Namespace": self.namespace, "MetricName": metric_name, "Dimensions": dimensions}


def describe_query(metrics: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> str:
    """How a person reads the queries of one metric: "namespace N, metric M, dimensions A=a,
    B=1|2" (values that differ between the queries joined by |), to paste into the console."""
    if not metrics:
        return "no query"
    namespaces = list(dict.fromkeys(str(m["Namespace"]) for m in metrics))
    names = list(dict.fromkeys(str(m["MetricName"]) for m in metrics))
    values: dict[str, list[str]] = {}
    for metric in metrics:
        for dimension in metric.get("Dimensions", []):
            seen = values.setdefault(str(dimension["Name"]), [])
            if dimension["Value"] not in seen:
                seen.append(str(dimension["Value"]))
    dimensions = ", ".join(f"{name}={'|'.join(v)}" for name, v in values.items()) or "none"
    return f"namespace {'|'.join(namespaces)}, metric {'|'.join(names)}, dimensions {dimensions}"
