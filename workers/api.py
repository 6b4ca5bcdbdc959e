"""The engine's public API for the bot: start, decide, abort, roll back, read.

Answers say what happened in typed fields; how a person is told is workers.slack.answers'.
"""

from __future__ import annotations

from collections.abc import Sequence

from workers.domain.catalogue import ConfigError, apply_overrides, overrides_to_accept
from workers.domain.deployment import Approval, Deployment
from workers.domain.events import Approved, Cause, Event, Refused, Requested
from workers.domain.ids import new_deployment_id
from workers.domain.images import ImageError, check_image
from workers.domain.outcomes import Answer, Refusal, refused
from workers.domain.pipelines import Origin
from workers.domain.policy import image_refusal
from workers.domain.refusals import Forbidden
from workers.domain.state import ROLLBACKABLE, State, Trigger
from workers.engine.machine import Engine
from workers.engine.store import Conflict
from workers.runtime.context import Runtime, get_runtime
from workers.slack.chart_upload import can_chart, status_occasion


def _rt(rt: Runtime | None) -> Runtime:
    return rt or get_runtime()


def start_deployment(
    service: str,
    image: str,
    *,
    requester: str,
    channel: str | None = None,
    overrides: dict[str, str] | None = None,
    origin: Origin | None = None,
    rt: Runtime | None = None,
) -> Answer:
    """Start a canary of `image` for `service`; refuse with a reason when it cannot start.

    `origin`: the CI pipeline that asked (then `requester` is `origin.actor`) and its commit."""
    rt = _rt(rt)
    try:
        entry = rt.catalogue().service(service)
        settings = apply_overrides(entry, overrides or {})
        check_image(image)
    except (ConfigError, ImageError) as exc:
        return refused(Refusal.INVALID, detail=str(exc))
    # With `images` set the answer is known now; without, the worker checks the image against
    # the stable's repository once it has discovered it, before creating anything.
    foreign = image_refusal(service, image, entry.images) if entry.images else None
    if foreign:
        return refused(Refusal.INVALID, detail=foreign)
    now = rt.clock()
    dep = Deployment(
        id=new_deployment_id(),
        service=service,
        image=image,
        requester=requester,
        channel=channel,
        settings=settings,
        origin=origin,
        accept_plan=overrides_to_accept(entry, settings, overrides or {}),
        created_at=now,
        updated_at=now,
        state_since=now,
        next_due_at=now,
    )
    first = Requested(
        at=now,
        state=dep.state,
        actor=requester,
        image=image,
        overrides=overrides or {},
        pipeline=origin.pipeline if origin else None,
        commit=origin.commit if origin else None,
        url=origin.url if origin else None,
    )
    holder_id = rt.store.create(dep, first)
    if holder_id is not None:
        return refused(Refusal.BUSY, rt.store.get(holder_id), dep_id=holder_id)
    rt.scheduler.run(dep.id, dep.version)
    rt.scheduler.notify(dep.id)
    return Answer(True, dep)


def decide_gate(
    dep_id: str, step: int, *, approve: bool, actor: str, rt: Runtime | None = None
) -> Answer:
    """Approve or abort the gate before step `step` (1-based); exactly one decision wins."""
    rt = _rt(rt)
    engine = Engine(rt)
    for _ in range(20):
        dep = rt.store.get(dep_id)
        if dep is None:
            return refused(Refusal.UNKNOWN, dep_id=dep_id)
        if not dep.active:
            return refused(Refusal.OVER, dep)
        if not approve:
            # Abort is the safe direction: an Abort button from an earlier gate still stops a
            # deployment that is running.
            return abort(dep_id, actor=actor, rt=rt)
        gate_step = dep.step_number + 1
        if dep.state != State.AWAITING_APPROVAL or gate_step != step:
            return refused(stale_gate(dep, step), dep, step=step)
        if dep.settings.four_eyes and actor == dep.requester:
            return refused(Refusal.OWN_DEPLOYMENT, dep, step=step)
        try:
            approval = Approval(step=step, actor=actor, at=rt.clock())

            def approved(d: Deployment, approval: Approval = approval) -> None:
                d.approvals.append(approval)
                d.leave_step()
                d.step_index += 1
                d.gate_opened_at = None
                d.attempts = 0

            event = Approved(at=rt.clock(), actor=actor, step=step, weight=dep.next_weight)
            updated = engine.move(dep, Trigger.APPROVED, mutate=approved, events=[event])
            return Answer(True, updated, step=step)
        except Conflict:
            continue
    return refused(Refusal.TOO_FAST, dep_id=dep_id, step=step)


