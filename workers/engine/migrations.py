"""What an earlier release left in Redis, read by this one: the one place stored shapes migrate.

Every stored shape has a number. A Deployment record carries it (`schema_version`), and so does
each event of a log (`schema_version` on every event). A record without one is shape 0, what the
releases before typed events and typed version records wrote (up to commit a3dc177); shape 0's
migration leaves a typed record written before the number was stored as it is (its versions
have their `router`). An event without one is shape 0 when it has shape 0's `data` dict, else a
typed event written before the number was stored (shape 1).
Reading goes through `read_deployment` and `read_event`: the JSON is parsed into a dict, each
migration from its shape up to this release's is applied in turn (`RECORD_MIGRATIONS`,
`EVENT_MIGRATIONS`: one function per step), and only then is it validated as today's type. A
shape newer than this release knows is refused (`NewerSchema`), never guessed at. The store
writes today's shape back on the deployment's next transition; event logs are append-only, so
an old event stays old in Redis and is migrated each time it is read.

RQ jobs are not migrated but dropped (`drop_unreadable_jobs`, at `python -m workers` start):
the releases before JSON jobs pickled them, and unpickling is what the JSON serializer is there
to refuse (docs/SECURITY.md). A job only carries a deployment id and version; the watchdog
reschedules a deployment whose job is gone once it is overdue (workers/engine/watchdog.py).

docs/UPGRADING.md says what a change of a stored shape needs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from redis import Redis
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from workers.analysis.templates import ALB_LOAD_BALANCER_ONLY_PREFIX
from workers.domain.deployment import RECORD_SCHEMA, Deployment
from workers.domain.events import EVENT_SCHEMA, EVENTS, Event
from workers.runtime.queues import SERIALIZER, rq_queue

log = logging.getLogger(__name__)

Migration = Callable[[dict[str, Any]], dict[str, Any]]


class NewerSchema(ValueError):
    """A record written by a newer release than this one: refused, not read as something else."""

    def __init__(self, what: str, found: int, known: int) -> None:
        super().__init__(
            f"{what} has stored shape {found}, newer than this release reads (up to {known}): it "
            "was written by a newer canary-bot; run that release (or newer) on every worker and "
            "web process instead of this one (docs/UPGRADING.md)"
        )
        self.found, self.known = found, known


# records ----------------------------------------------------------------------------------------
#: Shape 0's default App Mesh metric template: its `appmesh_virtual_node` dimension matches no
#: series the CloudWatch agent publishes (docs/METRICS.md), so every step it judged read nothing.
_SHAPE_0_DEFAULT_METRICS = {
    "namespace": "ECS/ContainerInsights/Prometheus",
    "metric_name": "envoy_http_downstream_rq_xx",
    "statistic": "Sum",
    "dimensions": {
        "ClusterName": "{cluster}",
        "TaskDefinitionFamily": "{family}",
        "envoy_http_conn_manager_prefix": "ingress",
        "envoy_response_code_class": "{code_class}",
        "appmesh_virtual_node": "{virtual_node}",
    },
}


def _record_0_to_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Shape 0 (up to a3dc177): stable and canary were the backend's dicts without a `router`;
    the settings snapshot may hold the default App Mesh template of then, which matched no
    series, and per-load-balancer ALB metrics, refused since."""
    # The record's own settings name the backend that made its versions (the catalogue's
    # default router was appmesh then, and the snapshot always wrote it out).
    router = (raw.get("settings") or {}).get("router") or "appmesh"
    for name in ("stable", "canary"):
        version = raw.get(name)
        if isinstance(version, dict) and "router" not in version:
            raw[name] = {**version, "router": router}
    settings = raw.get("settings") or {}
    if settings.get("metrics") == _SHAPE_0_DEFAULT_METRICS:
        # Never worse: that template read nothing anywhere; today's default reads the set
        # deploy/cloudwatch-agent.json publishes (and, without that agent, nothing either).
        settings.pop("metrics")
    alb = settings.get("alb_metrics")
    if isinstance(alb, dict) and isinstance(alb.get("error_metrics"), list):
        # Metrics per load balancer only read nothing with a TargetGroup dimension: dropping them
        # changes no count the old release judged by (ALB_LOAD_BALANCER_ONLY_PREFIX).
        kept = [m for m in alb["error_metrics"] if not m.startswith(ALB_LOAD_BALANCER_ONLY_PREFIX)]
        if kept:
            alb["error_metrics"] = kept
        else:
            alb.pop("error_metrics")  # today's default
    # ended_by was free text; every value shape 0 wrote is one of today's causes.
    # last_verdict: shape 0 lacks `code` and `figures` (read as unknown / none) and has a
    # `rate_pct` per count (ignored): today's Verdict reads it as it is.
    return raw


