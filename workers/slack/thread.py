"""One thread reply per event of a deployment (provisioned, shifted, verdicts, gates, the end).

Pure functions; the notifier posts what they return.
"""

from __future__ import annotations

from typing import Any

from workers.domain.deployment import Deployment, Event
from workers.domain.durations import format_duration
from workers.domain.images import short_name
from workers.slack.buttons import ABORT, APPROVE, ROLLBACK, ButtonValue
from workers.slack.format import (
    Block,
    Message,
    clip,
    confirm,
    context,
    duration,
    mention,
    mentions,
    plain,
    section,
    text_message,
    verdict_figures,
    when,
)


# thread replies --------------------------------------------------------------------------------
def render_event(dep: Deployment, event: Event) -> Message | None:
    """The thread reply for one event; None for events people need not see."""
    render = _REPLIES.get(event.kind)
    if render is None:
        if event.kind in _SILENT:
            return None
        return text_message(
            f"{event.kind.replace('_', ' ')}{': ' + event.reason if event.reason else ''}"
        )
    return render(dep, event)


def _provisioned(dep: Deployment, e: Event) -> Message:
    d = e.data
    tasks = d.get("desired")
    noun = "task" if tasks == 1 else "tasks"
    # The backend says what its traffic target is: a virtual node, or a target group (ALB).
    target = next((f"{label} {d[key]}, " for key, label in _TARGETS if d.get(key)), "")
    return text_message(
        f"Canary provisioned: task definition {d.get('task_definition', '?')}, "
        f"{target}ECS service {d.get('ecs_service', '?')}"
        + (f" ({tasks} {noun})." if tasks is not None else ".")
    )


_TARGETS = (("virtual_node", "virtual node"), ("target_group", "target group"))


def _ready(dep: Deployment, e: Event) -> Message:
    return text_message(
        f"Canary ready: {e.data.get('running', '?')}/{e.data.get('desired', '?')} tasks running."
    )


def traffic_label(dep: Deployment, e: Event) -> str:
    """ "route payments-route", or the backend's own words ("listener rule …")."""
    named = str(e.data.get("route") or "")
    # The engine records the backend's description ("route payments-route"); older events
    # recorded the bare route name.
    if named and " " in named:
        return named
    return f"route {named or dep.settings.route}"


def traffic_sentence(dep: Deployment, e: Event) -> str:
    """ "Traffic 25 % → canary (route payments-route)." for a shift below 100 %."""
    weight = e.weight if e.weight is not None else dep.weight
    return f"Traffic {weight} % → canary ({traffic_label(dep, e)})."


def _shifted(dep: Deployment, e: Event) -> Message:
    weight = e.weight if e.weight is not None else dep.weight
    where = traffic_label(dep, e)
    before = _passed_before(e)
    lead = [section(clip(before))] if before else []
    if weight >= 100:
        bake = e.data.get("post_promotion_bake", dep.settings.post_promotion_bake)
        text = (
            f"Traffic 100 % → canary ({where}). "
            f"Old version kept running for {format_duration(bake)}."
        )
        blocks = lead + [section(text), rollback_actions(dep.id, e.step or dep.step_number)]
        return Message(f"{before}\n{text}" if before else text, blocks)
    text = traffic_sentence(dep, e)
    return Message(f"{before}\n{text}" if before else text, lead + [section(clip(text))])


def _passed_before(e: Event) -> str | None:
    passed = e.data.get("passed")
    if not passed:
        return None
    return passed_line(passed.get("step"), passed.get("weight"), passed.get("verdict"))


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


def shifted_closed(dep: Deployment, e: Event, outcome: str) -> Message:
    """The 100 % message once Roll back is no longer offered."""
    first = _shifted(dep, e).text
    return Message(f"{first} {outcome}", [section(first), context(clip(outcome))])


def _step_name(dep: Deployment, e: Event) -> str:
    if (e.weight or 0) >= 100:
        return "Post-promotion bake"
    return f"Step {e.step}" if e.step else "Step"


def _step_passed(dep: Deployment, e: Event) -> Message | None:
    if e.data.get("shown_with"):
        return None  # the message of what came next shows this verdict (one reply, not two)
    return text_message(passed_line(e.step, e.weight, e.data.get("verdict")))


def passed_line(step: int | None, weight: int | None, verdict: dict[str, Any] | None) -> str:
    """ "✅ Step 1 passed · canary 1,204 req, 3 × 5xx (0.25 %) · stable … · alarms OK"."""
    full = (weight or 0) >= 100
    name = "Post-promotion bake" if full else (f"Step {step}" if step else "Step")
    return f"✅ {name} passed · {verdict_figures(verdict, with_stable=not full)}"


