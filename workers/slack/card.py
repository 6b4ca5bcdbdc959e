"""The deployment's card, the thread root kept up to date: status, progress bar, settings."""

from __future__ import annotations

from workers.analysis.judge import format_pct
from workers.domain.deployment import Deployment
from workers.domain.durations import format_duration
from workers.domain.state import State
from workers.slack.buttons import OPEN_THREAD
from workers.slack.format import (
    Block,
    Message,
    clip,
    clock,
    context,
    duration,
    mention,
    plain,
    section,
    short_id,
    version_change,
    when,
    why,
)

#: Width of the weight bar on the card, in cells.
BAR_CELLS = 20
#: Seconds the card and the App Home wait before showing a state the engine leaves within a
#: job or two: most often they go straight to the next one.
SETTLE = 2.0
#: Seconds a promotion's tear-down may last before the card says so: it waits for ECS to stop
#: the old version's tasks, which get 30 s to stop by default (`stopTimeout`,
#: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html),
#: so the card most often goes from the post-promotion bake straight to "Done".
TEAR_DOWN_SETTLE = 30.0
#: States shown only once they have lasted that many seconds.
PASSING: dict[State, float] = {
    State.SHIFTING: SETTLE,
    State.ROLLING_BACK: SETTLE,
    State.CLEANING_UP: SETTLE,
    State.TEARING_DOWN: TEAR_DOWN_SETTLE,
}


# the card --------------------------------------------------------------------------------------
def card_status(dep: Deployment, now: float | None = None) -> str:
    """The state line of the card; `now` None leaves out anything that changes by the second."""
    head, detail = headline(dep), _detail(dep, now)
    return f"{head} ({detail})" if detail else head


def headline(dep: Deployment) -> str:
    """The deployment's state in a few words, without details: "Baking 10 %", "Rolling back"."""
    s, weight = dep.settings, dep.weight
    match dep.state:
        case State.PROVISIONING:
            return "Provisioning"
        case State.WAITING_READY:
            return "Waiting for tasks"
        case State.SHIFTING:
            return f"Shifting to {weight} %"
        case State.BAKING:
            return f"Baking {weight} %"
        case State.HOLDING:
            return "Holding: not enough traffic"
        case State.AWAITING_APPROVAL:
            return "Waiting for approval"
        case State.POST_PROMOTION:
            return f"Promoted, old version kept {format_duration(s.post_promotion_bake)}"
        case State.TEARING_DOWN:
            return "Promoted, removing the old version"
        case State.PROMOTED:
            return "Done ✅"
        case State.ROLLING_BACK | State.CLEANING_UP:
            return "Rolling back"
        case State.ROLLED_BACK:
            return "Rolled back ❌"
        case State.FAILED:
            return "Failed ⚠"
    return dep.state.label


def _detail(dep: Deployment, now: float | None) -> str | None:
    match dep.state:
        case State.BAKING:
            ends = (dep.step_started_at or dep.state_since) + dep.settings.bake
            left = f"{clock(ends - now)} left, " if now is not None else ""
            return f"{left}until {when(ends)}"
        case State.ROLLED_BACK:
            return why(dep.reason, dep.stopped_by) or "no reason recorded"
        case State.FAILED:
            return f"needs a human: {'; '.join(dep.problems) or dep.reason or 'see the thread'}"
    return None


def progress_bar(dep: Deployment) -> str:
    """ "■■■■■□□□…  25 % → canary · step 2 of 4"."""
    weight = dep.weight
    if dep.state in (State.ROLLING_BACK, State.CLEANING_UP, State.ROLLED_BACK):
        weight = 0 if dep.route_restored_at or dep.state == State.ROLLED_BACK else weight
    if dep.state == State.PROMOTED:
        weight = 100
    filled = round(weight * BAR_CELLS / 100)
    bar = "■" * filled + "□" * (BAR_CELLS - filled)
    steps = len(dep.settings.steps)
    where = f"step {dep.step_number} of {steps}" if dep.step_number else f"{steps} steps"
    return f"`{bar}`  {weight} % → canary · {where}"


def steps_line(dep: Deployment) -> str:
    """ "Steps 10 · *25* · 50 · 100 · bake 5m · gates manual · max 5xx 1.0 %"."""
    s = dep.settings
    marked = [
        f"*{w}*" if i == dep.step_index and dep.active else str(w) for i, w in enumerate(s.steps)
    ]
    return (
        f"Steps {' · '.join(marked)} · bake {format_duration(s.bake)} · gates {s.gates} · "
        f"max 5xx {format_pct(s.max_error_rate)}"
    )


def render_card(
    dep: Deployment, *, now: float | None = None, thread_url: str | None = None
) -> Message:
    """The deployment card at the top of the thread.

    It changes only when the deployment's state, step or weight does: a check's numbers are not
    on it (they change every check; `/canary status <service>` shows them), so a step costs one
    card update however long its bake or gate lasts.
    """
    status = card_status(dep, now)
    title = f"🐤 Canary · {dep.service} · {short_id(dep.id)}"
    change = version_change(dep.old_image, dep.image)
    blocks: list[Block] = [
        section(f"*{title}*\n`{change}`   requested by {mention(dep.requester)}{_commit(dep)}"),
        section(clip(f"{progress_bar(dep)} · *{status}*")),
        context(steps_line(dep)),
    ]
    if dep.active and dep.late_by:
        # The installation's AWS call budget (or a busy worker) spread the checks.
        blocks.append(context(f"⏱ the last check ran {duration(dep.late_by)} late"))
    if thread_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": OPEN_THREAD,
                        "text": plain("Open thread"),
                        "url": thread_url,
                    }
                ],
            }
        )
    text = f"Canary {dep.service} {short_id(dep.id)}: {change} · {_plain_status(status)}"
    return Message(text, blocks)


def _commit(dep: Deployment) -> str:
    """ " · commit <url|1a2b3c4>" for a deployment a pipeline asked for (its URL checked to be
    safe in a link: workers.domain.pipelines.check_url); empty otherwise."""
    origin = dep.origin
    if origin is None or not (origin.commit or origin.url):
        return ""
    label = f"commit {origin.commit[:12]}" if origin.commit else "build"
    if origin.url:
        # Slack reads &, < and > in text as markup: & is escaped; < and > are refused in a URL.
        return f" · <{origin.url.replace('&', '&amp;')}|{label}>"
    return f" · {label}"


def _plain_status(status: str) -> str:
    # The notification text has no date formatting; keep the fallback of <!date^…|fallback>.
    out, rest = [], status
    while "<!date^" in rest:
        before, _, after = rest.partition("<!date^")
        inner, _, rest = after.partition(">")
        out.append(before + inner.rsplit("|", 1)[-1])
    return "".join(out) + rest