#: Shape n -> n+1 of a Deployment record, for every n below RECORD_SCHEMA.
RECORD_MIGRATIONS: dict[int, Migration] = {0: _record_0_to_1}


# events -----------------------------------------------------------------------------------------
def _resources(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("ecs_service", "task_definition", "virtual_node", "target_group")
    return {k: data[k] for k in keys if data.get(k) is not None}


def _event_0_to_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Shape 0 (up to a3dc177): one Event class, `actor`, `weight` and `reason` on every event
    and the rest in a free `data` dict; now one class per kind (workers/domain/events.py)."""
    kind = raw.get("kind")
    data: dict[str, Any] = raw.get("data") or {}
    actor, weight, reason = raw.get("actor"), raw.get("weight"), raw.get("reason")
    out: dict[str, Any] = {
        "kind": kind,
        **{k: raw[k] for k in ("seq", "at", "state", "version", "step") if k in raw},
    }
    fields: dict[str, Any]
    if kind == "requested":
        fields = {"actor": actor, "image": data.get("image"), "overrides": data.get("overrides")}
    elif kind == "provisioned":
        fields = {
            "canary": _resources(data),
            "desired": data.get("desired"),
            "old_image": data.get("old_image"),
        }
    elif kind == "ready":
        fields = {"running": data.get("running"), "desired": data.get("desired")}
    elif kind == "shifted":
        fields = {
            "weight": weight,
            "route": data.get("route"),
            "weights": data.get("weights") or {},
            "post_promotion_bake": data.get("post_promotion_bake"),
        }
    elif kind == "holding":
        fields = {
            "weight": weight,
            "verdict": data.get("verdict"),
            "deadline": data.get("deadline"),
            "interval": data.get("interval"),
        }
    elif kind in ("step_passed", "step_failed"):
        fields = {"weight": weight, "verdict": data.get("verdict")}
    elif kind == "gate_opened":
        fields = {
            "next_step": data.get("next_step"),
            "next_weight": data.get("next_weight"),
            "timeout_at": data.get("timeout_at"),
        }
    elif kind == "gate_reminder":
        fields = {"next_weight": weight, "timeout_at": data.get("timeout_at")}
    elif kind == "approved":
        fields = {"actor": actor, "weight": weight}
    elif kind == "refused":
        # A sentence where today's codes are: Refused reads it as `detail` (its own validator).
        fields = {"actor": actor, "action": data.get("action"), "reason": reason}
    elif kind == "rollback_started":
        fields = {"by": data.get("by"), "reason": reason, "actor": actor, "weight": weight or 0}
    elif kind == "route_restored":
        fields = {"seconds": data.get("seconds"), "stable": data.get("stable")}
    elif kind == "rolled_back":
        fields = {
            "by": data.get("by"),
            "reason": reason,
            "actor": actor,
            "kept": bool(data.get("kept")),
            "took": data.get("took"),
            "canary_existed": bool(data.get("canary_existed", True)),
        }
    elif kind == "promoted":
        old = data.get("old")
        fields = {
            "problems": data.get("problems") or [],
            "took": data.get("took"),
            "approvers": data.get("approvers") or [],
            "checks": data.get("checks", 0),
            "old": _resources(old) if isinstance(old, dict) else None,
        }
    elif kind == "failed":
        fields = {"reason": reason or "", "problems": data.get("problems") or []}
    else:
        raise ValueError(f"an event of kind {kind!r} is not one shape 0 knew")
    return out | {k: v for k, v in fields.items() if v is not None}


#: Shape n -> n+1 of an event, for every n below EVENT_SCHEMA.
EVENT_MIGRATIONS: dict[int, Migration] = {0: _event_0_to_1}


# reading ----------------------------------------------------------------------------------------
def migrate(
    raw: dict[str, Any],
    migrations: dict[int, Migration],
    current: int,
    what: str,
    unnumbered: int = 0,
) -> dict[str, Any]:
    """`raw` brought from its shape (`schema_version`; `unnumbered` when absent) up to
    `current`."""
    found = raw.get("schema_version", unnumbered)
    if not isinstance(found, int) or found < 0:
        raise ValueError(f"{what} has no readable stored shape ({found!r})")
    if found > current:
        raise NewerSchema(what, found, current)
    for shape in range(found, current):
        raw = migrations[shape](raw)
    raw["schema_version"] = current
    return raw


def _loads(raw: bytes | str, what: str) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


#: How a record of today's shape starts (model_dump_json writes `schema_version` first): such a
#: record is validated from its JSON at once, in half the time of loading it and migrating
#: nothing (every check reads one); any other goes through its migrations.
_TODAYS_RECORD = b'{"schema_version":%d,' % RECORD_SCHEMA


def read_deployment(raw: bytes | str) -> Deployment:
    """A Deployment from the JSON the store keeps, whichever release wrote it."""
    if (raw.encode() if isinstance(raw, str) else raw).startswith(_TODAYS_RECORD):
        return Deployment.model_validate_json(raw)
    data = _loads(raw, "a deployment record")
    what = f"deployment {data.get('id', '?')}"
    return Deployment.model_validate(migrate(data, RECORD_MIGRATIONS, RECORD_SCHEMA, what))


def read_event(raw: bytes | str) -> Event:
    """An event from the JSON of a log, whichever release wrote it."""
    data = _loads(raw, "an event")
    what = f"event {data.get('seq', '?')} ({data.get('kind', '?')})"
    # Typed events were written for a while before they carried their number: shape 0 is the
    # one with a `data` dict (it always wrote one), the typed classes never had one.
    unnumbered = 0 if "data" in data else 1
    return EVENTS.validate_python(migrate(data, EVENT_MIGRATIONS, EVENT_SCHEMA, what, unnumbered))


# jobs -------------------------------------------------------------------------------------------
def drop_unreadable_jobs(redis: Redis, queues: Iterable[str]) -> list[str]:
    """Remove the jobs of `queues` (waiting, or in any of RQ's registries: scheduled, started,
    failed...) that the JSON serializer cannot read (an earlier release's pickled jobs), without
    unpickling them; return their ids.

    Their deployments lose nothing: the watchdog reschedules an overdue deployment, and the
    outbox is nudged by it as well."""
    dropped: list[str] = []
    for name in queues:
        queue = rq_queue(name, redis)
        unreadable = {i for i in queue.get_job_ids() if not _readable(redis, i)}
        for job_id in unreadable:
            queue.remove(job_id)
        for registry in _REGISTRIES:
            key = registry(queue=queue).key
            for entry in redis.zrange(key, 0, -1):
                # A started job's entry is "<job id>:<execution id>" (RQ's parse_job_id).
                job_id = registry.parse_job_id(entry)
                if job_id in unreadable or not _readable(redis, job_id):
                    redis.zrem(key, entry)
                    unreadable.add(job_id)
        for job_id in sorted(unreadable):
            redis.delete(Job.key_for(job_id))
            log.warning(
                "queue %s: job %s is not JSON (an earlier release's), dropped", name, job_id
            )
        dropped += sorted(unreadable)
    return dropped


#: Where RQ keeps a queue's jobs besides the queue itself.
_REGISTRIES = (
    ScheduledJobRegistry,
    StartedJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    CanceledJobRegistry,
)


def _readable(redis: Redis, job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=redis, serializer=SERIALIZER)
        job.func_name  # noqa: B018 - reading it decodes the job's data with the serializer
    except NoSuchJobError:
        return True  # gone meanwhile: nothing to drop (RQ skips a missing id)
    except (DeserializationError, UnicodeDecodeError, ValueError):
        return False
    return True
