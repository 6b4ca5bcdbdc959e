"""One thread reply per event of a deployment (provisioned, shifted, verdicts, gates, the end).

Pure functions; the notifier posts what they return. The engine's events say what happened; which
of them share one message is decided here, from their order in the log:

- a passed step is told by the message of what follows it (the gate, the next shift, the
  promotion): one reply instead of two;
- a failed step's message says the rollback has begun, and that rollback posts nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

from workers.analysis.judge import Verdict
from workers.domain.deployment import Deployment
from workers.domain.durations import format_duration
from workers.domain.events import (
    Cause,
    Event,
    Failed,
    GateOpened,
    GateReminder,
    Holding,
    Promoted,
    Provisioned,
    Ready,
    Resources,
    RollbackStarted,
    RolledBack,
    RouteRestored,
    Shifted,
    StepFailed,
    StepPassed,
)
from workers.domain.images import short_name
from workers.slack.buttons import ABORT, APPROVE, ROLLBACK, ButtonValue
from workers.slack.format import (
    MAX_TEXT,
    Block,
    Message,
    clip,
    confirm,
    context,
    duration,
    fit_lines,
    mention,
    mentions,
    plain,
    section,
    text_message,
    verdict_figures,
    when,
    why,
)

#: The deployment's event log (or a contiguous part of it around the event shown), by seq.
Log = Sequence[Event]
#: Events beside the rollout's course (a refused click): skipped when looking at what an event
#: follows.
_ASIDE = frozenset({"refused"})


# thread replies --------------------------------------------------------------------------------
def render_event(dep: Deployment, event: Event, log: Log) -> Message | None:
    """The thread reply for one event of `log`; None for events people need not see here."""
    match event:
        case Provisioned():
            return _provisioned(event)
        case Ready():
            return text_message(f"Canary ready: {event.running}/{event.desired} tasks running.")
        case Shifted():
            return _shifted(dep, event, log)
        case StepFailed():
            return _step_failed(dep, event, log)
        case Holding():
            return _holding(event)
        case GateOpened():
            return _gate_opened(dep, event, log)
        case GateReminder():
            return _gate_reminder(dep, event)
        case RollbackStarted():
            return _rollback_started(event, log)
        case RouteRestored():
            return _route_restored(event)
        case RolledBack():
            return _rolled_back(dep, event)
        case Promoted():
            return _promoted(dep, event, log)
        case Failed():
            return _failed(event)
    # requested: the card; step_passed: told by what follows (see passed_before); approved: an
    # edit of the gate; refused: told to the one person.
    return None


def _at(log: Log, seq: int) -> Event | None:
    first = log[0].seq if log else 0
    return log[seq - first] if 0 <= seq - first < len(log) else None


def _next_to(log: Log, event: Event, direction: int) -> Event | None:
    """The event just before (-1) or after (+1) `event` in the rollout's course."""
    seq = event.seq + direction
    while (found := _at(log, seq)) is not None and found.kind in _ASIDE:
        seq += direction
    return found


def passed_before(event: Event, log: Log) -> StepPassed | None:
    """The passed step whose verdict `event`'s message tells as well: the one just before it."""
    before = _next_to(log, event, -1)
    return before if isinstance(before, StepPassed) else None


def _provisioned(e: Provisioned) -> Message:
    tasks = e.desired
    noun = "task" if tasks == 1 else "tasks"
    c = e.canary
    # The backend says what its traffic target is: a virtual node, or a target group (ALB).
    target = next((f"{label} {name}, " for name, label in _targets(c) if name), "")
    task_definition = c.task_definition if c.task_definition is not None else "?"
    return text_message(
        f"Canary provisioned: task definition {task_definition}, "
        f"{target}ECS service {c.ecs_service or '?'}"
        + (f" ({tasks} {noun})." if tasks is not None else ".")
    )


def _targets(c: Resources) -> tuple[tuple[str | None, str], ...]:
    return ((c.virtual_node, "virtual node"), (c.target_group, "target group"))


def traffic_sentence(e: Shifted) -> str:
    """ "Traffic 25 % → canary (route payments-route)." for a shift below 100 %."""
    return f"Traffic {e.weight} % → canary ({e.route})."


def _shifted(dep: Deployment, e: Shifted, log: Log) -> Message:
    passed = passed_before(e, log)
    before = passed_line(passed.step, passed.weight, passed.verdict) if passed else None
    lead = [section(clip(before))] if before else []
    if e.weight >= 100:
        bake = e.post_promotion_bake
        if bake is None:
            bake = dep.settings.post_promotion_bake
        text = (
            f"Traffic 100 % → canary ({e.route}). "
            f"Old version kept running for {format_duration(bake)}."
        )
        blocks = lead + [section(text), rollback_actions(dep.id, e.step or dep.step_number)]
        return Message(f"{before}\n{text}" if before else text, blocks)
    text = traffic_sentence(e)
    return Message(f"{before}\n{text}" if before else text, lead + [section(clip(text))])


