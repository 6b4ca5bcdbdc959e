"""The engine's public API for the bot: start, decide, abort, roll back, read."""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.domain.catalogue import ConfigError, apply_overrides, overrides_to_accept
from workers.domain.deployment import Approval, Deployment, Event
from workers.domain.ids import new_deployment_id
from workers.domain.images import ImageError, check_image
from workers.domain.policy import image_refusal
from workers.domain.state import ROLLBACKABLE, State, Trigger
from workers.engine.machine import Engine
from workers.engine.store import Conflict
from workers.runtime.context import Runtime, get_runtime


@dataclass(frozen=True)
class Answer:
    """What the engine made of a request: done, or refused with a sentence saying why."""

    ok: bool
    message: str
    deployment: Deployment | None = None
    holder: Deployment | None = field(default=None)


def _rt(rt: Runtime | None) -> Runtime:
    return rt or get_runtime()


def start_deployment(
    service: str,
    image: str,
    *,
    requester: str,
    channel: str | None = None,
    overrides: dict[str, str] | None = None,
    rt: Runtime | None = None,
) -> Answer:
    """Start a canary of `image` for `service`; refuse with a reason when it cannot start."""
    rt = _rt(rt)
    try:
        entry = rt.catalogue().service(service)
        settings = apply_overrides(entry, overrides or {})
        check_image(image)
    except (ConfigError, ImageError) as exc:
        return Answer(False, str(exc))
    # With `images` set the answer is known now; without, the worker checks the image against
    # the stable's repository once it has discovered it, before creating anything.
    refused = image_refusal(service, image, entry.images) if entry.images else None
    if refused:
        return Answer(False, refused)
    now = rt.clock()
    dep = Deployment(
        id=new_deployment_id(),
        service=service,
        image=image,
        requester=requester,
        channel=channel,
        settings=settings,
        accept_plan=overrides_to_accept(entry, settings, overrides or {}),
        created_at=now,
        updated_at=now,
        state_since=now,
        next_due_at=now,
    )
    first = Event(
        at=now,
        kind="requested",
        state=dep.state,
        version=0,
        actor=requester,
        data={"image": image, "overrides": overrides or {}},
    )
    holder_id = rt.store.create(dep, first)
    if holder_id is not None:
        holder = rt.store.get(holder_id)
        return Answer(False, busy_message(service, holder, holder_id), holder=holder)
    rt.scheduler.run(dep.id, dep.version)
    rt.scheduler.notify(dep.id)
    return Answer(True, f"Deployment {dep.id} of {service} started.", dep)


def busy_message(service: str, holder: Deployment | None, holder_id: str) -> str:
    """'payments is busy: deployment #4f2a by @dana is at 25 %. Abort it first.'"""
    if holder is None:
        return f"{service} is busy: deployment {holder_id} is running. Abort it first."
    return (
        f"{service} is busy: deployment {holder.id} by <@{holder.requester}> is "
        f"{describe_progress(holder)}. Abort it first."
    )


def describe_progress(dep: Deployment) -> str:
    """Where a deployment is, in a few words ("at 25 %", "provisioning")."""
    if dep.state in (State.PROVISIONING, State.WAITING_READY):
        return "provisioning"
    if dep.state in (State.ROLLING_BACK, State.CLEANING_UP):
        return "rolling back"
    return f"at {dep.weight} %"


