"""The bot's own answers (ephemeral): deploy acknowledgements, refusals, status, history,
services; and the direct message to a requester whose thread cannot be posted to.

Lists are fitted to Slack's limits with "… n more" (workers.slack.format.fit_lines): one line
per deployment or service, however long its reason, and no more lines than a message holds.
"""

from __future__ import annotations

from collections.abc import Callable

from workers.analysis.judge import format_pct
from workers.domain.catalogue import Catalogue
from workers.domain.deployment import Deployment
from workers.domain.events import Cause
from workers.domain.images import short_name
from workers.domain.outcomes import Answer, Refusal
from workers.domain.refusals import Denial, Forbidden
from workers.domain.state import State
from workers.slack.card import card_status, headline
from workers.slack.format import (
    clip,
    duration,
    fit_lines,
    mention,
    mentions,
    tag_change,
    version_change,
    when,
    why,
)

#: The permalink of a deployment's thread, when its card has been posted.
ThreadLink = Callable[[str], str | None]

_ICONS = {State.PROMOTED: "✅", State.ROLLED_BACK: "❌", State.FAILED: "⚠"}


def starting(dep: Deployment) -> str:
    plan = f"Plan: {dep.settings.plan.describe()}."
    if dep.accept_plan:
        plan += (
            f" Looser than the catalogue's ({', '.join(dep.accept_plan)}): an approver accepts "
            "it before any traffic moves."
        )
    return (
        f"Starting deployment {dep.id} of {dep.service}: {dep.image}\n{plan}\n"
        "The card and its thread appear in this channel in a moment."
    )


def link(url: str | None, label: str = "thread") -> str:
    return f"<{url}|{label}>" if url else "(no thread yet)"


def busy(service: str, holder: Deployment | None, holder_id: str, url: str | None) -> str:
    """'payments is busy: deployment #4f2a by @dana is at 25 % (thread: <link>). Abort it first.'"""
    abort = f"Abort it first with `/canary abort {service}`."
    if holder is None:  # it finished just now, between the lock and the read
        return f"{service} is busy: deployment #{holder_id} is running. {abort}"
    where = f"at {holder.weight} %" if holder.weight else headline(holder).lower()
    return (
        f"{service} is busy: deployment #{holder.id} by {mention(holder.requester)} is {where} "
        f"(thread: {link(url)}). {abort}"
    )


def checking(service: str) -> str:
    return f"Checking {service} (read-only): the table comes here in a moment."


def aborting(dep_id: str) -> str:
    return f"Rolling back deployment {dep_id}."


def refused(answer: Answer) -> str:
    """Why the engine did not do what was asked, for the person who asked."""
    dep, dep_id, step = answer.deployment, answer.dep_id, answer.step
    match answer.refusal:
        case Refusal.INVALID:
            return answer.detail or "That request is not valid."
        case Refusal.BUSY:
            service = dep.service if dep else "The service"
            return busy(service, dep, dep_id or "?", None)
        case Refusal.UNKNOWN:
            return f"There is no deployment {dep_id}."
        case Refusal.TOO_FAST:
            return "The deployment is changing too fast; try again."
        case Refusal.NOT_ABORTED:
            state = dep.state.label if dep else "gone"
            return f"Deployment {dep_id} could not be aborted: it is {state}."
    if dep is None:
        return "Nothing was changed."
    match answer.refusal:
        case Refusal.OVER:
            return f"Deployment {dep.id} is already over ({dep.state.label})."
        case Refusal.NOT_ROLLBACKABLE:
            return f"Deployment {dep.id} is already {dep.state.label}."
        case Refusal.OTHER_GATE:
            return (
                f"That button is for step {step}, but deployment {dep.id} is waiting for "
                f"step {dep.step_number + 1}."
            )
        case Refusal.ALREADY_APPROVED:
            approver = [a.actor for a in dep.approvals if a.step == step][-1]
            return f"Step {step} was already approved by {mention(approver)}."
        case Refusal.ROLLING_BACK:
            return f"Step {step} can't be approved: deployment {dep.id} is rolling back."
        case Refusal.NOT_AT_GATE:
            return (
                f"Step {step} is not waiting for approval "
                f"(deployment {dep.id} is {dep.state.label})."
            )
        case Refusal.OWN_DEPLOYMENT:
            return f"You can't approve your own deployment (four-eyes is on for {dep.service})."
    return "Nothing was changed."