def rollback_actions(dep_id: str, step: int) -> Block:
    return {
        "type": "actions",
        "block_id": "canary_rollback",
        "elements": [
            {
                "type": "button",
                "action_id": ROLLBACK,
                "text": plain("Roll back"),
                "style": "danger",
                "value": ButtonValue(dep_id, step).encode(),
                "confirm": confirm("Roll back?", "Traffic goes back to the old version at once."),
            }
        ],
    }


def shifted_closed(dep: Deployment, e: Shifted, log: Log, outcome: str) -> Message:
    """The 100 % message once Roll back is no longer offered."""
    first = _shifted(dep, e, log).text
    return Message(f"{first} {outcome}", [section(first), context(clip(outcome))])


def passed_line(step: int | None, weight: int | None, verdict: Verdict | None) -> str:
    """ "✅ Step 1 passed · canary 1,204 req, 3 × 5xx (0.25 %) · stable … · alarms OK"."""
    full = (weight or 0) >= 100
    name = "Post-promotion bake" if full else (f"Step {step}" if step else "Step")
    return f"✅ {name} passed · {verdict_figures(verdict, with_stable=not full)}"


def gate_verdict(gate: GateOpened, log: Log) -> str | None:
    """The verdict line of the step a gate follows."""
    passed = passed_before(gate, log)
    return passed_line(passed.step, passed.weight, passed.verdict) if passed else None


def _step_failed(dep: Deployment, e: StepFailed, log: Log) -> Message:
    full = e.weight >= 100
    figures = verdict_figures(e.verdict, with_stable=not full)
    name = "Post-promotion bake" if full else (f"Step {e.step}" if e.step else "Step")
    text = f"❌ {name} failed at {e.weight} % · {figures}"
    reason = e.verdict.reason
    blocks = [section(clip(text))] + ([context(clip(reason))] if reason else [])
    if not isinstance(_next_to(log, e, +1), RollbackStarted):
        return Message(text, blocks)
    # The rollback that follows posts nothing of its own: this message says why and that it began.
    lines = [text, reason, ROLLING_BACK] if reason else [text, ROLLING_BACK]
    return Message("\n".join(lines), [*blocks, section(ROLLING_BACK)])


ROLLING_BACK = "↩️ Rolling back: restoring 100 % stable first."


def _holding(e: Holding) -> Message:
    until = f"; rolls back at {when(e.deadline)} if it cannot be judged"
    reason = e.verdict.reason or "not enough requests to judge"
    return text_message(
        f"⏳ Holding at {e.weight} %: {reason}. Still checking every "
        f"{format_duration(e.interval)}{until}."
    )


def gate_question(dep: Deployment, e: GateOpened) -> str:
    approvers = dep.settings.approvers
    who = f"  {mentions(approvers)}" if approvers else ""
    if not approvers and dep.settings.four_eyes:
        who = f"  (anyone but {mention(dep.requester)})"
    return f"✋ Approve {e.next_weight} %?{who}"


def _gate_opened(dep: Deployment, e: GateOpened, log: Log) -> Message:
    step, weight = e.next_step, e.next_weight
    question = gate_question(dep, e)
    detail = f"Step {step} of {len(dep.settings.steps)}: {weight} % of traffic to the canary."
    if e.plan:  # overrides beyond the catalogue's caution: accept the plan first
        loosened = ", ".join(e.accept)
        detail = f"Plan in force, looser than the catalogue's ({loosened}): {e.plan}. {detail}"
    detail += f" Rolls back at {when(e.timeout_at)} without a decision; monitoring goes on."
    value = ButtonValue(dep.id, step).encode()
    verdict = gate_verdict(e, log)
    blocks = [section(clip(verdict))] if verdict else []
    blocks += [
        section(question),
        context(detail),
        {
            "type": "actions",
            "block_id": "canary_gate",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "text": plain(f"Approve {weight} %"),
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": ABORT,
                    "text": plain("Abort"),
                    "style": "danger",
                    "value": value,
                    "confirm": confirm(
                        "Abort?", "Traffic goes back to the stable version at once."
                    ),
                },
            ],
        },
    ]
    return Message(f"{verdict}\n{question}" if verdict else question, blocks)


def gate_closed(step: int, weight: int | None, outcome: str, verdict: str | None = None) -> Message:
    """The gate message once decided: no buttons, who or what decided (under the verdict)."""
    text = f"✋ Step {step}{f' ({weight} %)' if weight else ''} {outcome}"
    if verdict is None:
        return Message(text, [section(clip(text))])
    return Message(f"{verdict}\n{text}", [section(clip(verdict)), section(clip(text))])


def _gate_reminder(dep: Deployment, e: GateReminder) -> Message:
    who = f" {mentions(dep.settings.approvers)}" if dep.settings.approvers else ""
    until = f" Rolls back at {when(e.timeout_at)} without a decision."
    return text_message(f"⏰ Still waiting for approval of {e.next_weight} %.{who}{until}")