def decide_gate(
    dep_id: str, step: int, *, approve: bool, actor: str, rt: Runtime | None = None
) -> Answer:
    """Approve or abort the gate before step `step` (1-based); exactly one decision wins."""
    rt = _rt(rt)
    engine = Engine(rt)
    for _ in range(20):
        dep = rt.store.get(dep_id)
        if dep is None:
            return Answer(False, f"There is no deployment {dep_id}.")
        if not dep.active:
            return Answer(False, f"Deployment {dep_id} is already over ({dep.state.label}).", dep)
        if not approve:
            # Abort is the safe direction: an Abort button from an earlier gate still stops a
            # deployment that is running.
            return abort(dep_id, actor=actor, rt=rt)
        gate_step = dep.step_number + 1
        if dep.state != State.AWAITING_APPROVAL or gate_step != step:
            return Answer(False, stale_gate_message(dep, step), dep)
        if dep.settings.four_eyes and actor == dep.requester:
            return Answer(
                False,
                f"You can't approve your own deployment (four-eyes is on for {dep.service}).",
                dep,
            )
        try:
            approval = Approval(step=step, actor=actor, at=rt.clock())

            def approved(d: Deployment, approval: Approval = approval) -> None:
                d.approvals.append(approval)
                d.step_index += 1
                d.gate_opened_at = None
                d.attempts = 0

            event = engine.event("approved", actor=actor, step=step, weight=dep.next_weight)
            updated = engine.move(dep, Trigger.APPROVED, mutate=approved, events=[event])
            return Answer(True, f"Step {step} approved.", updated)
        except Conflict:
            continue
    return Answer(False, "The deployment is changing too fast; try again.")


def stale_gate_message(dep: Deployment, step: int) -> str:
    """Why a click on the gate of `step` no longer applies."""
    if dep.state == State.AWAITING_APPROVAL:
        return (
            f"That button is for step {step}, but deployment {dep.id} is waiting for "
            f"step {dep.step_number + 1}."
        )
    approvals = [a for a in dep.approvals if a.step == step]
    if approvals:
        return f"Step {step} was already approved by <@{approvals[-1].actor}>."
    if dep.state in (State.ROLLING_BACK, State.CLEANING_UP):
        return f"Step {step} can't be approved: deployment {dep.id} is rolling back."
    return f"Step {step} is not waiting for approval (deployment {dep.id} is {dep.state.label})."


def abort(
    dep_id: str, *, actor: str, reason: str | None = None, rt: Runtime | None = None
) -> Answer:
    """Roll the deployment back now (fast path: the route first, from the high-priority queue)."""
    rt = _rt(rt)
    dep = rt.store.get(dep_id)
    if dep is None:
        return Answer(False, f"There is no deployment {dep_id}.")
    if dep.state not in ROLLBACKABLE:
        if dep.active:
            return Answer(False, f"Deployment {dep_id} is already {dep.state.label}.", dep)
        return Answer(False, f"Deployment {dep_id} is already over ({dep.state.label}).", dep)
    why = reason or f"aborted by <@{actor}>"
    if not Engine(rt).request_rollback(dep_id, reason=why, actor=actor, by="abort"):
        current = rt.store.get(dep_id)
        state = current.state.label if current else "gone"
        return Answer(False, f"Deployment {dep_id} could not be aborted: it is {state}.", current)
    return Answer(True, f"Rolling back deployment {dep_id}.", rt.store.get(dep_id))


def roll_back(dep_id: str, *, actor: str, rt: Runtime | None = None) -> Answer:
    """The Roll back button after 100 %: same fast path as an abort."""
    return abort(dep_id, actor=actor, reason=f"rolled back by <@{actor}>", rt=rt)


def record_refusal(
    dep_id: str, *, actor: str, action: str, reason: str, rt: Runtime | None = None
) -> None:
    """Keep a refused click or command in the deployment's event log."""
    rt = _rt(rt)
    dep = rt.store.get(dep_id)
    if dep is None:
        return
    rt.store.append_event(
        dep_id,
        Event(
            at=rt.clock(),
            kind="refused",
            state=dep.state,
            version=dep.version,
            actor=actor,
            reason=reason,
            data={"action": action},
        ),
    )


def thread_url(dep_id: str, rt: Runtime | None = None) -> str | None:
    """The link to the deployment's Slack thread, once the notifier has posted its card."""
    return _rt(rt).store.notes(dep_id).get("thread_url") or None


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