def gate_verdict(gate: Event) -> str | None:
    """The verdict line of the step a gate follows, when the gate's event carries it."""
    if not gate.data.get("verdict"):
        return None
    passed = int(gate.data.get("next_step") or 2) - 1
    return passed_line(passed, gate.data.get("passed_weight"), gate.data["verdict"])


def _step_failed(dep: Deployment, e: Event) -> Message:
    verdict = e.data.get("verdict") or {}
    full = (e.weight or 0) >= 100
    figures = verdict_figures(verdict, with_stable=not full)
    text = f"❌ {_step_name(dep, e)} failed at {e.weight} % · {figures}"
    reason = e.reason or verdict.get("reason")
    blocks = [section(clip(text))] + ([context(clip(reason))] if reason else [])
    if not e.data.get("rolling_back"):
        return Message(text, blocks)
    # The rollback that follows posts nothing of its own: this message says why and that it began.
    lines = [text, reason, ROLLING_BACK] if reason else [text, ROLLING_BACK]
    return Message("\n".join(lines), [*blocks, section(ROLLING_BACK)])


ROLLING_BACK = "↩️ Rolling back: restoring 100 % stable first."


def _holding(dep: Deployment, e: Event) -> Message:
    interval = e.data.get("interval", dep.settings.analysis_interval)
    deadline = e.data.get("deadline")
    until = f"; rolls back at {when(deadline)} if it cannot be judged" if deadline else ""
    reason = e.reason or "not enough requests to judge"
    return text_message(
        f"⏳ Holding at {e.weight} %: {reason}. Still checking every "
        f"{format_duration(interval)}{until}."
    )


def gate_question(dep: Deployment, e: Event) -> str:
    approvers = dep.settings.approvers
    who = f"  {mentions(approvers)}" if approvers else ""
    if not approvers and dep.settings.four_eyes:
        who = f"  (anyone but {mention(dep.requester)})"
    return f"✋ Approve {e.data.get('next_weight', e.weight)} %?{who}"


def _gate_opened(dep: Deployment, e: Event) -> Message:
    step = int(e.data.get("next_step") or (e.step or 0) + 1)
    weight = e.data.get("next_weight", e.weight)
    question = gate_question(dep, e)
    timeout = e.data.get("timeout_at")
    detail = f"Step {step} of {len(dep.settings.steps)}: {weight} % of traffic to the canary."
    if e.data.get("plan"):  # overrides beyond the catalogue's caution: accept the plan first
        loosened = ", ".join(e.data.get("accept") or [])
        detail = (
            f"Plan in force, looser than the catalogue's ({loosened}): {e.data['plan']}. {detail}"
        )
    if timeout:
        detail += f" Rolls back at {when(timeout)} without a decision; monitoring goes on."
    value = ButtonValue(dep.id, step).encode()
    verdict = gate_verdict(e)
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


def _gate_reminder(dep: Deployment, e: Event) -> Message:
    timeout = e.data.get("timeout_at")
    who = f" {mentions(dep.settings.approvers)}" if dep.settings.approvers else ""
    until = f" Rolls back at {when(timeout)} without a decision." if timeout else ""
    return text_message(f"⏰ Still waiting for approval of {e.weight} %.{who}{until}")


_BY = {
    "abort": "aborted",
    "canary check": "stopped by the canary check",
    "gate_timeout": "gate timed out",
    "ready_timeout": "canary tasks never became ready",
    "hold_timeout": "not enough traffic to judge",
    "image policy": "image not allowed",
    "error": "stopped by an error",
}


def ended_by(dep: Deployment, by: str | None, actor: str | None) -> str:
    """ "aborted by @dana", "stopped by the canary check at step 2 (25 %)"."""
    if by == "abort" and actor:
        return f"aborted by {mention(actor)}"
    label = _BY.get(by or "", by or "rolled back")
    if by == "canary check" and dep.step_number:
        label += f" at step {dep.step_number} ({dep.weight} %)"
    return label


def _rollback_started(dep: Deployment, e: Event) -> Message | None:
    if e.data.get("shown_with") == "step_failed":
        return None  # the failed step's message says it
    reason = (e.reason or "no reason given").rstrip(".")
    if not e.weight:  # no traffic had moved yet (e.g. the stable could not be found)
        return text_message(f"↩️ Stopping: {reason}. No traffic had moved to the canary.")
    return text_message(rolling_back(reason))


def rolling_back(reason: str | None = None) -> str:
    """ "↩️ Rolling back: <reason>. Restoring 100 % stable first.", or without a reason."""
    if not reason:
        return ROLLING_BACK
    return f"↩️ Rolling back: {reason.rstrip('.')}. Restoring 100 % stable first."