def stale_gate(dep: Deployment, step: int) -> Refusal:
    """Why a click on the gate of `step` no longer applies."""
    if dep.state == State.AWAITING_APPROVAL:
        return Refusal.OTHER_GATE
    if any(a.step == step for a in dep.approvals):
        return Refusal.ALREADY_APPROVED
    if dep.state in (State.ROLLING_BACK, State.CLEANING_UP):
        return Refusal.ROLLING_BACK
    return Refusal.NOT_AT_GATE


def abort(dep_id: str, *, actor: str, reason: str = "aborted", rt: Runtime | None = None) -> Answer:
    """Roll the deployment back now (fast path: the route first, from the high-priority queue).

    `reason` is plain words; the actor is kept apart (`Deployment.stopped_by`).
    """
    rt = _rt(rt)
    dep = rt.store.get(dep_id)
    if dep is None:
        return refused(Refusal.UNKNOWN, dep_id=dep_id)
    if dep.state not in ROLLBACKABLE:
        return refused(Refusal.NOT_ROLLBACKABLE if dep.active else Refusal.OVER, dep)
    if not Engine(rt).request_rollback(dep_id, reason=reason, actor=actor, by=Cause.ABORT):
        return refused(Refusal.NOT_ABORTED, rt.store.get(dep_id), dep_id=dep_id)
    return Answer(True, rt.store.get(dep_id), dep_id=dep_id)


def roll_back(dep_id: str, *, actor: str, rt: Runtime | None = None) -> Answer:
    """The Roll back button after 100 %: same fast path as an abort."""
    return abort(dep_id, actor=actor, reason="rolled back", rt=rt)


def record_refusal(
    dep_id: str,
    *,
    actor: str,
    action: str,
    refusal: Refusal | Forbidden | None,
    ids: Sequence[str] = (),
    rt: Runtime | None = None,
) -> None:
    """Keep a refused click or command in the deployment's event log: its code and the ids it
    names (workers.slack.answers words them for the person)."""
    rt = _rt(rt)
    dep = rt.store.get(dep_id)
    if dep is None:
        return
    rt.store.append_event(
        dep_id,
        Refused(
            at=rt.clock(),
            state=dep.state,
            version=dep.version,
            actor=actor,
            action=action,
            reason=refusal,
            ids=list(ids),
        ),
    )


def get_deployment(dep_id: str, rt: Runtime | None = None) -> Deployment | None:
    """One deployment, or None."""
    return _rt(rt).store.get(dep_id)


def get_events(dep_id: str, rt: Runtime | None = None) -> list[Event]:
    """The deployment's event log, oldest first."""
    return _rt(rt).store.events(dep_id)


def active_deployment(service: str, rt: Runtime | None = None) -> Deployment | None:
    """The service's running deployment, if any."""
    rt = _rt(rt)
    holder = rt.store.lock_holder(service)
    return rt.store.get(holder) if holder else None


def active_deployments(rt: Runtime | None = None) -> list[Deployment]:
    """Every deployment not yet finished, oldest first."""
    rt = _rt(rt)
    return sorted(rt.store.get_many(rt.store.active_ids()), key=lambda d: d.created_at)


def history(service: str, limit: int = 10, rt: Runtime | None = None) -> list[Deployment]:
    """The service's last `limit` deployments, newest first."""
    rt = _rt(rt)
    return rt.store.get_many(rt.store.history_ids(service, limit))


def last_deployments(services: list[str], rt: Runtime | None = None) -> dict[str, Deployment]:
    """Each service's newest deployment, for those that have one."""
    rt = _rt(rt)
    newest = rt.store.last_ids(services)
    return {d.service: d for d in rt.store.get_many(list(newest.values()))}


def request_chart(dep: Deployment, rt: Runtime | None = None) -> bool:
    """Have the notify worker post the deployment's chart in its thread (the web process never
    draws); False when it has no thread to post in, or its log has expired."""
    rt = _rt(rt)
    if not can_chart(rt.store, dep):
        return False
    rt.scheduler.chart(dep.id, status_occasion(dep))
    return True


def request_check(
    service: str, *, response_url: str, channel: str | None, rt: Runtime | None = None
) -> None:
    """Have a worker run the read-only checks of `service` (the bot never calls AWS) and post
    the table to `response_url`; `channel` is checked when the service names none."""
    rt = _rt(rt)
    rt.catalogue().service(service)
    rt.scheduler.check(service, response_url=response_url, channel=channel)