_VERBS = {"deploy": "deploy", "approve": "approve", "abort": "abort", "rollback": "roll back"}
_PAST = {"deploy": "deployed", "approve": "approved", "abort": "aborted", "rollback": "rolled back"}


def denied(denial: Denial) -> str:
    """Why a person may not do what they asked of a service (bot.permissions), for them."""
    name, verb, ids = denial.service, _VERBS[denial.action], list(denial.ids)
    ask = f"Ask one of: {mentions(ids)}."
    match denial.reason:
        case Forbidden.ELSEWHERE:
            return (
                f"Only members of the workspace this bot belongs to may {verb} {name}; "
                "your request comes from elsewhere."
            )
        case Forbidden.WRONG_CHANNEL:
            where = "" if denial.action == "deploy" else " or the deployment's thread there"
            channel = f"<#{ids[0]}>" if ids else "its channel"
            return f"{name} can only be {_PAST[denial.action]} from {channel}{where}."
        case Forbidden.NOT_DEPLOYER:
            return f"You are not a deployer of {name}. {ask}"
        case Forbidden.NOT_APPROVER:
            return f"You are not an approver of {name}. {ask}"
        case Forbidden.NOT_DEPLOYER_OR_APPROVER:
            return f"Only deployers and approvers of {name} may {verb} it. {ask}"
        case Forbidden.FOUR_EYES:
            return f"You can't approve your own deployment (four-eyes is on for {name}). " + (
                ask if ids else "Ask someone else."
            )
        case Forbidden.GROUPS_UNKNOWN:
            return (
                f"I could not check the members of {mentions(ids)} with Slack just now, "
                "so I can't tell whether you may. Nothing was changed; try again in a minute."
            )
        case Forbidden.NOT_IN_CATALOGUE:
            return (
                f"{name} is no longer in the catalogue: its gates can't be approved. "
                f"It can still be aborted: `/canary abort {name}`."
            )
    return f"You may not {verb} {name}; nothing was changed."


def slow_down(limit: int, window: float) -> str:
    """The one answer to a user past the per-user refusal limit (bot/ratelimit.py)."""
    return (
        f"Slow down: more than {limit} of your requests were refused within {window:g} s. "
        f"I will ignore your commands and clicks for the next {window:g} s; nothing was changed."
    )


def deployment_line(dep: Deployment, url: str | None, now: float) -> str:
    """One running deployment for `status`."""
    return (
        f"🔄 *{dep.service}* #{dep.id}  `{version_change(dep.old_image, dep.image)}`  "
        f"{card_status(dep, now)} · at {dep.weight} % · by {mention(dep.requester)} · {link(url)}"
    )


def status(deps: list[Deployment], thread: ThreadLink, now: float) -> str:
    if not deps:
        return "Nothing is deploying right now."
    noun = "deployment" if len(deps) == 1 else "deployments"
    lines = [f"{len(deps)} {noun} running:"]
    lines += [deployment_line(d, thread(d.id), now) for d in deps]
    return fit_lines(lines)


def service_status(
    service: str,
    running: Deployment | None,
    last: Deployment | None,
    thread: ThreadLink,
    now: float,
) -> str:
    if running is not None:
        line = deployment_line(running, thread(running.id), now)
        reason = running.last_verdict.reason if running.last_verdict else None
        # The card leaves a check's numbers out (they change every check): here they are.
        return f"{line}\nLast check: {reason}" if reason else line
    if last is None:
        return f"No deployment of {service} is running, and none has run through this bot."
    last_line = history_line(last, thread(last.id), now)
    return f"No deployment of {service} is running. Last one:\n{last_line}"