def _route_restored(dep: Deployment, e: Event) -> Message | None:
    stable = e.data.get("stable")
    if not stable:
        return None  # nothing was discovered, so nothing was routed: nothing to tell

    took = e.data.get("seconds")
    return text_message(
        f"Traffic 100 % → {stable}" + (f" in {duration(float(took))}." if took is not None else ".")
    )


def _rolled_back(dep: Deployment, e: Event) -> Message:
    kept = e.data.get("kept")
    fate = "Canary kept at 0 tasks for diagnosis." if kept else "Canary scaled to 0 and removed."
    if e.data.get("canary_existed") is False:
        fate = "Nothing had been created in AWS."
    by = ended_by(dep, e.data.get("by") or dep.ended_by, _abort_actor(dep))
    took = e.data.get("took")
    text = f"Rolled back ❌ {fate} Requested by {mention(dep.requester)} · {by}"
    if took:
        text += f" · took {duration(float(took))}"
    reason = e.reason or dep.reason
    # "Why" only where it adds something: not after a failed check (its message, just above,
    # gave the figures) and not when it repeats "aborted by @dana".
    if by.startswith(_BY["canary check"]) or (reason and reason in text):
        reason = None
    return Message(
        text, [section(clip(text))] + ([context(clip(f"Why: {reason}"))] if reason else [])
    )


def _abort_actor(dep: Deployment) -> str | None:
    reason = dep.reason or ""
    if reason.startswith(("aborted by <@", "rolled back by <@")):
        return reason.split("<@", 1)[1].split(">", 1)[0]
    return None


def _promoted(dep: Deployment, e: Event) -> Message:
    d = e.data
    approvers = d.get("approvers") or []
    checks = d.get("checks")
    parts = [f"Promoted ✅ {short_name(dep.image)} is stable."]
    removed = removed_resources(d)
    if removed:
        parts.append(f"Removed {removed}.")
    summary = []
    if d.get("took"):
        summary.append(f"took {duration(float(d['took']))}")
    if approvers:
        summary.append(f"approved by {mentions(list(dict.fromkeys(approvers)))}")
    if checks is not None:
        summary.append(f"{checks} checks passed")
    if summary:
        tail = " · ".join(summary)
        parts.append(tail[0].upper() + tail[1:])
    text = " ".join(parts)
    blocks = [section(clip(text))]
    if d.get("verdict"):
        bake = passed_line(None, 100, d["verdict"])
        text += f"\n{bake}"
        blocks.append(context(clip(bake)))
    problems = d.get("problems") or []
    if problems:
        blocks.append(
            section(clip("⚠ Clean up by hand:\n" + "\n".join(f"• {p}" for p in problems)))
        )
    return Message(text, blocks)


#: The old version's resources a promotion removes, as the engine describes them (event "old").
_OLD_KINDS = (
    ("ecs_service", "service"),
    ("virtual_node", "virtual node"),
    ("target_group", "target group"),
)


def removed_resources(data: dict[str, Any]) -> str:
    """ "payments-v41 (service, virtual node)", from the promoted event's description."""
    old = data.get("old") or {
        "ecs_service": data.get("old_service"),
        "virtual_node": data.get("old_virtual_node"),
    }
    found = [(str(old[key]), kind) for key, kind in _OLD_KINDS if old.get(key)]
    if not found:
        return ""
    names = list(dict.fromkeys(name for name, _ in found))
    kinds = ", ".join(kind for _, kind in found)
    if len(names) == 1:
        return f"{names[0]} ({kinds})"
    return ", ".join(f"{kind} {name}" for name, kind in found)


def _failed(dep: Deployment, e: Event) -> Message:
    problems = e.data.get("problems") or dep.problems or []
    text = f"⚠ Failed: a person must finish this. {e.reason or ''}".strip()
    blocks = [section(clip(text))]
    if problems:
        blocks.append(section(clip("To clean up:\n" + "\n".join(f"• {p}" for p in problems))))
    blocks.append(context("The route was left at 100 % stable where that was possible."))
    return Message(text, blocks)


_REPLIES = {
    "provisioned": _provisioned,
    "ready": _ready,
    "shifted": _shifted,
    "step_passed": _step_passed,
    "step_failed": _step_failed,
    "holding": _holding,
    "gate_opened": _gate_opened,
    "gate_reminder": _gate_reminder,
    "rollback_started": _rollback_started,
    "route_restored": _route_restored,
    "rolled_back": _rolled_back,
    "promoted": _promoted,
    "failed": _failed,
}
#: Events that post nothing: a refusal is told to the one person, an approval edits the gate.
_SILENT = frozenset({"refused", "approved", "requested"})