_BY = {
    Cause.ABORT: "aborted",
    Cause.CANARY_CHECK: "stopped by the canary check",
    Cause.GATE_TIMEOUT: "gate timed out",
    Cause.READY_TIMEOUT: "canary tasks never became ready",
    Cause.HOLD_TIMEOUT: "not enough traffic to judge",
    Cause.ERROR: "stopped by an error",
    Cause.IMAGE_POLICY: "image not allowed",
    Cause.NO_METRICS: "no metric series for the stable",
    Cause.ECS_ROLLBACK: "rolled back by ECS",
}


def ended_by(dep: Deployment, by: Cause | None, actor: str | None) -> str:
    """ "aborted by @dana", "stopped by the canary check at step 2 (25 %)"."""
    if by == Cause.ABORT and actor:
        return f"aborted by {mention(actor)}"
    label = _BY[by] if by else "rolled back"
    if by == Cause.CANARY_CHECK and dep.step_number:
        label += f" at step {dep.step_number} ({dep.weight} %)"
    return label


def _rollback_started(e: RollbackStarted, log: Log) -> Message | None:
    if isinstance(_next_to(log, e, -1), StepFailed):
        return None  # the failed step's message says it
    reason = (why(e.reason, e.actor) or "no reason given").rstrip(".")
    if not e.weight:  # no traffic had moved yet (e.g. the stable could not be found)
        return text_message(f"↩️ Stopping: {reason}. No traffic had moved to the canary.")
    return text_message(rolling_back(reason))


def rolling_back(reason: str | None = None) -> str:
    """ "↩️ Rolling back: <reason>. Restoring 100 % stable first.", or without a reason."""
    if not reason:
        return ROLLING_BACK
    return f"↩️ Rolling back: {reason.rstrip('.')}. Restoring 100 % stable first."


def _route_restored(e: RouteRestored) -> Message | None:
    if not e.stable:
        return None  # nothing was discovered, so nothing was routed: nothing to tell
    return text_message(f"Traffic 100 % → {e.stable} in {duration(e.seconds)}.")


def _rolled_back(dep: Deployment, e: RolledBack) -> Message:
    fate = "Canary kept at 0 tasks for diagnosis." if e.kept else "Canary scaled to 0 and removed."
    if not e.canary_existed:
        fate = "Nothing had been created in AWS."
    by = ended_by(dep, e.by, e.actor)
    text = f"Rolled back ❌ {fate} Requested by {mention(dep.requester)} · {by}"
    if e.took:
        text += f" · took {duration(e.took)}"
    reason = why(e.reason, e.actor)
    # "Why" only where it adds something: not after a failed check (its message, just above,
    # gave the figures) and not when it repeats "aborted by @dana".
    if e.by == Cause.CANARY_CHECK or (reason and reason in text):
        reason = None
    return Message(
        text, [section(clip(text))] + ([context(clip(f"Why: {reason}"))] if reason else [])
    )


def _promoted(dep: Deployment, e: Promoted, log: Log) -> Message:
    parts = [f"Promoted ✅ {short_name(dep.image)} is stable."]
    removed = removed_resources(e.old) if e.old is not None else ""
    if removed:
        parts.append(f"Removed {removed}.")
    summary = []
    if e.took:
        summary.append(f"took {duration(e.took)}")
    if e.approvers:
        summary.append(f"approved by {mentions(list(dict.fromkeys(e.approvers)))}")
    summary.append(f"{e.checks} checks passed")
    tail = " · ".join(summary)
    parts.append(tail[0].upper() + tail[1:])
    text = " ".join(parts)
    blocks = [section(clip(text))]
    bake = passed_before(e, log)  # the post-promotion bake
    if bake is not None:
        line = passed_line(None, 100, bake.verdict)
        text += f"\n{line}"
        blocks.append(context(clip(line)))
    if e.problems:
        blocks.append(
            section(fit_lines(["⚠ Clean up by hand:", *(f"• {p}" for p in e.problems)], MAX_TEXT))
        )
    return Message(text, blocks)


def removed_resources(old: Resources) -> str:
    """ "payments-v41 (service, virtual node)", from the promoted event's description."""
    named = (
        (old.ecs_service, "service"),
        (old.virtual_node, "virtual node"),
        (old.target_group, "target group"),
    )
    found = [(name, kind) for name, kind in named if name]
    if not found:
        return ""
    names = list(dict.fromkeys(name for name, _ in found))
    kinds = ", ".join(kind for _, kind in found)
    if len(names) == 1:
        return f"{names[0]} ({kinds})"
    return ", ".join(f"{kind} {name}" for name, kind in found)


def _failed(e: Failed) -> Message:
    text = f"⚠ Failed: a person must finish this. {e.reason}".strip()
    blocks = [section(clip(text))]
    if e.problems:
        blocks.append(
            section(fit_lines(["To clean up:", *(f"• {p}" for p in e.problems)], MAX_TEXT))
        )
    blocks.append(context("The route was left at 100 % stable where that was possible."))
    return Message(text, blocks)