def outcome(dep: Deployment, now: float) -> str:
    """Why a deployment ended the way it did, in a few words."""
    if dep.state == State.PROMOTED:
        approvers = list(dict.fromkeys(a.actor for a in dep.approvals))
        return f"approved {mentions(approvers)}" if approvers else "no approvals needed"
    if dep.state == State.ROLLED_BACK:
        canary = dep.last_verdict.canary if dep.last_verdict else None
        if dep.ended_by == Cause.CANARY_CHECK and canary and canary.requests:
            return f"5xx {format_pct(canary.errors / canary.requests * 100)} at {dep.weight} %"
        return why(dep.reason, dep.stopped_by) or "rolled back"
    if dep.state == State.FAILED:
        return "failed: " + ("; ".join(dep.problems) or dep.reason or "see the thread")
    return card_status(dep, now)


#: Characters of a deployment's outcome in a history line (a reason or a list of problems
#: can be long; the thread has all of it).
OUTCOME_CHARS = 300


def history_line(dep: Deployment, url: str | None, now: float) -> str:
    icon = _ICONS.get(dep.state, "🔄")
    took = duration((dep.finished_at or now) - dep.created_at)
    said = clip(outcome(dep, now), OUTCOME_CHARS)
    return (
        f"{icon} #{dep.id}  {tag_change(dep.old_image, dep.image)}  {mention(dep.requester)} · "
        f"{said} · {took} · {when(dep.created_at, '{date_short} {time}')}  {link(url)}"
    )


def history(service: str, deps: list[Deployment], thread: ThreadLink, now: float) -> str:
    if not deps:
        return f"{service} has no deployments yet."
    noun = "deployment" if len(deps) == 1 else "deployments"
    lines = [f"*{service}*: last {len(deps)} {noun}"]
    lines += [history_line(d, thread(d.id), now) for d in deps]
    return fit_lines(lines)


def service_line(key: str, running: Deployment | None, last: Deployment | None) -> str:
    """What Redis knows of a service's traffic: the bot never asks AWS."""
    if running is not None:
        stable = f"`{short_name(running.old_image)}`" if running.old_image else "stable"
        return (
            f"• *{key}*: canary #{running.id} `{short_name(running.image)}` at {running.weight} %, "
            f"{100 - running.weight} % {stable} ({headline(running).lower()})"
        )
    if last is None:
        return f"• *{key}*: stable image unknown (no deployment yet; found in AWS at deploy time)"
    since = when(last.finished_at or last.created_at, "{date_short} {time}")
    if last.state == State.PROMOTED:
        return f"• *{key}*: 100 % `{short_name(last.image)}` (promoted by #{last.id}, {since})"
    if last.state == State.ROLLED_BACK and last.old_image:
        return f"• *{key}*: 100 % `{short_name(last.old_image)}` (#{last.id} rolled back, {since})"
    return (
        f"• *{key}*: unknown: the last deployment #{last.id} "
        f"{'failed' if last.state == State.FAILED else 'ended'} ({since}); check its thread"
    )


def services(
    catalogue: Catalogue,
    running: dict[str, Deployment],
    last: dict[str, Deployment | None],
) -> str:
    if not catalogue.services:
        return "The catalogue has no services."
    lines = ["Services (from this bot's records; traffic as of the last change it made):"]
    lines += [service_line(k, running.get(k), last.get(k)) for k in sorted(catalogue.services)]
    return fit_lines(lines)


def thread_unreachable(dep: Deployment, channel: str, error: str) -> str:
    """The direct message to a requester whose deployment's thread cannot be posted to."""
    where = f"at {dep.weight} %" if dep.weight else "with no traffic on the canary yet"
    state = headline(dep)
    return (
        f"I can't post in <#{channel}> ({error}), so deployment #{dep.id} of {dep.service} "
        f"({version_change(dep.old_image, dep.image)}) has no thread there and its messages are "
        f"not shown. It goes on without them: it is {state.lower()}, {where}. Follow it with "
        f"`/canary status {dep.service}`, stop it with `/canary abort {dep.service}`; invite me "
        "to the channel (`/invite @canary`) to see the next deployments' threads."
    )
